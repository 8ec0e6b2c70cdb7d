"""Service discovery: where Prometheus finds each live agent's /metrics, read from the board.

Every agent registers `AgentInfo.metrics_addr` ("host:port") when it joins: the port it found free
with its hostname, or what `swarm agent --metrics-advertise HOST:PORT` names (behind NAT, in a
container: the address Prometheus must use, not the one the agent binds). The exporter serves the
live ones at `/sd` in Prometheus' HTTP service discovery format (`http_sd_configs`), one target
group per agent:

    [{"targets": ["vm:9410"], "labels": {"swarm": "gpt", "track": "cpu:2c", "agent": "vm-cpu-81-1a2b",
                                          "host": "vm", "gpu": "cpu"}}]

Only agents whose heartbeat is current are listed (a killed agent drops out when its heartbeat TTL
passes; a stopped one at once, as it deregisters), and only those serving /metrics. Label values are
strings (HTTP SD rejects anything else); the names are fixed and valid Prometheus label names.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from swarm.errors import UserError

__all__ = ["LABELS", "check_advertise", "sd_groups"]

# The labels each target carries, in this order. `track` is also a label of the agents' own series:
# the compose config scrapes with honor_labels so the agent's value stays `track`, not `exported_track`.
LABELS = ("swarm", "track", "agent", "host", "gpu")

MAX_HOST_CHARS = 253  # a DNS name's limit
_NAME = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.\-]*[A-Za-z0-9_])?$")  # host name or IPv4 (docker: a_b_1)
_ADVERTISE = re.compile(r"^(?:\[(?P<v6>[^\]]+)\]|(?P<name>[^:\[\]]+)):(?P<port>[0-9]{1,5})$")


def check_advertise(text: str) -> str:
    """`--metrics-advertise HOST:PORT`, checked: a host name or IPv4 address, or an IPv6 address in
    brackets, and a port 1-65535. Returns it as given; UserError (one line) otherwise."""
    hint = f"--metrics-advertise must be HOST:PORT (a host name or IP, [IPv6] in brackets, port 1-65535), not {text!r}"
    found = _ADVERTISE.match(text)
    if found is None or not 1 <= int(found["port"]) <= 65535:
        raise UserError(hint)
    if found["v6"] is not None:
        try:
            ipaddress.IPv6Address(found["v6"])
        except ValueError:
            raise UserError(hint) from None
    elif len(found["name"]) > MAX_HOST_CHARS or not _NAME.match(found["name"]):
        raise UserError(hint)
    return text


def sd_groups(board: Any) -> list[dict[str, Any]]:
    """The HTTP SD answer: one target group per live agent serving /metrics, sorted by agent id.

    `board` is a `swarm.board.Board` (its `agents()` and `swarm`); Redis errors propagate, so the
    caller can answer with an error and Prometheus keeps the targets it had.
    """
    groups = []
    for a in board.agents():  # sorted by agent id
        if not a.alive or not a.metrics_addr:
            continue
        values = (board.swarm, a.track, a.agent_id, a.host, a.gpu)
        groups.append({"targets": [a.metrics_addr], "labels": {k: str(v) for k, v in zip(LABELS, values, strict=True)}})
    return groups
