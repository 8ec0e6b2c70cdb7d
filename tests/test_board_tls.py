"""The board over TLS (`rediss://`): a throwaway CA, TLS-only redis-servers, and each way to get it wrong.

The module makes a CA, a server certificate for 127.0.0.1 and a client certificate with the `openssl`
command line, then starts TLS-only servers (`--port 0`) through swarm.board.embedded.RedisProcess. Every
check goes through the project's own paths: swarm.board.connection.connect, Board, and the `swarm` CLI as a real
subprocess. A TLS-only Sentinel group (primary, replica, three sentinels) checks `rediss+sentinel://`.
The module is skipped when openssl is missing or redis-server was built without TLS.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from cli_run import one_line_error, swarm_cli
from redis.sentinel import SentinelManagedSSLConnection
from test_board_core import TRACK, make_arena

from swarm import defaults
from swarm.board import EMPTY_PATCH, Board, HypothesisIn, ResultIn
from swarm.board.connection import connect
from swarm.board.embedded import RedisProcess, SentinelGroup, ServerTLS, free_port, redis_server_binary
from swarm.errors import BoardUnavailable, SwarmError, UserError

OPENSSL = shutil.which("openssl")
PASSWORD = "tls-s3cret"
# What a redis-server built without TLS says when asked for --tls-port (7.0: the directive is unknown;
# 7.2+: no connection type "tls" is registered).
NO_TLS_SIGNS = ("Bad directive", "connection listener of tls", "TLS not supported", "not built with TLS")

if OPENSSL is None:
    pytest.skip("the openssl command line is needed to make test certificates", allow_module_level=True)


@dataclass(frozen=True)
class Pki:
    ca: str
    server_cert: str  # names IP 127.0.0.1 only, so `localhost` is a host the certificate does not list
    server_key: str
    client_cert: str
    client_key: str


def _openssl(cwd: Path, *args: str) -> None:
    assert OPENSSL is not None
    p = subprocess.run([OPENSSL, *args], cwd=cwd, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, f"openssl {args[0]} failed: {p.stderr}"


def _signed(cwd: Path, name: str, subject: str, extfile: str | None = None) -> None:
    """`name`.key and `name`.crt: a P-256 key and a one-day certificate signed by ca.key."""
    _openssl(
        cwd,
        *("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", subject),
        *("-keyout", f"{name}.key", "-out", f"{name}.csr"),
    )
    ext = ["-extfile", extfile] if extfile else []
    _openssl(
        cwd,
        *("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial"),
        *("-days", "1", "-out", f"{name}.crt", *ext),
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    _openssl(
        d,
        *("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"),
        *("-days", "1", "-subj", "/CN=swarm test CA", "-keyout", "ca.key", "-out", "ca.crt"),
    )
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _signed(d, "server", "/CN=127.0.0.1", "server.ext")
    _signed(d, "client", "/CN=swarm-agent")
    return Pki(*(str(d / f) for f in ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")))


def _start(workdir: Path, tls: ServerTLS, password: str | None = None) -> RedisProcess:
    server = RedisProcess(workdir, password=password, tls=tls)
    try:
        server.start()
    except SwarmError:
        log = server.log_path.read_text(errors="replace") if server.log_path.exists() else ""
        if any(sign in log for sign in NO_TLS_SIGNS):
            pytest.skip(f"{redis_server_binary()} has no TLS support: {server.log_tail()}")
        raise
    return server


@pytest.fixture(scope="module")
def tls_server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    """A TLS-only server with no password; clients are not asked for a certificate."""
    server = _start(tmp_path_factory.mktemp("redis-tls"), ServerTLS(pki.server_cert, pki.server_key, pki.ca))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tls_pw_server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    """A TLS-only server with `--requirepass`."""
    tls = ServerTLS(pki.server_cert, pki.server_key, pki.ca)
    server = _start(tmp_path_factory.mktemp("redis-tls-pw"), tls, password=PASSWORD)
    yield server
    server.stop()




def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return swarm_cli(args, env, cwd, timeout=60)


def _no_ca(server: RedisProcess, password: str | None = None) -> str:
    """The server's URL without ssl_ca_certs: verification stays on, against the system's CAs."""
    auth = f":{password}@" if password else ""
    return f"rediss://{auth}127.0.0.1:{server.port}/0"


def test_board_round_trip_over_tls(tls_server: RedisProcess, swarm_name: str, tmp_path: Path) -> None:
    url = tls_server.url
    assert tls_server.tls is not None
    assert url == f"rediss://127.0.0.1:{tls_server.port}/0?ssl_ca_certs={tls_server.tls.ca}"
    r = connect(url)
    assert r.connection_pool.connection_class is redis.SSLConnection  # the query reached an SSL connection
    board = Board(r, swarm_name)
    board.init(make_arena(tmp_path / "arena"), min_delta=0.001)
    hid, created = board.post(HypothesisIn(text="Raise the LR over TLS", priority=3))
    assert created
    claim = board.claim("agent-tls", TRACK)
    assert claim is not None and claim.hypothesis.id == hid
    result = ResultIn(
        result_id="r-tls",
        hypothesis_id=hid,
        token=claim.token,
        agent_id="agent-tls",
        track=TRACK,
        status="keep",
        metric=0.97,
        patch_hash=EMPTY_PATCH,
    )
    assert board.publish(result).stored
    assert board.complete(hid, claim.token)
    moved = board.move_leader(TRACK, 0, 0.97, EMPTY_PATCH, hid, "agent-tls", "r-tls")
    assert moved.accepted and moved.leader is not None and moved.leader.generation == 1
    lead = board.leader(TRACK)
    assert lead is not None and lead.metric == 0.97
    assert board.status()["counts"]["done"] == 1
    r.close()


def test_cli_over_tls_with_flag_and_env(
    tls_server: RedisProcess, swarm_name: str, clean_env: dict[str, str], tmp_path: Path
) -> None:
    p = _cli(["--redis", tls_server.url, "--swarm", swarm_name, "post", "posted over TLS"], clean_env, tmp_path)
    assert p.returncode == 0, p.stderr
    env = dict(clean_env, SWARM_REDIS_URL=tls_server.url, SWARM_NAME=swarm_name)
    p = _cli(["status", "--json"], env, tmp_path)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["counts"]["open"] == 1


def test_unverifiable_certificate_is_one_line_and_not_retried(
    tls_pw_server: RedisProcess, clean_env: dict[str, str], tmp_path: Path
) -> None:
    url = _no_ca(tls_pw_server, PASSWORD)
    masked = f"rediss://:***@127.0.0.1:{tls_pw_server.port}/0"
    t0 = time.monotonic()
    with pytest.raises(BoardUnavailable) as exc:
        connect(url)  # default retries: a certificate does not become valid by waiting
    assert time.monotonic() - t0 < 2.0
    msg = str(exc.value)
    assert msg.startswith(f"TLS certificate of Redis at {masked} could not be verified (")
    assert msg.endswith("pass the CA that signed it as ssl_ca_certs=/path/to/ca.crt in the URL")
    assert "\n" not in msg and PASSWORD not in msg
    p = _cli(["--redis", url, "status", "--json"], clean_env, tmp_path)
    line = one_line_error(p)
    assert p.returncode == BoardUnavailable.exit_code
    assert line == f"error: {msg}"


def test_certificate_for_another_host(tls_server: RedisProcess) -> None:
    url = tls_server.url.replace("127.0.0.1", "localhost")  # the certificate lists IP 127.0.0.1 only
    with pytest.raises(BoardUnavailable, match=r"does not name the host in the URL \(.*'localhost'"):
        connect(url, retries=0)


def test_plain_url_against_the_tls_port(tls_server: RedisProcess) -> None:
    url = f"redis://127.0.0.1:{tls_server.port}/0"
    t0 = time.monotonic()
    with pytest.raises(BoardUnavailable) as exc:
        connect(url, retries=1, backoff_s=0.01)
    assert time.monotonic() - t0 < defaults.SOCKET_TIMEOUT_S  # the server hangs up at once: no timeout
    msg = str(exc.value)
    assert msg.startswith(f"cannot reach Redis at {url} after 2 attempts: ") and "\n" not in msg
    assert msg.endswith("(the server hung up on a plain connection: if that port only speaks TLS, use rediss://)")
    # Keeping the TLS options while dropping the s is caught before any connection is made.
    with pytest.raises(UserError, match=r"ssl_ca_certs is a TLS setting, which needs rediss://"):
        connect(tls_server.url.replace("rediss://", "redis://"))


def test_tls_url_against_a_plain_port(redis_url: str, pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    # A plain server reads the TLS hello as a half-typed command and waits: the handshake times out.
    monkeypatch.setattr(defaults, "SOCKET_TIMEOUT_S", 0.5)
    url = redis_url.replace("redis://", "rediss://") + f"?ssl_ca_certs={pki.ca}"
    t0 = time.monotonic()
    with pytest.raises(BoardUnavailable) as exc:
        connect(url)  # default retries: not retried, a plain port does not start speaking TLS
    assert time.monotonic() - t0 < 2.0
    assert str(exc.value) == (
        f"Redis at {url} did not answer the TLS handshake within 0.5 s: "
        "if that port serves plain Redis, use redis:// instead of rediss://"
    )


def test_password_over_tls(
    tls_pw_server: RedisProcess, swarm_name: str, clean_env: dict[str, str], tmp_path: Path
) -> None:
    url = tls_pw_server.url
    assert url.startswith(f"rediss://:{PASSWORD}@127.0.0.1:")
    board = Board.connect(url, swarm_name)
    assert board.post(HypothesisIn(text="behind a password and TLS"))[1]
    board.r.close()
    wrong = url.replace(PASSWORD, "wrong")
    with pytest.raises(BoardUnavailable) as exc:
        Board.connect(wrong, swarm_name)
    masked = f"rediss://:***@127.0.0.1:{tls_pw_server.port}/0?ssl_ca_certs="
    assert str(exc.value).startswith(f"cannot authenticate to Redis at {masked}")
    assert "wrong" not in str(exc.value)
    line = one_line_error(_cli(["--redis", wrong, "--swarm", swarm_name, "hypotheses"], clean_env, tmp_path))
    assert "cannot authenticate to Redis at rediss://:***@" in line and "wrong" not in line
    with pytest.raises(BoardUnavailable, match="cannot authenticate"):  # no password at all
        connect(url.replace(f":{PASSWORD}@", ""))


def test_client_certificate(pki: Pki, swarm_name: str, tmp_path: Path) -> None:
    tls = ServerTLS(pki.server_cert, pki.server_key, pki.ca, client_cert=pki.client_cert, client_key=pki.client_key)
    server = _start(tmp_path / "redis", tls)
    try:
        url = server.url  # ssl_ca_certs, ssl_certfile and ssl_keyfile
        assert f"ssl_certfile={pki.client_cert}&ssl_keyfile={pki.client_key}" in url
        board = Board.connect(url, swarm_name)
        assert board.post(HypothesisIn(text="with a client certificate"))[1]
        board.r.close()
        # The CA only. Under TLS 1.3 the client learns of the refusal either as the server's alert
        # (not retried) or as a hang-up on its first write (retried, then the same advice as a hint).
        bare = url.partition("&")[0]
        with pytest.raises(BoardUnavailable) as exc:
            connect(bare, retries=0)
        msg = str(exc.value)
        assert "client certificate" in msg and "\n" not in msg
        assert "pass ssl_certfile=/path/to/client.crt and ssl_keyfile=/path/to/client.key in the URL" in msg
        mismatched = url.replace(pki.client_key, pki.server_key)
        with pytest.raises(BoardUnavailable, match=r"^TLS connection to Redis at .* failed: .*KEY_VALUES_MISMATCH"):
            connect(mismatched)
    finally:
        server.stop()


def test_bad_tls_urls_are_user_errors(pki: Pki) -> None:
    port = free_port()
    base = f"rediss://:pw@127.0.0.1:{port}/0"  # never contacted: each URL is refused before connecting
    with pytest.raises(UserError, match=r"ssl_ca_certs=/nonexistent/ca\.crt does not exist"):
        connect(f"{base}?ssl_ca_certs=/nonexistent/ca.crt")
    with pytest.raises(UserError, match=r"unknown parameter 'ssl_ca_cert'"):  # a typo'd option name
        connect(f"{base}?ssl_ca_cert={pki.ca}")
    with pytest.raises(UserError) as exc:
        connect(f"redis://:pw@127.0.0.1:{port}/0?ssl_certfile={pki.client_cert}&ssl_password=topsecret")
    assert "ssl_certfile is a TLS setting" in str(exc.value)
    assert "topsecret" not in str(exc.value) and "ssl_password=***" in str(exc.value)


def test_sentinel_over_tls(pki: Pki, swarm_name: str, tmp_path: Path) -> None:
    """Sentinels, primary and replica all TLS-only; `rediss+sentinel://` verifies every one of them."""
    tls = ServerTLS(pki.server_cert, pki.server_key, pki.ca)
    group = SentinelGroup(tmp_path / "ha", password=PASSWORD, tls=tls)
    try:
        try:
            group.start()
        except SwarmError as exc:
            if "--sentinel did not start" in str(exc):
                pytest.skip(f"redis-server --sentinel with TLS is unavailable: {exc}")
            raise
        url = group.url
        assert url.startswith(f"rediss+sentinel://:{PASSWORD}@") and f"ssl_ca_certs={pki.ca}" in url
        board = Board.connect(url, swarm_name)
        assert isinstance(board.r.connection_pool.get_connection(), SentinelManagedSSLConnection)
        res = ResultIn(result_id="tls-ha", agent_id="a", track=TRACK, status="keep", metric=1.0, kind="baseline")
        assert board.publish(res).stored
        assert board.replication.replicas() == 1  # acknowledged by the replica, over TLS replication
        board.r.close()
        no_ca = url.partition("?")[0]  # verification stays on, against the system's CAs
        with pytest.raises(BoardUnavailable) as exc:
            connect(no_ca, retries=0)
        msg = str(exc.value)
        assert "could not be verified" in msg and "(sentinel 127.0.0.1:" in msg and PASSWORD not in msg
        plain = url.replace("rediss+sentinel://", "redis+sentinel://").partition("?")[0]
        with pytest.raises(BoardUnavailable, match="none of the 3 sentinels answered"):
            connect(plain, retries=0)
    finally:
        group.stop()
