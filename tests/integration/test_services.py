"""scripts/services.sh: idempotent up/down, status, and an eval-able env that points at real,
answering services."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from confluent_kafka.admin import AdminClient

from cryptolab.config import Settings
from cryptolab.kafka import ensure_topics

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "services.sh"
VARS = ("CRYPTOLAB_KAFKA_BOOTSTRAP", "CRYPTOLAB_STORE_URL", "CRYPTOLAB_REDIS_URL")
STATUS_LINE = re.compile(r"^(kafka|postgres|redis)\s+(up|down)\s+(\S+)\s+\((.+)\)$")

pytestmark = pytest.mark.integration


def services(*args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run scripts/services.sh without the CRYPTOLAB_* variables (as a fresh shell would)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOLAB_")}
    env.update(extra_env or {})
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def status() -> tuple[int, dict[str, tuple[str, str, str]]]:
    """Exit code of `status` and {service: (state, address, how)}."""
    proc = services("status")
    parsed: dict[str, tuple[str, str, str]] = {}
    for line in proc.stdout.splitlines():
        m = STATUS_LINE.match(line)
        assert m, f"unexpected status line {line!r}"
        parsed[m[1]] = (m[2], m[3], m[4])
    assert set(parsed) == {"kafka", "postgres", "redis"}, proc.stdout
    return proc.returncode, parsed


def evaluated_env(extra_env: dict[str, str] | None = None) -> dict[str, str]:
    """The variables a shell has after `eval "$(scripts/services.sh env)"`."""
    script = 'eval "$(bash scripts/services.sh env)"; printf "%s\\0" ' + " ".join(
        f'"${{{v}:-}}"' for v in VARS
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOLAB_")}
    env.update(extra_env or {})
    proc = subprocess.run(
        ["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    values = proc.stdout.split("\0")[: len(VARS)]
    return dict(zip(VARS, values, strict=True))


@pytest.fixture
def configured(kafka_bootstrap: str, _pg_admin_url: str, _redis_server: str) -> dict[str, str]:
    """The service URLs the test session uses; they must be the ones services.sh provides."""
    urls = dict(zip(VARS, (kafka_bootstrap, _pg_admin_url, _redis_server), strict=True))
    if evaluated_env() != urls:
        pytest.skip(
            "the session's services are not the ones scripts/services.sh provides "
            f"({urls} vs {evaluated_env()})"
        )
    return urls


def answers(urls: dict[str, str]) -> None:
    md = AdminClient({"bootstrap.servers": urls["CRYPTOLAB_KAFKA_BOOTSTRAP"]}).list_topics(
        timeout=30
    )
    assert md.brokers
    conninfo = urls["CRYPTOLAB_STORE_URL"].replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(conninfo, connect_timeout=10) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    client = redis.Redis.from_url(urls["CRYPTOLAB_REDIS_URL"], socket_connect_timeout=10)
    assert client.ping() is True
    client.close()


def test_up_is_idempotent_and_status_reports_all_up(configured: dict[str, str]) -> None:
    first = services("up")
    assert first.returncode == 0, first.stderr
    again = services("up")
    assert again.returncode == 0, again.stderr
    assert "starting" not in again.stderr, f"a second `up` restarted something:\n{again.stderr}"
    code, parsed = status()
    assert code == 0
    assert {s: v[0] for s, v in parsed.items()} == {"kafka": "up", "postgres": "up", "redis": "up"}
    assert parsed["kafka"][1] == configured["CRYPTOLAB_KAFKA_BOOTSTRAP"]
    assert parsed["postgres"][1] == configured["CRYPTOLAB_STORE_URL"]
    assert parsed["redis"][1] == configured["CRYPTOLAB_REDIS_URL"]


def test_env_is_evalable_and_points_at_answering_services(configured: dict[str, str]) -> None:
    proc = services("env")
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert [line.split("=", 1)[0] for line in lines] == [f"export {v}" for v in VARS]
    urls = evaluated_env()
    assert urls == configured
    answers(urls)
    # What `make test` exports is what cryptolab reads.
    s = Settings.from_env(urls)
    assert (s.kafka_bootstrap, s.store_url, s.redis_url) == tuple(urls.values())


def test_external_urls_are_passed_through_and_only_checked() -> None:
    """Set URLs are used as they are: `env` repeats them, `up` only checks them."""
    dead = {"CRYPTOLAB_REDIS_URL": "redis://:pw@127.0.0.1:9/3"}
    assert evaluated_env(dead)["CRYPTOLAB_REDIS_URL"] == "redis://:pw@127.0.0.1:9/3"
    proc = services("status", extra_env=dead)
    assert proc.returncode != 0
    redis_line = next(line for line in proc.stdout.splitlines() if line.startswith("redis"))
    assert STATUS_LINE.match(redis_line)
    assert " down " in redis_line and "(external)" in redis_line
    assert "pw" not in redis_line, "status must not print passwords"
    up = services("up", extra_env=dead)
    assert up.returncode != 0
    assert "redis" in up.stderr and "does not answer" in up.stderr
    assert "starting" not in up.stderr, "nothing may be started when a given URL is dead"


#: What the fake Redis of :class:`PortHolder` answers (``+OK`` to anything else).
REPLIES = {b"PING": b"+PONG\r\n", b"HELLO": b"%1\r\n$5\r\nproto\r\n:3\r\n"}


class PortHolder:
    """A listening socket on a fresh port of 127.0.0.1, in this process: silent, or answering
    Redis commands (:data:`REPLIES`) like a Redis that another stack started."""

    def __init__(self, *, answer_redis: bool = False) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self._open = True
        if answer_redis:
            threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while self._open:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    @staticmethod
    def _answer(conn: socket.socket) -> None:
        with conn:
            pending = b""
            while chunk := conn.recv(4096):
                pending += chunk
                # one reply per complete command (an array of bulk strings)
                while (m := re.match(rb"\*(\d+)\r\n", pending)) is not None:
                    parts, rest = [], pending[m.end():]
                    for _ in range(int(m[1])):
                        b = re.match(rb"\$(\d+)\r\n", rest)
                        if b is None or len(rest) < b.end() + int(b[1]) + 2:
                            break
                        parts.append(rest[b.end():b.end() + int(b[1])])
                        rest = rest[b.end() + int(b[1]) + 2:]
                    if len(parts) < int(m[1]):
                        break  # incomplete: wait for more
                    pending = rest
                    conn.sendall(REPLIES.get(parts[0].upper(), b"+OK\r\n"))

    def close(self) -> None:
        self._open = False
        self.sock.close()


@pytest.fixture
def fresh_state() -> Iterator[Path]:
    """A services state directory of its own, which the postgres OS user can reach (else the
    script would pick a directory derived from the checkout, shared with the dev servers')."""
    path = Path(tempfile.mkdtemp(prefix="cl-services-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _held(holders: dict[str, PortHolder], state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run services.sh on the local backend with the given ports (nothing of the dev servers')."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRYPTOLAB_", "SERVICES_"))}
    env.update({f"SERVICES_{name}_PORT": str(h.port) for name, h in holders.items()})
    env.update(SERVICES_BACKEND="local", SERVICES_DIR=str(state), SERVICES_WAIT_SECONDS="5")
    proc = subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert "starting" not in proc.stderr, f"a server was started:\n{proc.stderr}"
    return proc


def _names_port_and_holder(proc: subprocess.CompletedProcess[str], service: str, port: int, var: str) -> None:
    assert proc.returncode != 0, proc.stderr
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("services: error:")]
    assert line.startswith(f"services: error: {service}: port {port} on 127.0.0.1 is held by "), line
    assert f"(pid {os.getpid()})" in line, line  # the program holding it: this test process
    assert "did not start" in line and f"{var}=PORT" in line, line


def test_up_fails_at_once_naming_a_port_held_by_a_program_it_did_not_start(fresh_state: Path) -> None:
    holders = {name: PortHolder() for name in ("KAFKA", "KAFKA_CONTROLLER", "PG", "REDIS")}
    try:
        up = _held(holders, fresh_state, "up")
        _names_port_and_holder(up, "kafka", holders["KAFKA"].port, "SERVICES_KAFKA_PORT")
        for service, name in (("postgres", "PG"), ("redis", "REDIS")):
            one = _held(holders, fresh_state, "start", service)
            _names_port_and_holder(one, service, holders[name].port, f"SERVICES_{name}_PORT")
    finally:
        for h in holders.values():
            h.close()
    assert not list(fresh_state.rglob("*.pid")), "nothing may be started"


def test_a_server_answering_on_its_port_is_not_taken_for_its_own(fresh_state: Path) -> None:
    """Another stack's Redis answers PING on the port: `up` must refuse it, not use it (fault
    tests stop and restart the servers they run on)."""
    other = PortHolder(answer_redis=True)
    try:
        client = redis.Redis(host="127.0.0.1", port=other.port, socket_timeout=5)
        assert client.ping() is True  # it does answer like a Redis
        client.close()
        proc = _held({"REDIS": other}, fresh_state, "start", "redis")
        _names_port_and_holder(proc, "redis", other.port, "SERVICES_REDIS_PORT")
    finally:
        other.close()
    assert not (fresh_state / "redis" / "redis.pid").exists()


def test_unknown_command_prints_usage() -> None:
    proc = services("sideways")
    assert proc.returncode == 2
    assert "Usage: scripts/services.sh up|down|status|env" in proc.stderr


@pytest.mark.slow
@pytest.mark.restarts_services
def test_down_then_up_keeps_data(configured: dict[str, str], pg_url: str) -> None:
    """`down` stops everything (twice is fine), `up` brings it back with the data kept."""
    code, parsed = status()
    unmanaged = {s: v[2] for s, v in parsed.items() if "not started by" in v[2] or v[2] == "external"}
    if code != 0 or unmanaged:
        pytest.skip(f"services not (all) managed by scripts/services.sh here: {unmanaged}")

    settings = Settings.from_env({}, kafka_bootstrap=configured["CRYPTOLAB_KAFKA_BOOTSTRAP"])
    topic = f"t_{uuid.uuid4().hex}"
    assert ensure_topics(settings, {topic: 2}) == {topic: 2}
    conninfo = pg_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(conninfo) as conn:
        conn.execute("CREATE TABLE kept (x int)")
        conn.execute("INSERT INTO kept VALUES (42)")

    try:
        down = services("down")
        assert down.returncode == 0, down.stderr
        code, parsed = status()
        assert code != 0
        assert {s: v[0] for s, v in parsed.items()} == {
            "kafka": "down",
            "postgres": "down",
            "redis": "down",
        }
        again = services("down")
        assert again.returncode == 0, again.stderr
        # An unclean stop (a reboot) leaves pid files naming processes that no longer run:
        # `up` must not take such a pid for the server it has just started.
        dead = subprocess.Popen(["true"])
        dead.wait()
        state = Path(os.environ.get("SERVICES_DIR", ROOT / ".services"))
        for name in ("kafka", "redis"):
            (state / name).mkdir(parents=True, exist_ok=True)
            (state / name / f"{name}.pid").write_text(f"{dead.pid}\n")
    finally:
        up = services("up")
    assert up.returncode == 0, up.stderr
    code, parsed = status()
    assert code == 0, parsed
    answers(configured)
    md = AdminClient({"bootstrap.servers": configured["CRYPTOLAB_KAFKA_BOOTSTRAP"]}).list_topics(
        topic, timeout=30
    )
    assert len(md.topics[topic].partitions) == 2
    with psycopg.connect(conninfo) as conn:
        assert conn.execute("SELECT x FROM kept").fetchall() == [(42,)]
