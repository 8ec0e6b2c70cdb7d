"""Every default of the swarm, in one place, each with the reason for its value.

Modules import the names they need from here; nothing else hard-codes a tunable number.
Sections are owned by concept (board, arena runner, agent, proposers, metrics); add to the
section of your concept and keep the "why" comment next to each value.
"""

# --- connection --------------------------------------------------------------------------------
REDIS_URL = "redis://127.0.0.1:6379/0"  # the conventional local Redis; override with --redis / SWARM_REDIS_URL
SWARM_NAME = "default"  # one swarm per server is the common case; --swarm / SWARM_NAME picks another
CONNECT_RETRIES = 5  # transient errors (restart, failover) usually clear within a few seconds
CONNECT_BACKOFF_S = 0.2  # first retry delay; doubles per retry, so 5 retries span ~6 s
SOCKET_TIMEOUT_S = 5.0  # a board command is sub-millisecond; 5 s means the server or network is gone
