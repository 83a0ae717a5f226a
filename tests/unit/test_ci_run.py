"""`.ci/run` stops on exit the services its run started, and only those.

The real ``.ci/run`` runs in a copy of its directory layout where ``scripts/services.sh`` is a
stub (``status`` prints what the test says, ``stop NAME`` is recorded) and ``make`` is a stub
that passes or fails: no service and no test suite is touched.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

STUB_SERVICES = """#!/usr/bin/env bash
case "$1" in
  status) printf '%s' "$STUB_STATUS"; [[ "$STUB_STATUS" != *" down "* ]] ;;
  stop) echo "$2" >>"$STUB_LOG" ;;
  *) echo "unexpected: $*" >>"$STUB_LOG"; exit 2 ;;
esac
"""

STUB_MAKE = """#!/usr/bin/env bash
echo "===== 3 passed in 1.0s ====="
exit "$STUB_MAKE_RC"
"""

UP = {
    "kafka": "kafka     up    127.0.0.1:19092  (local, pid 11)\n",
    "postgres": "postgres  up    postgresql+psycopg://cryptolab@127.0.0.1:55432/cryptolab  (local, pid 12)\n",
    "redis": "redis     up    redis://127.0.0.1:56379/0  (local, pid 13)\n",
}
DOWN = {
    "kafka": "kafka     down  127.0.0.1:19092  (local)\n",
    "postgres": "postgres  down  postgresql+psycopg://cryptolab@127.0.0.1:55432/cryptolab  (local)\n",
    "redis": "redis     down  redis://127.0.0.1:56379/0  (local)\n",
}


def _executable(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def run_ci(tmp: Path, status: str, make_rc: int) -> tuple[int, list[str]]:
    """Run a copy of .ci/run with the stubs; return its exit code and the services it stopped."""
    repo = tmp / "repo"
    (repo / ".ci").mkdir(parents=True)
    shutil.copy2(ROOT / ".ci" / "run", repo / ".ci" / "run")
    _executable(repo / "scripts" / "services.sh", STUB_SERVICES)
    _executable(tmp / "bin" / "make", STUB_MAKE)
    log = tmp / "stopped.log"
    env = {**os.environ, "PATH": f"{tmp / 'bin'}:{os.environ['PATH']}", "STUB_STATUS": status,
           "STUB_LOG": str(log), "STUB_MAKE_RC": str(make_rc)}
    proc = subprocess.run(["bash", str(repo / ".ci" / "run")], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    return proc.returncode, log.read_text().split() if log.exists() else []


@pytest.mark.parametrize("make_rc", [0, 1])
def test_a_run_that_found_nothing_up_stops_everything_it_started(tmp_path: Path, make_rc: int) -> None:
    rc, stopped = run_ci(tmp_path, "".join(DOWN.values()), make_rc)
    assert rc == make_rc
    assert stopped == ["kafka", "postgres", "redis"]


def test_services_up_before_the_run_or_external_are_left_running(tmp_path: Path) -> None:
    external = "redis     down  redis://other-host:6379/0  (external)\n"
    rc, stopped = run_ci(tmp_path, UP["kafka"] + DOWN["postgres"] + external, 0)
    assert rc == 0
    assert stopped == ["postgres"]
