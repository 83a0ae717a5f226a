"""Notebook reports: papermill runs, the market report, scheduled pipelines.

* :mod:`~cryptolab.reports.validation`: a notebook's ``parameters`` cell
  (:func:`inspect_parameters`) and the values checked against it
  (:func:`validate_parameters`), before any kernel starts.
* :mod:`~cryptolab.reports.redaction`: secret parameter values hidden in logs,
  run logs and executed notebooks (:func:`redact_parameters`).
* :mod:`~cryptolab.reports.html`: executed notebooks to self-contained HTML
  (:func:`notebook_to_html`).
* :mod:`~cryptolab.reports.notebooks`: :func:`run_notebook`, papermill runs whose
  failures name the cell, outputs replaced only by a successful run.
* :mod:`~cryptolab.reports.market`: the market report, its arguments checked
  (:func:`report_parameters`) and rendered (:func:`render_report`).
* :mod:`~cryptolab.reports.schedules`: pipeline files (``pipelines/*.toml``):
  :class:`Pipeline`, :func:`load_pipeline`.
* :mod:`~cryptolab.reports.runs`: one run of a pipeline and its run log
  (:func:`run_pipeline`, :func:`last_runs`).
* :mod:`~cryptolab.reports.scheduler`: :class:`Scheduler`, the cron loop.
* :mod:`~cryptolab.reports.files`: reading executed notebooks, moving outputs into place.

:mod:`cryptolab.notebooks` and :mod:`cryptolab.schedules` keep the names they
always had, re-exported from here.
"""
