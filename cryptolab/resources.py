"""Where cryptolab finds the notebooks it runs and the pipeline files it reads.

``cryptolab report`` and ``cryptolab demo`` run the market report
(``reports/market_report.ipynb``), ``cryptolab pipelines`` the notebook each
pipeline names. Each is looked up, in order, in:

1. the working directory's ``notebooks/`` (``pipelines/``): a project's own copies win;
2. ``CRYPTOLAB_NOTEBOOKS_DIR`` (``CRYPTOLAB_PIPELINES_DIR``);
3. the copy shipped with cryptolab (:func:`shipped_dir`): inside the installed
   package, where the wheel build puts the repository's ``notebooks/reports`` and
   ``pipelines`` (``cryptolab/_bundled``), or the repository's own folders when
   cryptolab runs from a source checkout.

A notebook is looked up file by file (a ``notebooks/`` folder without the report
does not hide the shipped one); the pipelines folder is the first of the three
that exists. A variable naming a folder that does not exist is an error.

Examples
--------
>>> import pathlib, tempfile
>>> empty = pathlib.Path(tempfile.mkdtemp())
>>> find_notebook("reports/market_report.ipynb", cwd=empty) == (
...     shipped_dir("notebooks") / "reports" / "market_report.ipynb")
True
>>> own = empty / "notebooks" / "reports"
>>> own.mkdir(parents=True)
>>> _ = (own / "market_report.ipynb").write_text("{}")
>>> find_notebook("reports/market_report.ipynb", cwd=empty) == own / "market_report.ipynb"
True
>>> pipelines_dir(cwd=empty) == shipped_dir("pipelines")
True
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

from cryptolab.errors import ConfigError, NotebookError

if TYPE_CHECKING:  # pragma: no cover
    from cryptolab.config import Settings

__all__ = ["REPORT", "find_notebook", "notebook_dirs", "pipelines_dir", "shipped_dir"]

#: The market report, relative to a notebooks folder.
REPORT: Final = "reports/market_report.ipynb"

_PACKAGE: Final = Path(__file__).resolve().parent


def shipped_dir(kind: Literal["notebooks", "pipelines"]) -> Path:
    """The notebooks or pipelines folder shipped with cryptolab.

    In an installed wheel, ``cryptolab/_bundled/<kind>`` (pyproject.toml maps the
    repository's folders there at build time); in a source checkout, the
    repository's ``<kind>/``.

    Examples
    --------
    >>> (shipped_dir("notebooks") / "reports" / "market_report.ipynb").is_file()
    True
    >>> sorted(p.name for p in shipped_dir("pipelines").glob("daily_*.toml"))
    ['daily_market_report.toml']
    """
    bundled = _PACKAGE / "_bundled" / kind
    return bundled if bundled.is_dir() else _PACKAGE.parent / kind


def _settings(settings: Settings | None) -> Settings:
    if settings is not None:
        return settings
    from cryptolab.config import Settings

    return Settings.from_env()


def _variable_dir(path: Path | None, variable: str) -> Path | None:
    if path is not None and not path.is_dir():
        raise ConfigError(f"{variable}: no folder at {path}")
    return path


def notebook_dirs(*, cwd: str | Path | None = None, settings: Settings | None = None) -> list[Path]:
    """The folders a notebook is looked up in, in order (see the module's documentation).

    Raises
    ------
    ConfigError
        ``CRYPTOLAB_NOTEBOOKS_DIR`` names a folder that does not exist.
    """
    env = _variable_dir(_settings(settings).notebooks_dir, "CRYPTOLAB_NOTEBOOKS_DIR")
    here = Path.cwd() if cwd is None else Path(cwd)
    dirs = [here / "notebooks", *([env] if env is not None else []), shipped_dir("notebooks")]
    return list(dict.fromkeys(dirs))


def find_notebook(
    path: str | Path,
    *,
    root: str | Path | None = None,
    cwd: str | Path | None = None,
    settings: Settings | None = None,
) -> Path:
    """The notebook file to run for ``path``.

    Parameters
    ----------
    path
        An absolute path, or a path relative to a notebooks folder
        (``reports/market_report.ipynb``; a leading ``notebooks/`` is optional).
    root
        Look here first (``root / path``): a pipeline's project folder.
    cwd
        Working directory whose ``notebooks/`` is searched (default: the current one).
    settings
        For ``CRYPTOLAB_NOTEBOOKS_DIR`` (default: from the environment).

    Raises
    ------
    NotebookError
        No such notebook; the message names every place looked in.
    ConfigError
        ``CRYPTOLAB_NOTEBOOKS_DIR`` names a folder that does not exist.

    Examples
    --------
    >>> find_notebook("notebooks/reports/market_report.ipynb").name
    'market_report.ipynb'
    >>> find_notebook("reports/nope.ipynb", cwd="/nonexistent")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cryptolab.errors.NotebookError: no notebook reports/nope.ipynb (looked for /nonexistent/notebooks/reports/nope.ipynb, ...)
    """
    p = Path(path)
    if p.is_absolute():
        if p.is_file():
            return p
        raise NotebookError(f"no notebook at {p}")
    tried: list[Path] = []
    if root is not None:
        tried.append(Path(root) / p)
    rel = Path(*p.parts[1:]) if len(p.parts) > 1 and p.parts[0] == "notebooks" else p
    tried += [d / rel for d in notebook_dirs(cwd=cwd, settings=settings)]
    for candidate in tried:
        if candidate.is_file():
            return candidate
    raise NotebookError(f"no notebook {p.as_posix()} (looked for {', '.join(map(str, tried))})")


def pipelines_dir(*, cwd: str | Path | None = None, settings: Settings | None = None) -> Path:
    """The pipelines folder: ``./pipelines``, else ``CRYPTOLAB_PIPELINES_DIR``, else the shipped one.

    Raises
    ------
    ConfigError
        ``CRYPTOLAB_PIPELINES_DIR`` is consulted and names a folder that does not exist.
    """
    here = (Path.cwd() if cwd is None else Path(cwd)) / "pipelines"
    if here.is_dir():
        return here
    env = _variable_dir(_settings(settings).pipelines_dir, "CRYPTOLAB_PIPELINES_DIR")
    return env if env is not None else shipped_dir("pipelines")
