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

Each run writes ``<output_dir>/<name>-<YYYYmmddTHHMMSSZ>.ipynb`` (executed) and
``.html``, and appends to ``<output_dir>/runs.jsonl`` one ``start`` line and
one ``end`` line: ``pipeline``, ``run_id``, ``scheduled``, ``start``, ``end``,
``status`` (``ok`` or ``failed``), ``duration_s``, ``params``, ``output``,
``html`` and ``error`` (``message``, ``cell``, ``source``, ``ename``, ``evalue``).

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

import json
import logging
import re
import threading
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cryptolab.errors import ConfigError, CryptolabError, NotebookError, ValidationError
from cryptolab.models import iso_utc, parse_duration
from cryptolab.resources import find_notebook, pipelines_dir, shipped_dir

__all__ = [
    "PIPELINES_DIR",
    "Pipeline",
    "RunRecord",
    "Scheduler",
    "last_runs",
    "load_pipeline",
    "load_pipelines",
    "run_pipeline",
]

log = logging.getLogger(__name__)

#: The pipelines shipped with cryptolab (``<repo>/pipelines`` in a checkout).
PIPELINES_DIR: Final = shipped_dir("pipelines")
RUN_LOG: Final = "runs.jsonl"

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
        from cryptolab.notebooks import validate_parameters

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


@dataclass(kw_only=True)
class RunRecord:
    """The outcome of one pipeline run (the ``end`` line of the run log)."""

    pipeline: str
    run_id: str
    scheduled: str
    start: str
    end: str
    status: str
    duration_s: float
    params: dict[str, Any]
    notebook: str
    output: str | None = None
    html: str | None = None
    error: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """True when the notebook ran to the end."""
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (one line of ``runs.jsonl``)."""
        return {"event": "end", **self.__dict__}


def _append_log(path: Path, record: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(dict(record), default=str, ensure_ascii=False)
    with path.open("a", encoding="utf-8") as f:
        f.write(line + "\n")


def _run_id(pipeline: Pipeline, scheduled_ms: int) -> str:
    stamp = datetime.fromtimestamp(scheduled_ms / 1000, tz=UTC).strftime("%Y%m%dT%H%M%SZ")
    run_id = f"{pipeline.name}-{stamp}"
    n = 1
    while (pipeline.output_dir / f"{run_id}.ipynb").exists():
        n += 1
        run_id = f"{pipeline.name}-{stamp}-{n}"
    return run_id


def run_pipeline(
    pipeline: Pipeline,
    *,
    scheduled_ms: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    clock: Callable[[], float] = time.time,
) -> RunRecord:
    """Run a pipeline's notebook once; log it; return the record (failures do not raise).

    Parameters
    ----------
    pipeline
        What to run.
    scheduled_ms
        The scheduled time the run stands for (default: now); fills ``{scheduled}``.
    overrides
        Parameter values that replace the file's for this run.
    """
    from cryptolab.notebooks import NotebookRunError, run_notebook

    now_ms = int(clock() * 1000)
    scheduled = now_ms if scheduled_ms is None else scheduled_ms
    params = pipeline.render_parameters(scheduled)
    params.update(dict(overrides or {}))
    run_id = _run_id(pipeline, scheduled)
    log_path = pipeline.output_dir / RUN_LOG
    start = iso_utc(now_ms)
    from cryptolab.notebooks import redact_parameters

    shown = redact_parameters(params)  # the run log never holds a password
    _append_log(log_path, {"event": "start", "pipeline": pipeline.name, "run_id": run_id,
                           "scheduled": iso_utc(scheduled), "start": start, "params": shown,
                           "notebook": str(pipeline.notebook)})
    log.info("pipeline %s: run %s starting", pipeline.name, run_id)
    t0 = time.perf_counter()
    record = RunRecord(pipeline=pipeline.name, run_id=run_id, scheduled=iso_utc(scheduled),
                       start=start, end=start, status="failed", duration_s=0.0, params=shown,
                       notebook=str(pipeline.notebook))
    try:
        run = run_notebook(pipeline.notebook, params, output_dir=pipeline.output_dir,
                           kernel=pipeline.kernel, timeout=pipeline.timeout, name=run_id,
                           hide_code=pipeline.hide_code)
        record.status = "ok"
        record.output, record.html = str(run.output), str(run.html) if run.html else None
    except NotebookRunError as exc:
        record.error = exc.to_dict()
        record.output = str(exc.output) if exc.output else None
        record.html = str(exc.html) if exc.html else None
    except ValidationError as exc:  # rejected before running
        record.error = {"message": str(exc), "cell": None, "source": None,
                        "ename": "ValidationError", "evalue": exc.reason}
    except CryptolabError as exc:
        record.error = {"message": str(exc), "cell": getattr(exc, "cell", None),
                        "source": getattr(exc, "source", None), "ename": type(exc).__name__,
                        "evalue": str(exc)}
    record.duration_s = round(time.perf_counter() - t0, 3)
    record.end = iso_utc(int(clock() * 1000))
    _append_log(log_path, record.to_dict())
    if record.ok:
        log.info("pipeline %s: run %s ok in %.1fs -> %s", pipeline.name, run_id,
                 record.duration_s, record.html)
    else:
        log.error("pipeline %s: run %s failed: %s", pipeline.name, run_id,
                  (record.error or {}).get("message"))
    return record


def last_runs(pipeline: Pipeline) -> dict[str, Any] | None:
    """The last ``end`` line of a pipeline's run log, or ``None``."""
    path = pipeline.output_dir / RUN_LOG
    if not path.is_file():
        return None
    last: dict[str, Any] | None = None
    with path.open(encoding="utf-8") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and rec.get("event") == "end":
                last = rec
    return last


class Scheduler:
    """Run pipelines when their cron schedules fire (one at a time, in this process).

    Parameters
    ----------
    pipelines
        The pipelines (disabled ones are skipped).
    max_runs
        Stop after this many runs (``None``: run until :meth:`stop`).
    once
        Stop after the first firing (every pipeline due at that moment runs).
    clock
        Wall clock in epoch seconds (inject a fake one in tests).
    wait
        ``wait(seconds) -> stopped``: sleeps, returning early (and True) when
        stopped; default waits on the scheduler's stop event.

    Notes
    -----
    Missed firings are not caught up: when a run overruns the next firing of
    its own (or another) pipeline, that firing is skipped and logged, as cron
    does. :meth:`stop` lets the running notebook finish.
    """

    def __init__(
        self,
        pipelines: Iterable[Pipeline],
        *,
        max_runs: int | None = None,
        once: bool = False,
        clock: Callable[[], float] = time.time,
        wait: Callable[[float], bool] | None = None,
        on_run: Callable[[RunRecord], None] | None = None,
    ) -> None:
        self.pipelines = [p for p in pipelines if p.enabled]
        if max_runs is not None and max_runs < 1:
            raise ValidationError("max_runs", f"must be >= 1, got {max_runs}")
        self.max_runs = max_runs
        self.once = once
        self._clock = clock
        self._stop = threading.Event()
        self._wait = wait or self._stop.wait
        self._on_run = on_run
        self.records: list[RunRecord] = []
        self.skipped = 0

    def stop(self) -> None:
        """Ask the loop to end (after the notebook that is running, if any)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stop.is_set()

    def next_fires(self) -> dict[str, int]:
        """Next firing time (epoch ms) of every enabled pipeline, from now."""
        now = int(self._clock() * 1000)
        return {p.name: p.next_fire_ms(now) for p in self.pipelines}

    def run(self) -> list[RunRecord]:
        """Loop until stopped, ``max_runs`` runs, or one firing when ``once``; return the records."""
        if not self.pipelines:
            log.warning("no enabled pipeline to schedule")
            return self.records
        now = int(self._clock() * 1000)
        due = {p.name: p.next_fire_ms(now) for p in self.pipelines}
        by_name = {p.name: p for p in self.pipelines}
        for name, at in sorted(due.items(), key=lambda kv: kv[1]):
            log.info("pipeline %s: next run at %s", name, iso_utc(at))
        while not self._stop.is_set():
            fire = min(due.values())
            now = int(self._clock() * 1000)
            if fire > now:
                if self._wait(min((fire - now) / 1000, 60.0)):
                    break
                continue
            for name in sorted(n for n, at in due.items() if at <= now):
                if self._stop.is_set():
                    break
                record = run_pipeline(by_name[name], scheduled_ms=due[name], clock=self._clock)
                self.records.append(record)
                if self._on_run is not None:
                    self._on_run(record)
                after = int(self._clock() * 1000)
                nxt = by_name[name].next_fire_ms(due[name])
                while nxt <= after:  # overran: skip, like cron
                    self.skipped += 1
                    log.warning("pipeline %s: skipping the run due at %s (previous run overran)",
                                name, iso_utc(nxt))
                    nxt = by_name[name].next_fire_ms(nxt)
                due[name] = nxt
                if self.max_runs is not None and len(self.records) >= self.max_runs:
                    self._stop.set()
            if self.once:
                break
        return self.records
