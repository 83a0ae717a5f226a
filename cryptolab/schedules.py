"""Moved to :mod:`cryptolab.reports`; every name of this module stays importable from here.

Pipeline files (``pipelines/*.toml``) are :mod:`cryptolab.reports.schedules`, a
pipeline's runs and their log :mod:`cryptolab.reports.runs`, and the cron loop
:mod:`cryptolab.reports.scheduler`.

Examples
--------
>>> from cryptolab.reports import scheduler
>>> Scheduler is scheduler.Scheduler
True
"""

from __future__ import annotations

# the module's private names stay importable from here, as they were
from cryptolab.reports.runs import RUN_LOG as RUN_LOG
from cryptolab.reports.runs import RunRecord, last_runs, run_pipeline
from cryptolab.reports.runs import _append_log as _append_log
from cryptolab.reports.runs import _run_id as _run_id
from cryptolab.reports.runs import log as log
from cryptolab.reports.scheduler import Scheduler
from cryptolab.reports.schedules import _KEYS as _KEYS
from cryptolab.reports.schedules import _NAME_RE as _NAME_RE
from cryptolab.reports.schedules import _TEMPLATE as _TEMPLATE
from cryptolab.reports.schedules import PIPELINES_DIR, Pipeline, load_pipeline, load_pipelines
from cryptolab.reports.schedules import _project_root as _project_root
from cryptolab.reports.schedules import _render as _render

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
