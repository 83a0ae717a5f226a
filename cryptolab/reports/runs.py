"""One run of a pipeline, and its run log.

:func:`run_pipeline` runs a :class:`~cryptolab.reports.schedules.Pipeline`'s
notebook once. Each run writes ``<output_dir>/<name>-<YYYYmmddTHHMMSSZ>.ipynb``
(executed) and ``.html``, and appends to ``<output_dir>/runs.jsonl`` one
``start`` line and one ``end`` line: ``pipeline``, ``run_id``, ``scheduled``,
``start``, ``end``, ``status`` (``ok`` or ``failed``), ``duration_s``,
``params``, ``output``, ``html`` and ``error`` (``message``, ``cell``,
``source``, ``ename``, ``evalue``); :func:`last_runs` reads the last ``end``
line back.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from cryptolab.errors import CryptolabError, ValidationError
from cryptolab.models import iso_utc
from cryptolab.reports.schedules import Pipeline

__all__ = ["RUN_LOG", "RunRecord", "last_runs", "run_pipeline"]

log = logging.getLogger("cryptolab.schedules")  # the logger pipeline runs have always used

#: The run log of a pipeline, in its output folder.
RUN_LOG: Final = "runs.jsonl"


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
    from cryptolab.reports.notebooks import NotebookRunError, run_notebook

    now_ms = int(clock() * 1000)
    scheduled = now_ms if scheduled_ms is None else scheduled_ms
    params = pipeline.render_parameters(scheduled)
    params.update(dict(overrides or {}))
    run_id = _run_id(pipeline, scheduled)
    log_path = pipeline.output_dir / RUN_LOG
    start = iso_utc(now_ms)
    from cryptolab.reports.redaction import redact_parameters

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
