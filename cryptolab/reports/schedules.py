"""Scheduled notebook pipelines: one TOML file per pipeline in ``pipelines/``.

A pipeline file names a cron schedule, a notebook, its parameters and where
the outputs go::

    # pipelines/daily_market_report.toml
    description = "Market report of the last 24 hours"
    cron = "0 6 * * *"                 # croniter syntax; a 6th field counts seconds
    timezone = "UTC"                   # IANA name the cron is read in (default UTC)
    notebook = "notebooks/reports/market_report.ipynb"
    output_dir = "reports/daily_market_report"   # default <CRYPTOLAB_DATA_DIR>/reports/<name>
    timeout = 900                      # seconds any one cell may run (default 600)
    kernel = "python3"
    enabled = true
    hide_code = true                   # HTML without code cells (default true: a report)

    [parameters]
    interval = "1m"
    start = "{scheduled - 24h}"        # ISO-8601 UTC of the scheduled time minus 24 hours
    end = "{scheduled}"
    sample = false

Relative ``notebook`` and ``output_dir`` paths are relative to the folder that
holds ``pipelines/`` (the project root); a relative ``notebook`` that is not
there is looked up like every notebook (:func:`cryptolab.resources.find_notebook`:
``./notebooks``, ``CRYPTOLAB_NOTEBOOKS_DIR``, then the copy shipped with
cryptolab). The default output folder follows
``CRYPTOLAB_DATA_DIR`` (relative to the current directory, like every setting).
Without a folder given, pipelines come from :func:`cryptolab.resources.pipelines_dir`
(``./pipelines``, ``CRYPTOLAB_PIPELINES_DIR``, then the ones shipped with cryptolab). A string parameter that is exactly ``{scheduled}`` or
``{scheduled +/- <duration>}`` becomes an ISO-8601 UTC time, so a run
rendered late still covers the window it was scheduled for.

A pipeline's runs and their log are :mod:`cryptolab.reports.runs`; the loop that
runs them on time is :class:`cryptolab.reports.scheduler.Scheduler`.

Examples
--------
>>> import pathlib, tempfile
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> (root / "pipelines").mkdir()
>>> _ = (root / "pipelines" / "hourly.toml").write_text(
...     'cron = "5 * * * *"\\nnotebook = "nb.ipynb"\\n[parameters]\\nend = "{scheduled - 1h}"\\n')
>>> p = load_pipeline(root / "pipelines" / "hourly.toml", check_notebook=False)
>>> p.name, p.output_dir.parts[-3:]
('hourly', ('.cryptolab', 'reports', 'hourly'))
>>> iso_utc(p.next_fire_ms(1_700_000_000_000))    # 22:13:20 -> five past the next hour
'2023-11-14T23:05:00Z'
>>> p.render_parameters(1_700_003_100_000)
{'end': '2023-11-14T22:05:00Z'}
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cryptolab.errors import ConfigError, NotebookError, ValidationError
from cryptolab.models import iso_utc, parse_duration
from cryptolab.resources import find_notebook, pipelines_dir, shipped_dir

__all__ = ["PIPELINES_DIR", "Pipeline", "load_pipeline", "load_pipelines"]

#: The pipelines shipped with cryptolab (``<repo>/pipelines`` in a checkout).
PIPELINES_DIR: Final = shipped_dir("pipelines")

_KEYS: Final = frozenset({
    "description", "cron", "timezone", "notebook", "output_dir", "timeout", "kernel",
    "enabled", "hide_code", "parameters",
})
_TEMPLATE: Final = re.compile(r"\{\s*scheduled\s*(?:([+-])\s*(\d+\s*(?:ms|s|m|h|d|w)))?\s*\}")
_NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def _render(value: Any, scheduled_ms: int) -> Any:
    if isinstance(value, str):
        m = _TEMPLATE.fullmatch(value.strip())
        if m is None:
            return value
        ms = scheduled_ms
        if m.group(1):
            delta = parse_duration(m.group(2).replace(" ", ""))
            ms = ms + delta if m.group(1) == "+" else ms - delta
        return iso_utc(ms)
    if isinstance(value, list):
        return [_render(v, scheduled_ms) for v in value]
    return value


@dataclass(frozen=True, kw_only=True)
class Pipeline:
    """One scheduled notebook (a ``pipelines/<name>.toml`` file)."""

    name: str
    path: Path
    cron: str
    notebook: Path
    output_dir: Path
    parameters: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    timezone: str = "UTC"
    timeout: float | None = 600.0
    kernel: str = "python3"
    enabled: bool = True
    hide_code: bool = True

    def render_parameters(self, scheduled_ms: int) -> dict[str, Any]:
        """The notebook parameters for a run scheduled at ``scheduled_ms`` (templates filled in)."""
        return {k: _render(v, scheduled_ms) for k, v in self.parameters.items()}

    def next_fire_ms(self, after_ms: int) -> int:
        """The first scheduled time strictly after ``after_ms`` (epoch ms)."""
        from croniter import croniter

        tz = ZoneInfo(self.timezone)
        start = datetime.fromtimestamp(after_ms / 1000, tz=UTC).astimezone(tz)
        nxt = croniter(self.cron, start).get_next(datetime)
        return int(round(nxt.timestamp() * 1000))


def _project_root(path: Path) -> Path:
    return path.resolve().parent.parent


def load_pipeline(
    path: str | Path, *, data_dir: str | Path | None = None, check_notebook: bool = True
) -> Pipeline:
    """Read and validate one pipeline file.

    Parameters
    ----------
    path
        The TOML file; the pipeline's name is its stem.
    data_dir
        Base of the default output folder (``<data_dir>/reports/<name>``);
        default: ``CRYPTOLAB_DATA_DIR`` (relative to the current directory).
    check_notebook
        Also check that the notebook exists and takes the parameters given.

    Raises
    ------
    ConfigError
        Naming the file and what is wrong with it.
    """
    p = Path(path)
    name = p.stem
    where = f"pipeline {p}"
    if not _NAME_RE.fullmatch(name):
        raise ConfigError(f"{where}: the file name must be letters, digits, _ . - (got {name!r})")
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_KEYS))})")
    for key in ("cron", "notebook"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise ConfigError(f"{where}: {key!r} is required (a string)")
    from croniter import croniter

    cron = raw["cron"].strip()
    if not croniter.is_valid(cron):
        raise ConfigError(f"{where}: invalid cron expression {cron!r}")
    tz = raw.get("timezone", "UTC")
    try:
        ZoneInfo(str(tz))
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{where}: unknown timezone {tz!r}") from None
    params = raw.get("parameters", {})
    if not isinstance(params, dict):
        raise ConfigError(f"{where}: [parameters] must be a table")
    timeout = raw.get("timeout", 600.0)
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float)
                                or timeout <= 0):
        raise ConfigError(f"{where}: timeout must be a positive number of seconds, got {timeout!r}")
    enabled = raw.get("enabled", True)
    hide_code = raw.get("hide_code", True)
    for key, flag in (("enabled", enabled), ("hide_code", hide_code)):
        if not isinstance(flag, bool):
            raise ConfigError(f"{where}: {key} must be true or false, got {flag!r}")
    root = _project_root(p)
    notebook = Path(raw["notebook"])
    try:
        notebook = find_notebook(notebook, root=root)
    except NotebookError:  # named below when check_notebook
        notebook = notebook if notebook.is_absolute() else root / notebook
    if "output_dir" in raw:
        out = Path(str(raw["output_dir"]))
        out = out if out.is_absolute() else root / out
    else:
        if data_dir is None:
            from cryptolab.config import Settings

            data_dir = Settings.from_env().data_dir
        out = (Path(data_dir) / "reports" / name).resolve()
    pipeline = Pipeline(
        name=name, path=p.resolve(), cron=cron, notebook=notebook, output_dir=out,
        parameters=dict(params), description=str(raw.get("description", "")), timezone=str(tz),
        timeout=float(timeout) if timeout is not None else None,
        kernel=str(raw.get("kernel", "python3")), enabled=enabled, hide_code=hide_code,
    )
    if check_notebook:
        from cryptolab.reports.validation import validate_parameters

        if not notebook.is_file():
            raise ConfigError(f"{where}: notebook {notebook} does not exist")
        try:
            validate_parameters(notebook, pipeline.render_parameters(1_700_000_000_000))
        except ValidationError as exc:
            raise ConfigError(f"{where}: parameter {exc.field!r}: {exc.reason}") from None
        except NotebookError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return pipeline


def load_pipelines(
    directory: str | Path | None = None,
    *,
    data_dir: str | Path | None = None,
    check_notebook: bool = True,
) -> list[Pipeline]:
    """Every ``*.toml`` pipeline of a folder (default: :func:`~cryptolab.resources.pipelines_dir`), by name.

    Raises
    ------
    ConfigError
        For the first invalid file (name and reason), or a missing folder.
    """
    d = Path(directory) if directory is not None else pipelines_dir()
    if not d.is_dir():
        raise ConfigError(f"no pipelines folder at {d}")
    return [load_pipeline(f, data_dir=data_dir, check_notebook=check_notebook)
            for f in sorted(d.glob("*.toml"))]
