"""Connecting to the board's Redis: any URL (password, ACL user, `rediss://` TLS), retried with backoff.

`connect(url)` returns a client that has answered PING, or raises `BoardUnavailable` with one line
naming the URL with its password masked. The client itself retries transient connection errors
(a restart, a failover) with exponential backoff, so a blip mid-run does not surface as an error.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry

from swarm import defaults
from swarm.errors import BoardUnavailable, UserError

log = logging.getLogger(__name__)


def mask_url(url: str) -> str:
    """The URL with any password replaced by `***` (safe for messages and logs)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment))


def connect(
    url: str,
    retries: int = defaults.CONNECT_RETRIES,
    backoff_s: float = defaults.CONNECT_BACKOFF_S,
) -> redis.Redis:
    """A connected client for `url`, or BoardUnavailable after `retries` failed attempts."""
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise UserError(f"bad Redis URL {mask_url(url)!r}: expected redis://, rediss:// or unix://")
    try:
        r = redis.Redis.from_url(
            url,
            socket_timeout=defaults.SOCKET_TIMEOUT_S,
            socket_connect_timeout=defaults.SOCKET_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),  # the start-up loop below does its own retries
            retry_on_error=[redis.exceptions.ConnectionError, redis.exceptions.TimeoutError],
            health_check_interval=30,
        )
    except ValueError as exc:
        raise UserError(f"bad Redis URL {mask_url(url)!r}: {exc}") from exc
    delay = backoff_s
    last: Exception | None = None
    for attempt in range(retries + 1):
        try:
            r.ping()
            # From here on the client retries transient errors (restart, failover) by itself.
            r.set_retry(Retry(ExponentialBackoff(cap=2.0, base=backoff_s), 3))
            return r
        except redis.exceptions.AuthenticationError as exc:
            r.close()
            raise BoardUnavailable(f"cannot authenticate to Redis at {mask_url(url)}: {exc}") from exc
        except redis.exceptions.ResponseError as exc:  # e.g. NOAUTH / WRONGPASS from an ACL setup
            r.close()
            raise BoardUnavailable(f"Redis at {mask_url(url)} refused the connection: {exc}") from exc
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
            last = exc
            if attempt < retries:
                log.debug("redis %s unreachable (attempt %d): %s", mask_url(url), attempt + 1, exc)
                time.sleep(delay)
                delay *= 2
    r.close()
    raise BoardUnavailable(f"cannot reach Redis at {mask_url(url)} after {retries + 1} attempts: {last}")


# What "the board is unreachable" looks like to code that must keep going without it (the agent loop
# keeps running experiments and holds results in its outbox until one of these stops being raised).
BOARD_DOWN: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    BoardUnavailable,
)
