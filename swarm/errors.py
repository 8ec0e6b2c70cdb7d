"""One exception hierarchy for the whole package.

Everything the library raises on purpose derives from `SwarmError`. The CLI catches `SwarmError`
at its boundary and prints `error: <message>` on one line with a non-zero exit, never a traceback.
"""


class SwarmError(Exception):
    """Base of every error the swarm raises on purpose. `exit_code` is what the CLI exits with."""

    exit_code = 1


class UserError(SwarmError):
    """Bad input from a human or a config file: empty/oversized text, malformed file, unknown state."""

    exit_code = 2


class BoardUnavailable(SwarmError):
    """Redis could not be reached (after retries). The message names the URL without its password."""

    exit_code = 3


class NotFound(SwarmError):
    """A hypothesis, patch, swarm or result that does not exist."""

    exit_code = 4


class Conflict(SwarmError):
    """A refused state change: different arena on an existing swarm, illegal transition, stale token."""

    exit_code = 5


class ArenaError(SwarmError):
    """The arena is malformed, its harness hashes differ, or a run could not be started."""

    exit_code = 6


class ProposerError(SwarmError):
    """A proposer could not produce a hypothesis or an edit (after its retries)."""

    exit_code = 7
