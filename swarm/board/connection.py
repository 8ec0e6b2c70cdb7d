"""Connecting to the board's Redis: any URL (password, ACL user, `rediss://` TLS, Sentinel), retried with backoff.

`connect(url)` returns a client that has answered PING, or raises `BoardUnavailable` with one line
naming the URL with its password masked. The client itself retries transient connection errors
(a restart, a failover) with exponential backoff, so a blip mid-run does not surface as an error.
`close(r)` closes every socket it opened, the sentinels' included (`Board.close` calls it).

TLS settings ride in the URL's query, which redis-py hands to its SSLConnection:
`rediss://:PW@host:6380/0?ssl_ca_certs=/etc/swarm/ca.crt&ssl_certfile=agent.crt&ssl_keyfile=agent.key`.
A TLS mistake (an unverifiable certificate, the wrong scheme for the port, a missing file) is not
transient, so it fails at once with a line that says what to change instead of being retried.

Sentinel: `redis+sentinel://[[USER]:PW@]HOST:PORT[,HOST:PORT...]/NAME[/DB][?options]` (`rediss+sentinel://`
for TLS to the sentinels and the servers alike). The client asks the sentinels for the primary named
NAME on every new connection, so after a failover its retries land on the promoted replica. USER:PW
are the servers' credentials; `sentinel_password=` (and `sentinel_username=`) in the query are the
sentinels' own, when they have any. A name no sentinel monitors, or a sentinel that refuses the
password, fails at once; sentinels that do not answer, or know the name but no live primary (a
failover under way), are retried like any unreachable server.

`Replication` makes a write count only once a replica has it: when the primary has replicas, the
board's `publish` and `move_leader` run in one pipeline with `WAIT`, and `NotReplicated` (in
`BOARD_DOWN`) is raised when no replica acknowledged in time. Without replicas nothing changes.
"""

from __future__ import annotations

import logging
import os
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.connection import SSLConnection, parse_url
from redis.exceptions import NoScriptError, ResponseError
from redis.retry import Retry
from redis.sentinel import MasterNotFoundError, Sentinel

from swarm import defaults
from swarm.errors import BoardUnavailable, SwarmError, UserError

log = logging.getLogger(__name__)

SECRET_PARAMS = ("password", "ssl_password", "sentinel_password")  # query values masked like the URL's password
SENTINEL_SCHEMES = ("redis+sentinel://", "rediss+sentinel://")
SCHEMES = ("redis://", "rediss://", "unix://", *SENTINEL_SCHEMES)
SENTINEL_PORT = 26379  # Redis Sentinel's registered port, taken when an address has none
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


def uses_tls(url: str) -> bool:
    return url.startswith(("rediss://", "rediss+sentinel://"))


def check_url(url: str) -> None:
    """UserError for a URL that cannot work whatever the server does: scheme, TLS options, files."""
    masked = mask_url(url)
    if not url.startswith(SCHEMES):
        raise UserError(
            f"bad Redis URL {masked!r}: expected redis://, rediss://, unix://, redis+sentinel:// or rediss+sentinel://"
        )
    try:
        params = dict(parse_qsl(urlsplit(url).query))
    except ValueError as exc:
        raise UserError(f"bad Redis URL {masked!r}: {exc}") from exc
    tls = [k for k in params if k.startswith("ssl_")]
    if tls and not uses_tls(url):
        need = "rediss+sentinel://" if url.startswith(SENTINEL_SCHEMES) else "rediss://"
        raise UserError(f"bad Redis URL {masked!r}: {tls[0]} is a TLS setting, which needs {need}")
    for key in TLS_FILE_PARAMS:
        if key in params and not os.path.exists(params[key]):
            raise UserError(f"bad Redis URL {masked!r}: {key}={params[key]} does not exist")
    if url.startswith(SENTINEL_SCHEMES):
        parse_sentinel_url(url)


@dataclass(frozen=True)
class SentinelURL:
    """A `redis+sentinel://` URL taken apart: where the sentinels are, the primary's name, the options."""

    sentinels: list[tuple[str, int]]
    service: str  # the name the sentinels monitor the primary under (`sentinel monitor NAME ...`)
    server_options: dict[str, Any] = field(default_factory=dict)  # db, credentials, TLS: for the servers
    sentinel_options: dict[str, Any] = field(default_factory=dict)  # credentials and TLS for the sentinels


def parse_sentinel_url(url: str) -> SentinelURL:
    """`redis+sentinel://[[USER]:PW@]H1:P1[,H2:P2...]/NAME[/DB][?options]`, or UserError saying what is wrong."""
    masked = mask_url(url)

    def bad(why: str) -> UserError:
        return UserError(f"bad Redis URL {masked!r}: {why}")

    rest = url.partition("://")[2]
    rest = rest.partition("#")[0]
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    if not hosts:
        raise bad("no sentinel address after the scheme (HOST:PORT[,HOST:PORT...])")
    sentinels = [_host_port(h, bad) for h in hosts.split(",")]
    parts = path.split("/") if path else []
    if parts and parts[-1] == "":
        parts.pop()  # a trailing slash
    if not parts or not parts[0]:
        raise bad("no primary name: give the name the sentinels monitor it under, as .../NAME or .../NAME/DB")
    if len(parts) > 2 or (len(parts) == 2 and not parts[1].isdigit()):
        raise bad(f"expected /NAME or /NAME/DB after the sentinel addresses, not /{path}")
    params = parse_qsl(query, keep_blank_values=True)
    auth_keys = ("sentinel_password", "sentinel_username")
    sentinel_auth = {k.removeprefix("sentinel_"): v for k, v in params if k in auth_keys}
    rest_query = urlencode([(k, v) for k, v in params if k not in auth_keys])
    # The servers' options are read exactly as redis-py reads a plain URL's (types, TLS class, db).
    plain = f"{'rediss' if uses_tls(url) else 'redis'}://{userinfo}{at}primary/{parts[1] if len(parts) == 2 else 0}"
    try:
        options = parse_url(f"{plain}?{rest_query}" if rest_query else plain)
    except ValueError as exc:
        raise bad(str(exc)) from exc
    options.pop("host", None)
    if options.pop("connection_class", None) is SSLConnection:
        options["ssl"] = True
    tls = {k: v for k, v in options.items() if k == "ssl" or k.startswith("ssl_")}
    return SentinelURL(sentinels, unquote(parts[0]), options, {**tls, **sentinel_auth})


def _host_port(text: str, bad: Callable[[str], UserError]) -> tuple[str, int]:
    """`host`, `host:port` or `[v6]:port` (the port defaults to 26379)."""
    if text.startswith("["):
        host, _, port = text[1:].partition("]")
        port = port.removeprefix(":")
    elif ":" in text:
        host, _, port = text.rpartition(":")
    else:
        host, port = text, ""
    if not host:
        raise bad(f"sentinel address {text!r} has no host")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise bad(f"sentinel address {text!r} has no valid port")
    return unquote(host), int(port) if port else SENTINEL_PORT


def _client(url: str) -> redis.Redis:
    """The client for `url`, not connected yet; no retries of its own (connect's loop retries)."""
    opts: dict[str, Any] = {
        "socket_timeout": defaults.SOCKET_TIMEOUT_S,
        "socket_connect_timeout": defaults.SOCKET_TIMEOUT_S,
        "retry": Retry(NoBackoff(), 0),  # the start-up loop in connect() does its own retries
        "retry_on_error": [redis.exceptions.ConnectionError, redis.exceptions.TimeoutError],
        "health_check_interval": 30,
    }
    if not url.startswith(SENTINEL_SCHEMES):
        return redis.Redis.from_url(url, **opts)
    target = parse_sentinel_url(url)
    sentinel = Sentinel(
        target.sentinels,
        sentinel_kwargs={
            "socket_timeout": defaults.SENTINEL_TIMEOUT_S,
            "socket_connect_timeout": defaults.SENTINEL_TIMEOUT_S,
            # one try each: a dead sentinel is passed over at once for the next one, never waited on
            "retry": Retry(NoBackoff(), 0),
            **target.sentinel_options,
        },
    )
    return sentinel.master_for(target.service, **{**opts, **target.server_options})  # the URL's options win


def connect(
    url: str,
    retries: int = defaults.CONNECT_RETRIES,
    backoff_s: float = defaults.CONNECT_BACKOFF_S,
) -> redis.Redis:
    """A connected client for `url`, or BoardUnavailable after `retries` failed attempts."""
    check_url(url)
    masked = mask_url(url)
    try:
        r = _client(url)
    except ValueError as exc:
        raise UserError(f"bad Redis URL {masked!r}: {exc}") from exc
    except TypeError as exc:  # a sentinel client is built at once, with the URL's TLS options
        raise UserError(f"bad Redis URL {masked!r}: unknown parameter {str(exc).rpartition(' ')[2]}") from exc
    delay = backoff_s
    last_text = ""
    for attempt in range(retries + 1):
        try:
            r.ping()
            # From here on the client retries transient errors (restart, failover) by itself.
            r.set_retry(Retry(ExponentialBackoff(cap=2.0, base=backoff_s), 3))
            return r
        except redis.exceptions.AuthenticationError as exc:
            close(r)
            raise BoardUnavailable(f"cannot authenticate to Redis at {masked}: {exc}") from exc
        except redis.exceptions.ResponseError as exc:  # e.g. NOAUTH / WRONGPASS from an ACL setup
            close(r)
            raise BoardUnavailable(f"Redis at {masked} refused the connection: {exc}") from exc
        except TypeError as exc:  # redis-py builds its connection on first use, from the URL's query
            close(r)
            if "unexpected keyword argument" not in str(exc):
                raise
            name = str(exc).rpartition(" ")[2]
            raise UserError(f"bad Redis URL {masked!r}: unknown parameter {name}") from exc
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
            if isinstance(exc, MasterNotFoundError):  # redis-py's text lists client reprs; ask the sentinels why
                fatal_error, why = ask_sentinels(r, url)
                if fatal_error is not None:
                    close(r)
                    raise fatal_error from exc
                last_text = why
            else:
                fatal = tls_failure(url, exc)
                if fatal is not None:
                    close(r)
                    raise BoardUnavailable(fatal) from exc
                last_text = f"{exc}{tls_hint(url, exc)}"
            if attempt < retries:
                log.debug("redis %s unreachable (attempt %d): %s", masked, attempt + 1, last_text)
                time.sleep(delay)
                delay *= 2
    close(r)
    raise BoardUnavailable(f"cannot reach Redis at {masked} after {retries + 1} attempts: {last_text}")


def close(r: redis.Redis) -> None:
    """Close every socket of a client from `connect`: its pool's, and for a Sentinel URL the sentinels'.

    Left to the garbage collector instead, a socket is closed at an arbitrary later point (redis-py's
    pools are reference cycles), or warned about as unclosed when the collector finalizes it first.
    `Redis.close()` alone leaves a Sentinel client's pool (and the sentinels' clients) connected.
    """
    r.close()
    pool: Any = r.connection_pool
    pool.disconnect()
    manager: Sentinel | None = getattr(pool, "sentinel_manager", None)
    if manager is not None:
        for sentinel in manager.sentinels:
            sentinel.close()


def ask_sentinels(r: redis.Redis, url: str) -> tuple[SwarmError | None, str]:
    """Why the sentinels named no primary: (an error to raise at once, or None when waiting may help; a reason).

    Raised at once: no sentinel monitors the URL's name (UserError), a sentinel refuses the credentials
    or its TLS. Waiting may help when no sentinel answers, or they know the name but no live primary.
    """
    pool: Any = r.connection_pool
    manager: Sentinel = pool.sentinel_manager
    service: str = pool.service_name
    masked = mask_url(url)
    names: set[str] = set()
    answered = 0
    sentinels: list[Any] = manager.sentinels  # redis-py types their replies loosely
    for sentinel in sentinels:
        kw = sentinel.connection_pool.connection_kwargs
        where = f"{kw.get('host')}:{kw.get('port')}"
        try:
            names.update(sentinel.sentinel_masters())
            answered += 1
        except redis.exceptions.AuthenticationError as exc:
            return BoardUnavailable(
                f"the sentinel at {where} refused the credentials ({exc}): give the sentinels' own password "
                f"as sentinel_password=... in the URL {masked}"
            ), str(exc)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
            fatal = tls_failure(url, exc)
            if fatal is not None:
                return BoardUnavailable(f"{fatal} (sentinel {where})"), fatal
        except redis.exceptions.ResponseError as exc:
            return BoardUnavailable(f"the sentinel at {where} refused SENTINEL MASTERS: {exc}"), str(exc)
    if answered and service not in names:
        known = ", ".join(sorted(names)) or "nothing"
        return UserError(
            f"bad Redis URL {masked!r}: no sentinel monitors a primary named {service!r} (they monitor: {known})"
        ), "unknown name"
    total = len(manager.sentinels)
    if not answered:
        return None, f"none of the {total} sentinels answered"
    return None, f"{answered} of {total} sentinels answered, none names a live primary {service!r} (a failover?)"


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


class NotReplicated(BoardUnavailable):
    """The primary has the write but no replica acknowledged it in time: not stored yet.

    Raised only for idempotent writes (a result, a leader move), so the caller keeps what it wrote and
    sends it again, as when Redis is unreachable; it is in `BOARD_DOWN`.
    """


class Replication:
    """Makes a write count only once a replica has it, when the primary has replicas.

    `write(call)` runs `call(client)` (a board script). Without replicas it is that call alone, as fast
    as ever. With replicas the call goes in one pipeline with `INCRBY <barrier> 0` and
    `WAIT REPLICA_ACKS REPLICA_WAIT_MS` on the same connection. The INCRBY changes nothing but is
    replicated like any write, so WAIT covers everything the primary held when the call ran: the call's
    own write, and also an earlier one it found done (a result published again after a lost reply, a
    leader move already made), which WAIT after a script that wrote nothing would not cover.

    Whether the primary has replicas comes from `INFO replication` (`connected_slaves`), read on the
    first write, again every REPLICAS_CHECK_S, when the sentinels name another primary, and after a WAIT
    that fell short: a failover's new primary has no replica until the old one comes back, and a write
    there counts as stored once the check says so. A user that may not run INFO gets no WAIT (a warning
    says so once).
    """

    def __init__(self, r: redis.Redis, barrier_key: str) -> None:
        self.r: Any = r
        self.barrier_key = barrier_key  # an existing counter of the swarm: INCRBY 0 leaves it as it is
        self._replicas: int | None = None
        self._checked = 0.0  # time.monotonic() of the last INFO
        self._primary: object = None  # the sentinels' primary address at the last INFO (None without Sentinel)

    def replicas(self) -> int:
        """The primary's replicas as last read; read again when stale or the primary changed."""
        primary = getattr(self.r.connection_pool, "master_address", None)
        stale = time.monotonic() - self._checked > defaults.REPLICAS_CHECK_S
        if self._replicas is None or stale or primary != self._primary:
            return self.refresh()
        return self._replicas

    def refresh(self) -> int:
        try:
            info = self.r.info("replication")
            n = int(info.get("connected_slaves", 0)) if info.get("role") == "master" else 0
        except ResponseError as exc:  # NOPERM: an ACL user without INFO
            if self._replicas is None:
                log.warning("Redis refused INFO (%s): writes are not checked against replicas", exc)
            n = 0
        self._replicas, self._checked = n, time.monotonic()
        self._primary = getattr(self.r.connection_pool, "master_address", None)
        return n

    def write(self, call: Callable[[Any], Any]) -> tuple[Any, bool]:
        """`call(client)`'s reply, and whether a replica acknowledged it (True when there is none)."""
        if self.replicas() == 0:
            return call(self.r), True
        for attempt in (1, 2):
            pipe = self.r.pipeline(transaction=False)
            call(pipe)
            pipe.incrby(self.barrier_key, 0)
            pipe.execute_command("WAIT", defaults.REPLICA_ACKS, defaults.REPLICA_WAIT_MS)
            try:
                reply, _, acked = pipe.execute()
                break
            except NoScriptError:  # a failover between the pipeline's SCRIPT EXISTS and its EVALSHA
                if attempt == 2:
                    raise
        if int(acked) >= defaults.REPLICA_ACKS:
            return reply, True
        return reply, self.refresh() == 0  # none left to acknowledge (a new primary without its replica)

    def require(self, acknowledged: bool, what: str) -> None:
        """NotReplicated unless `acknowledged`: `what` is on the primary only, so not stored yet."""
        if not acknowledged:
            raise NotReplicated(
                f"{what}: no replica acknowledged it within {defaults.REPLICA_WAIT_MS} ms "
                f"(the primary has {self._replicas}); not stored yet, to be sent again"
            )


# What "the board is unreachable" looks like to code that must keep going without it (the agent loop
# keeps running experiments and holds results in its outbox until one of these stops being raised).
# ReadOnlyError: a plain URL that names a primary the sentinels demoted; writes fail until it leads
# again, so the agent backs off and keeps its results rather than crash (a Sentinel URL follows the
# new primary instead).
BOARD_DOWN: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,
    BoardUnavailable,
)
