"""Locust, the load generator of the ``api`` section, in a virtualenv of its own.

PyPI ``locust`` pins gevent, Flask, requests and more, none of which cryptolab needs: it runs in
a virtualenv made once by :func:`benchmarks.peers.venv.ensure_venv` (``.cache/bench-venvs/locust``)
with the first of this interpreter's Python version, 3.12 or 3.13 found. Each run is one
``locust --headless`` process on :data:`LOCUSTFILE`, which sends one request path as fast as
``users`` concurrent users can (no wait between requests) and writes every response time (ms,
as locust measures it: request sent to body read) to a JSON file, for exact percentiles.

Examples
--------
>>> LOCUSTFILE.name, LOCUST_REQUIREMENT
('locustfile.py', 'locust==2.47.0')
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Final

from benchmarks.peers.venv import ensure_venv, find_python
from benchmarks.results import percentile

__all__ = ["LOCUSTFILE", "LOCUST_REQUIREMENT", "locust_python", "run_locust"]

#: The version the figures were measured with.
LOCUST_REQUIREMENT: Final = "locust==2.47.0"
#: The users' behaviour: one path, no wait, raw response times to a file.
LOCUSTFILE: Final = Path(__file__).resolve().parent / "locustfile.py"


def locust_python() -> Path:
    """The Python of the locust virtualenv (created the first time).

    Raises
    ------
    PeerUnavailable
        No interpreter found, or the install failed.
    """
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    versions = [here, *(v for v in ("3.12", "3.13", "3.11") if v != here)]
    return ensure_venv("locust", [LOCUST_REQUIREMENT], interpreter=find_python(versions))


def run_locust(python: Path, host: str, path: str, *, users: int, seconds: int,
               timeout: float = 300.0) -> dict[str, Any]:
    """One headless locust run of ``users`` users requesting ``host + path`` for ``seconds``.

    Returns
    -------
    dict
        ``requests`` (answered 200), ``failures``, ``seconds`` (from the moment every user
        runs to the end), ``rps``, ``ms_p50``, ``ms_p99``, ``ms_max``, and ``locust_cpu_s``
        (the CPU the locust process used, start-up included).
    """
    with tempfile.TemporaryDirectory(prefix="cl-locust-") as tmp:
        out = Path(tmp) / "times.json"
        cmd = [str(python), "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
               "--host", host, "-u", str(users), "-r", str(users), "--run-time", f"{max(1, int(seconds))}s",
               "--stop-timeout", "5", "--loglevel", "WARNING", "--exit-code-on-error", "0"]
        env = {"PATH": str(Path(python).parent), "BENCH_LOCUST_PATH": path, "BENCH_LOCUST_OUT": str(out),
               "HOME": tmp}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + seconds, env=env,
                                  cwd=tmp, check=False)
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"locust did not finish within {timeout + seconds:.0f} s") from exc
        if proc.returncode != 0 or not out.exists():
            tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
            raise RuntimeError(f"locust exited {proc.returncode}: {tail}")
        raw = json.loads(out.read_text())
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    times: list[float] = raw["ms"]
    if not times:
        raise RuntimeError(f"locust got no answer from {host}{path} (failures: {raw['failures']})")
    span = max(raw["end"] - raw["start"], 1e-9)
    return {"requests": len(times), "failures": raw["failures"], "seconds": round(span, 3),
            "rps": len(times) / span, "ms_p50": percentile(times, 50), "ms_p99": percentile(times, 99),
            "ms_max": max(times), "locust_cpu_s": round(cpu, 2)}

