"""A peer's own virtualenv: created once with a given interpreter in a git-ignored cache, reused after.

Peers whose pins clash with cryptolab's (or that need another Python) run in a virtualenv of
their own under ``.cache/bench/`` (git-ignored). :func:`ensure_venv` creates it with the first
interpreter found of those asked for, pip-installs the requirements once, and stamps it; a
later run with the same interpreter and requirements reuses it as it is. When it cannot be
had (no such interpreter, pip refused a package) it raises :class:`PeerUnavailable` with a
reason a person can act on: the suite then records the section as skipped with that reason.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

__all__ = ["CACHE", "PeerUnavailable", "ensure_venv", "find_python", "venv_python"]

#: The benchmark peers' cache (virtualenvs, jars): git-ignored through ``.cache/``.
CACHE: Final = Path(__file__).resolve().parents[2] / ".cache" / "bench"


class PeerUnavailable(RuntimeError):
    """A peer cannot be set up here; the message says why (the section is skipped with it)."""


def find_python(versions: Sequence[str]) -> Path | None:
    """The first interpreter found of ``versions`` (``"3.11"``...): on ``PATH`` as
    ``pythonX.Y``, else a pyenv version ``X.Y.*``; ``None`` when there is none.

    Examples
    --------
    >>> find_python([]) is None
    True
    >>> find_python(["0.1"]) is None
    True
    """
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    for version in versions:
        found = shutil.which(f"python{version}")
        if found:
            return Path(found)
        candidates = sorted(pyenv.glob(f"{version}.*/bin/python{version}")) if pyenv.is_dir() else []
        if candidates:
            return candidates[-1]
    return None


def venv_python(venv: Path) -> Path:
    """The interpreter of the virtualenv at ``venv``.

    Examples
    --------
    >>> venv_python(Path("/x/env")).as_posix() in ("/x/env/bin/python", "/x/env/Scripts/python.exe")
    True
    """
    return venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def _tail(text: str, lines: int = 6) -> str:
    """The last non-empty ``lines`` of ``text``, on one line."""
    return " | ".join([ln.strip() for ln in text.splitlines() if ln.strip()][-lines:])


def ensure_venv(name: str, requirements: Sequence[str], *, pythons: Sequence[str],
                timeout: float = 1_800.0) -> Path:
    """The interpreter of the peer virtualenv ``name`` with ``requirements`` installed.

    Parameters
    ----------
    name
        The folder under :data:`CACHE`.
    requirements
        pip requirement specifiers (pin them: the stamp compares them as written).
    pythons
        Acceptable interpreter versions, preferred first (see :func:`find_python`).
    timeout
        Seconds allowed to ``pip install`` (the first run downloads everything).

    Returns
    -------
    Path
        The virtualenv's ``python``.

    Raises
    ------
    PeerUnavailable
        No acceptable interpreter, or the virtualenv could not be created or installed.
    """
    base = find_python(pythons)
    if base is None:
        raise PeerUnavailable(f"{name} needs Python {' or '.join(pythons)}: none found on PATH or in pyenv")
    venv = CACHE / name
    python = venv_python(venv)
    stamp = venv / "cryptolab-bench.stamp"
    want = hashlib.sha256("\n".join([str(base), *requirements]).encode()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == want:
        return python
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    steps = [([str(base), "-m", "venv", str(venv)], 300.0),
             ([str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", *requirements], timeout)]
    for cmd, limit in steps:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=limit, check=False)
        except subprocess.TimeoutExpired:
            raise PeerUnavailable(f"{name}: `{' '.join(cmd[:4])} ...` took over {limit:.0f} s") from None
        if proc.returncode != 0:
            raise PeerUnavailable(f"{name}: `{' '.join(cmd[:4])} ...` failed (exit {proc.returncode}): "
                                  f"{_tail(proc.stderr or proc.stdout)}")
    stamp.write_text(want + "\n")
    return python
