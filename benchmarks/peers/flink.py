"""Apache Flink, the seed's engine: its SQL job on the consumer's topic, and its candles vs cryptolab's.

:func:`setup` gets what the job needs, each once into the git-ignored ``.cache/bench/``: a
Java runtime of at least :data:`MIN_JAVA` (``JAVA_HOME``, else ``java`` on ``PATH``), PyFlink
(PyPI ``apache-flink``) in a virtualenv of its own (its pins clash with cryptolab's: pandas,
pyarrow, apache-beam), and the Kafka SQL connector jar matching it, fetched by Maven from Maven
Central. Whatever is missing raises :class:`~benchmarks.peers.venv.PeerUnavailable` with the
reason. :func:`run_flink` runs :mod:`benchmarks.peers.flink_job` in that virtualenv;
:func:`compare_flink_candles` checks its candles against cryptolab's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from benchmarks.peers.venv import CACHE_DIR, PeerUnavailable, ensure_venv, find_python

__all__ = ["CONNECTOR", "FLINK", "MIN_JAVA", "FlinkSetup", "compare_flink_candles", "java_major",
           "run_flink", "setup"]

#: PyFlink, pinned to the Flink release the connector below is built for.
FLINK: Final = "apache-flink==2.2.1"
#: The Kafka SQL connector for Flink 2.2 (Maven coordinates).
CONNECTOR: Final = "org.apache.flink:flink-sql-connector-kafka:5.0.0-2.2"
#: Flink 2.x runs on Java 11, 17 (its default) and 21.
MIN_JAVA: Final = 11
#: The interpreters PyFlink 2.2 has wheels for, preferred first.
PYTHONS: Final = ("3.11", "3.12", "3.10")
#: Where the connector jar is fetched to (beside the peers' virtualenvs, git-ignored).
CACHE: Final = CACHE_DIR.parent / "bench"
_JOB: Final = Path(__file__).resolve().parent / "flink_job.py"


@dataclass(frozen=True)
class FlinkSetup:
    """What a Flink run needs: the virtualenv's interpreter, the connector jar, the Java home."""

    python: Path
    jar: Path
    java_home: str | None
    java: str


def java_major(version_text: str) -> int | None:
    """The major version in ``java -version``'s output (``None`` when there is none).

    Examples
    --------
    >>> java_major('openjdk version "17.0.15" 2025-04-15')
    17
    >>> java_major('java version "1.8.0_392"'), java_major("nothing")
    (8, None)
    """
    m = re.search(r'version "(\d+)(?:\.(\d+))?', version_text)
    if m is None:
        return None
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major


def _java() -> tuple[str | None, str]:
    """``JAVA_HOME`` (or ``None``: ``java`` on ``PATH``) and the ``java -version`` line."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).exists():
        raise PeerUnavailable(f"Flink needs a Java runtime >= {MIN_JAVA} (JAVA_HOME or java on PATH): none found")
    out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60, check=False)
    text = (out.stderr or out.stdout).strip()
    major = java_major(text)
    if major is None or major < MIN_JAVA:
        raise PeerUnavailable(f"Flink 2.x needs Java >= {MIN_JAVA}; {java} is {text.splitlines()[0] if text else '?'}")
    return home, text.splitlines()[0]


def _connector_jar() -> Path:
    """The connector jar in the cache, fetched by Maven (``dependency:copy``) the first time."""
    group, artifact, version = CONNECTOR.split(":")
    folder = CACHE / "flink-jars"
    jar = folder / f"{artifact}-{version}.jar"
    if jar.exists():
        return jar
    mvn = shutil.which("mvn")
    if mvn is None:
        raise PeerUnavailable(f"fetching {CONNECTOR} needs Maven (mvn on PATH): none found")
    cmd = [mvn, "-q", "-B", "dependency:copy", f"-Dartifact={CONNECTOR}", f"-DoutputDirectory={folder}"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    except subprocess.TimeoutExpired:
        raise PeerUnavailable(f"`mvn dependency:copy -Dartifact={CONNECTOR}` took over 600 s") from None
    if out.returncode != 0 or not jar.exists():
        tail = " | ".join((out.stdout + out.stderr).strip().splitlines()[-4:])
        raise PeerUnavailable(f"`mvn dependency:copy -Dartifact={CONNECTOR}` failed (exit {out.returncode}): {tail}")
    return jar


def flink_python() -> Path:
    """The Python of PyFlink's virtualenv (created the first time, with the first of
    :data:`PYTHONS` found)."""
    return ensure_venv("flink", [FLINK], interpreter=find_python(PYTHONS))


def setup() -> FlinkSetup:
    """Java checked, PyFlink's virtualenv and the connector jar ready (created the first time).

    Raises
    ------
    PeerUnavailable
        No Java >= :data:`MIN_JAVA`, no Python PyFlink supports, pip or Maven refused.
    """
    home, java = _java()
    python = flink_python()
    return FlinkSetup(python=python, jar=_connector_jar(), java_home=home, java=java)


def run_flink(fs: FlinkSetup, params: dict[str, Any], *, timeout: float) -> dict[str, Any]:
    """Run :mod:`benchmarks.peers.flink_job` with ``params`` (plus the jar) in Flink's virtualenv."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRYPTOLAB_", "PYTHON"))}
    if fs.java_home:
        env["JAVA_HOME"] = fs.java_home
    cmd = [str(fs.python), str(_JOB), json.dumps({**params, "jar": str(fs.jar)})]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise RuntimeError(f"the Flink job failed (exit {proc.returncode}):\n{tail}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def compare_flink_candles(ours: list[list[Any]], flink: list[list[Any]]) -> dict[str, Any]:
    """cryptolab's candles (``[symbol, interval, window_start, o, h, l, c, volume]``) vs Flink's
    (the same, then ``trades, first_ts, last_ts, first_arrival_ts, last_arrival_ts``).

    Windows, high, low and volume are compared bit for bit. Flink's ``FIRST_VALUE`` and
    ``LAST_VALUE`` follow arrival order, cryptolab's open and close event time (the earliest
    tick, then the first to arrive of those; the latest, then the last): they are the same
    tick exactly when the first tick to arrive is at the window's earliest event time (the
    last at its latest). Open and close are compared bit for bit in those windows; the others
    are counted (``open_by_arrival``, ``close_by_arrival``), not compared.

    Examples
    --------
    >>> ours = [["X", "1m", 0, 1.0, 2.0, 0.5, 1.5, 3.0]]
    >>> flink = [["X", "1m", 0, 1.0, 2.0, 0.5, 1.5, 3.0, 3, 10, 50, 10, 50]]
    >>> compare_flink_candles(ours, flink)["match"]
    True
    >>> late = [["X", "1m", 0, 9.0, 2.0, 0.5, 1.5, 3.0, 3, 10, 50, 20, 50]]  # a tick at 10 ms came second
    >>> cmp = compare_flink_candles(ours, late)
    >>> cmp["match"], cmp["open_by_arrival"]
    (True, 1)
    >>> compare_flink_candles(ours, [["X", "1m", 0, 1.0, 2.0, 0.5, 1.5, 3.5, 3, 10, 50, 10, 50]])["mismatched"]
    1
    """
    mine = {(r[0], r[1], r[2]): r[3:8] for r in ours}
    theirs = {(r[0], r[1], r[2]): r for r in flink}
    mismatched = open_by_arrival = close_by_arrival = 0
    examples: list[Any] = []
    for key, r in theirs.items():
        got = mine.get(key)
        if got is None:
            continue
        o_ok = r[3] == got[0] if r[11] == r[9] else True
        c_ok = r[6] == got[3] if r[12] == r[10] else True
        open_by_arrival += r[11] != r[9]
        close_by_arrival += r[12] != r[10]
        if not (o_ok and c_ok and [r[4], r[5], r[7]] == [got[1], got[2], got[4]]):
            mismatched += 1
            if len(examples) < 3:
                examples.append({"key": list(key), "cryptolab": list(got), "flink": r[3:]})
    only_ours = len(mine.keys() - theirs.keys())
    only_flink = len(theirs.keys() - mine.keys())
    return {"compared": len(mine.keys() & theirs.keys()), "mismatched": mismatched,
            "cryptolab_only": only_ours, "flink_only": only_flink,
            "open_by_arrival": open_by_arrival, "close_by_arrival": close_by_arrival,
            "ticks_flink": sum(r[8] for r in flink if r[1] == flink[0][1]) if flink else 0,
            "match": bool(mine) and mismatched == 0 and only_ours == 0 and only_flink == 0,
            "examples": examples,
            "how": "windows, high, low, volume bit for bit; open/close bit for bit where the first/last "
                   "tick to arrive is at the window's earliest/latest event time (Flink's FIRST_VALUE/"
                   "LAST_VALUE follow arrival order), the others counted as open_by_arrival/close_by_arrival"}
