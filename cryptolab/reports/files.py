"""Notebook files: read one (nbformat 4), move a finished output into its place.

Examples
--------
>>> import pathlib, tempfile
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "work.html").write_text("<p>done</p>")
>>> move_into(d / "work.html", d / "report.html") == d / "report.html"
True
>>> move_into(None, d / "report.html") is None
True
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["move_into", "read_notebook"]


def read_notebook(path: str | Path) -> Any:
    """The notebook at ``path`` as a ``NotebookNode`` (nbformat 4)."""
    import nbformat

    return nbformat.read(str(path), as_version=4)  # type: ignore[no-untyped-call]


def move_into(work: Path | None, final: Path) -> Path | None:
    """Put a finished output in its place (an atomic rename within ``output_dir``)."""
    if work is None or not work.exists():
        return None
    os.replace(work, final)
    return final
