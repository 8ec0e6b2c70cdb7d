"""The board: a swarm's shared state on one Redis, and the one object agents and the CLI use.

    from swarm.board import Board
    board = Board.connect("redis://:pw@host:6379/0", "demo")

`swarm.board.facade.Board` states the whole contract; each module here is one Redis concept
(keys, Lua scripts, connection, and one mixin per concept). Nothing below this package imports it.
"""

from swarm.board.facade import Board
from swarm.board.leaders import parse_leader_message
from swarm.code.diff import EMPTY_PATCH
from swarm.models import (
    AgentInfo,
    AgentRecord,
    Claim,
    Event,
    Hypothesis,
    HypothesisIn,
    Leader,
    MoveOutcome,
    PublishOutcome,
    Result,
    ResultIn,
    State,
    SwarmSettings,
)

__all__ = [
    "EMPTY_PATCH",
    "AgentInfo",
    "AgentRecord",
    "Board",
    "Claim",
    "Event",
    "Hypothesis",
    "HypothesisIn",
    "Leader",
    "MoveOutcome",
    "PublishOutcome",
    "Result",
    "ResultIn",
    "State",
    "SwarmSettings",
    "parse_leader_message",
]
