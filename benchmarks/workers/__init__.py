"""The suite's worker processes: each measured run happens in a fresh Python of its own.

``python -m benchmarks.workers KIND PARAMS_JSON`` runs one worker (see
:mod:`benchmarks.workers.__main__` for the kinds) and prints its result as a JSON line;
:func:`run_worker` waits for one, :func:`spawn` and :func:`collect` run one alongside the
suite. Workers see none of the parent's ``CRYPTOLAB_*`` variables (their parameters say
everything) and find this checkout's ``benchmarks`` package through ``PYTHONPATH``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Final

__all__ = ["ROOT", "collect", "run_worker", "spawn", "worker_command", "worker_env", "worker_result"]

#: The source checkout this harness belongs to (the folder holding ``benchmarks/``).
ROOT: Final = Path(__file__).resolve().parents[2]


def worker_env(*, unbuffered: bool = False) -> dict[str, str]:
    """The environment of a worker: this one without ``CRYPTOLAB_*``, the checkout first on
    ``PYTHONPATH``.

    Examples
    --------
    >>> env = worker_env(unbuffered=True)
    >>> env["PYTHONPATH"].split(os.pathsep)[0] == str(ROOT), env["PYTHONUNBUFFERED"]
    (True, '1')
    >>> any(k.startswith("CRYPTOLAB_") for k in env)
    False
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOLAB_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    return env


def worker_command(kind: str, params: dict[str, Any]) -> list[str]:
    """The command line of a worker of ``kind`` with ``params``."""
    return [sys.executable, "-m", "benchmarks.workers", kind, json.dumps(params)]


def worker_result(what: str, returncode: int, out: str, err: str) -> dict[str, Any]:
    """A finished worker's result: its last JSON line of ``out`` (raises with the tail of
    ``err``, else of ``out``, when it failed or printed none).

    Examples
    --------
    >>> worker_result("x worker", 0, 'log line\\n{"ticks": 5}\\n', "")
    {'ticks': 5}
    """
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if returncode != 0 or not lines:
        tail = (err or out).strip().splitlines()[-15:]
        raise RuntimeError(f"{what} failed (exit {returncode}):\n" + "\n".join(tail))
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def run_worker(kind: str, params: dict[str, Any], *, timeout: float) -> dict[str, Any]:
    """Run one measurement in a fresh Python process; return its JSON result."""
    proc = subprocess.run(worker_command(kind, params), capture_output=True, text=True, timeout=timeout,
                          env=worker_env(unbuffered=True), check=False)
    return worker_result(f"{kind} worker", proc.returncode, proc.stdout, proc.stderr)


def spawn(kind: str, params: dict[str, Any]) -> subprocess.Popen[str]:
    """Start a worker that runs alongside the suite (read it with :func:`collect`)."""
    return subprocess.Popen(worker_command(kind, params), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=worker_env())


def collect(proc: subprocess.Popen[str], what: str, timeout: float = 60) -> dict[str, Any]:
    """Wait for a spawned worker (killed after ``timeout`` seconds); return its JSON result."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return worker_result(what, proc.returncode, out, err)
