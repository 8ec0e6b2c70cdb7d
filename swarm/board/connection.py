"""Connecting to the board's Redis: any URL (password, ACL user, `rediss://` TLS), retried with backoff.

`connect(url)` returns a client that has answered PING, or raises `BoardUnavailable` with one line
naming the URL with its password masked. The client itself retries transient connection errors
(a restart, a failover) with exponential backoff, so a blip mid-run does not surface as an error.

TLS settings ride in the URL's query, which redis-py hands to its SSLConnection:
`rediss://:PW@host:6380/0?ssl_ca_certs=/etc/swarm/ca.crt&ssl_certfile=agent.crt&ssl_keyfile=agent.key`.
A TLS mistake (an unverifiable certificate, the wrong scheme for the port, a missing file) is not
transient, so it fails at once with a line that says what to change instead of being retried.
"""

from __future__ import annotations

import logging
import os
import ssl
import time
from collections.abc import Iterator
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry

from swarm import defaults
from swarm.errors import BoardUnavailable, UserError

log = logging.getLogger(__name__)

SECRET_PARAMS = ("password", "ssl_password")  # query parameters masked like the URL's own password
TLS_FILE_PARAMS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_ca_path")  # paths, checked up front
# ssl errors that mean "the peer hung up mid-handshake": a restart looks the same, so these are retried
TLS_TRANSIENT = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)
HOST_MISMATCH_CODES = (62, 64)  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH
CLIENT_CERT_PARAMS = "ssl_certfile=/path/to/client.crt and ssl_keyfile=/path/to/client.key in the URL"


def mask_url(url: str) -> str:
    """The URL with any password (and `password=`/`ssl_password=` query value) replaced by `***`."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparsable URL>"
    netloc = parts.netloc
    if password is not None:
        netloc = f"{parts.username or ''}:***@{netloc.rpartition('@')[2]}"
    query = "&".join(
        f"{item.partition('=')[0]}=***" if unquote(item.partition("=")[0]) in SECRET_PARAMS else item
        for item in parts.query.split("&")
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def check_url(url: str) -> None:
    """UserError for a URL that cannot work whatever the server does: scheme, TLS options, files."""
    masked = mask_url(url)
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise UserError(f"bad Redis URL {masked!r}: expected redis://, rediss:// or unix://")
    try:
        params = dict(parse_qsl(urlsplit(url).query))
    except ValueError as exc:
        raise UserError(f"bad Redis URL {masked!r}: {exc}") from exc
    tls = [k for k in params if k.startswith("ssl_")]
    if tls and not url.startswith("rediss://"):
        raise UserError(f"bad Redis URL {masked!r}: {tls[0]} is a TLS setting, which needs rediss://")
    for key in TLS_FILE_PARAMS:
        if key in params and not os.path.exists(params[key]):
            raise UserError(f"bad Redis URL {masked!r}: {key}={params[key]} does not exist")


def connect(
    url: str,
    retries: int = defaults.CONNECT_RETRIES,
    backoff_s: float = defaults.CONNECT_BACKOFF_S,
) -> redis.Redis:
    """A connected client for `url`, or BoardUnavailable after `retries` failed attempts."""
    check_url(url)
    masked = mask_url(url)
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
        raise UserError(f"bad Redis URL {masked!r}: {exc}") from exc
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
            raise BoardUnavailable(f"cannot authenticate to Redis at {masked}: {exc}") from exc
        except redis.exceptions.ResponseError as exc:  # e.g. NOAUTH / WRONGPASS from an ACL setup
            r.close()
            raise BoardUnavailable(f"Redis at {masked} refused the connection: {exc}") from exc
        except TypeError as exc:  # redis-py builds its connection on first use, from the URL's query
            r.close()
            if "unexpected keyword argument" not in str(exc):
                raise
            name = str(exc).rpartition(" ")[2]
            raise UserError(f"bad Redis URL {masked!r}: unknown parameter {name}") from exc
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
            fatal = tls_failure(url, exc)
            if fatal is not None:
                r.close()
                raise BoardUnavailable(fatal) from exc
            last = exc
            if attempt < retries:
                log.debug("redis %s unreachable (attempt %d): %s", masked, attempt + 1, exc)
                time.sleep(delay)
                delay *= 2
    r.close()
    hint = tls_hint(url, last) if last is not None else ""
    raise BoardUnavailable(f"cannot reach Redis at {masked} after {retries + 1} attempts: {last}{hint}")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and the errors it was raised from (redis-py wraps the socket's and ssl's errors)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


def tls_failure(url: str, exc: BaseException) -> str | None:
    """One line for a TLS failure that retrying cannot fix, or None when `exc` may be transient."""
    masked = mask_url(url)
    for err in _chain(exc):
        if isinstance(err, ssl.SSLCertVerificationError):
            if err.verify_code in HOST_MISMATCH_CODES:
                return (
                    f"TLS certificate of Redis at {masked} does not name the host in the URL "
                    f"({err.verify_message}): connect by a name or address the certificate lists"
                )
            return (
                f"TLS certificate of Redis at {masked} could not be verified ({err.verify_message}): "
                "pass the CA that signed it as ssl_ca_certs=/path/to/ca.crt in the URL"
            )
        if isinstance(err, ssl.SSLError) and "CERTIFICATE_REQUIRED" in (err.reason or ""):
            return f"Redis at {masked} requires a client certificate ({err.reason}): pass {CLIENT_CERT_PARAMS}"
        if isinstance(err, ssl.SSLError) and not isinstance(err, TLS_TRANSIENT):
            return f"TLS connection to Redis at {masked} failed: {err}"
        # Python's ssl module words it so; a TCP connect timeout reads "timed out" and is retried
        if isinstance(err, TimeoutError) and "handshake" in str(err):
            return (
                f"Redis at {masked} did not answer the TLS handshake within {defaults.SOCKET_TIMEOUT_S:g} s: "
                "if that port serves plain Redis, use redis:// instead of rediss://"
            )
    return None


def tls_hint(url: str, exc: BaseException) -> str:
    """A parenthesised hint for a retried failure that a TLS mismatch also causes, else ''."""
    errors = list(_chain(exc))
    hung_up = any(
        isinstance(e, ConnectionResetError) or str(e).startswith("Connection closed by server") for e in errors
    )
    if url.startswith("redis://") and hung_up:
        return " (the server hung up on a plain connection: if that port only speaks TLS, use rediss://)"
    no_client_cert = url.startswith("rediss://") and "ssl_certfile" not in url
    if no_client_cert and any(isinstance(e, (ssl.SSLEOFError, ConnectionResetError, BrokenPipeError)) for e in errors):
        return f" (the server hung up during TLS: if it requires a client certificate, pass {CLIENT_CERT_PARAMS})"
    return ""


# What "the board is unreachable" looks like to code that must keep going without it (the agent loop
# keeps running experiments and holds results in its outbox until one of these stops being raised).
BOARD_DOWN: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    BoardUnavailable,
)
