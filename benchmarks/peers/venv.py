"""Virtual environments of their own for peers whose pins clash with cryptolab's.

A peer that needs another Python (NautilusTrader needs 3.12 or later) or dependencies that
would clash with ours runs in a virtualenv the benchmark creates once, in a git-ignored
cache folder of the checkout (``.cache/bench-venvs/<name>``), and reuses while its
interpreter and requirements are the same. When no suitable interpreter is found or the
install fails, :func:`ensure_venv` raises :class:`PeerUnavailable` with the reason: the suite
records its section as ``skipped`` with that reason, and the run exits 1 (under ``CI=true``
too).

Examples
--------
>>> find_python(["9.99"], roots=[]) is None
True
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from benchmarks.workers import ROOT

__all__ = ["CACHE_DIR", "PeerUnavailable", "ensure_venv", "find_python", "pyenv_roots"]

#: Where the peers' virtualenvs live (``.cache/`` is git-ignored).
CACHE_DIR: Final = ROOT / ".cache" / "bench-venvs"
#: The file that says a virtualenv is complete, and for which interpreter and requirements.
_MARKER: Final = "cryptolab-bench-venv.txt"


class PeerUnavailable(RuntimeError):
    """A peer cannot run here (no interpreter, install failed): its section is skipped with
    this reason."""


def pyenv_roots() -> list[Path]:
    """Folders holding pyenv's interpreters (``$PYENV_ROOT/versions``, ``~/.pyenv/versions``)."""
    roots = [Path(os.environ["PYENV_ROOT"]) / "versions"] if os.environ.get("PYENV_ROOT") else []
    return [*roots, Path.home() / ".pyenv" / "versions"]


def find_python(versions: Sequence[str], *, roots: Sequence[Path] | None = None) -> Path | None:
    """The first interpreter found for ``versions`` (``["3.12", "3.13"]``, in order of
    preference): ``pythonX.Y`` on ``PATH``, else in pyenv's folders (``roots``).

    Parameters
    ----------
    versions
        ``major.minor`` versions, the preferred first.
    roots
        Folders of per-version installs (default :func:`pyenv_roots`).

    Returns
    -------
    pathlib.Path or None
        The interpreter, or ``None`` when none of ``versions`` is installed.
    """
    search = pyenv_roots() if roots is None else list(roots)
    for version in versions:
        on_path = shutil.which(f"python{version}")
        candidates = [Path(on_path)] if on_path else []
        for root in search:
            candidates += sorted(root.glob(f"{version}.*/bin/python{version}"), reverse=True)
        for candidate in candidates:
            if _runs(candidate, version):
                return candidate
    return None


def _runs(python: Path, version: str) -> bool:
    """Whether ``python`` starts and is ``version`` (a pyenv shim of a version not selected does not)."""
    try:
        proc = subprocess.run([str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                              capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0 and proc.stdout.strip() == version


def _pip_tail(proc: subprocess.CompletedProcess[str]) -> str:
    lines = (proc.stderr or proc.stdout or "").strip().splitlines()
    return " | ".join(lines[-3:]) if lines else f"exit {proc.returncode}"


def ensure_venv(
    name: str,
    requirements: Sequence[str],
    *,
    interpreter: Path | None,
    cache_dir: Path | None = None,
    timeout: float = 900.0,
) -> Path:
    """The Python of a virtualenv ``name`` with ``requirements`` installed: created with
    ``interpreter`` and installed by pip the first time, reused afterwards.

    Parameters
    ----------
    name
        The peer (the folder's name).
    requirements
        pip requirement specifiers (``["nautilus-trader==1.231.0"]``).
    interpreter
        The Python to create it with (see :func:`find_python`); ``None`` means none was found.
    cache_dir
        Parent folder of the virtualenvs (default :data:`CACHE_DIR`).
    timeout
        Seconds allowed for creating it and for the install.

    Returns
    -------
    pathlib.Path
        The virtualenv's ``python``.

    Raises
    ------
    PeerUnavailable
        When ``interpreter`` is missing or the virtualenv cannot be created or installed.
    """
    if interpreter is None or not Path(interpreter).exists():
        raise PeerUnavailable(f"{name}: no suitable Python interpreter found ({interpreter or 'none on PATH or in pyenv'})")
    home = (cache_dir or CACHE_DIR) / name
    python = home / "bin" / "python"
    wanted = f"{Path(interpreter).resolve()}\n" + "\n".join(requirements) + "\n"
    marker = home / _MARKER
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    shutil.rmtree(home, ignore_errors=True)  # incomplete, or for other requirements
    home.parent.mkdir(parents=True, exist_ok=True)
    steps = [
        [str(interpreter), "-m", "venv", str(home)],
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *requirements],
    ]
    for step in steps:
        try:
            proc = subprocess.run(step, capture_output=True, text=True, timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PeerUnavailable(f"{name}: {' '.join(step[1:4])} failed: {exc}") from exc
        if proc.returncode != 0:
            raise PeerUnavailable(f"{name}: {' '.join(step[1:4])} failed: {_pip_tail(proc)}")
    marker.write_text(wanted)
    return python

