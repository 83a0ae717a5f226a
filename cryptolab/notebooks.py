"""Moved to :mod:`cryptolab.reports`; every name of this module stays importable from here.

:func:`run_notebook` (:mod:`cryptolab.reports.notebooks`) runs a notebook with
papermill; its parameters are checked first (:mod:`cryptolab.reports.validation`),
secrets kept out of its outputs (:mod:`cryptolab.reports.redaction`) and the
executed notebook rendered to HTML (:mod:`cryptolab.reports.html`);
:func:`render_report` runs the market report (:mod:`cryptolab.reports.market`).

Examples
--------
>>> from cryptolab.reports import notebooks
>>> run_notebook is notebooks.run_notebook
True
"""

from __future__ import annotations

# the module's private names stay importable from here, as they were
from cryptolab.reports.files import move_into as _move_into  # noqa: F401
from cryptolab.reports.files import read_notebook as _read  # noqa: F401
from cryptolab.reports.html import _BOKEH_MARKER as _BOKEH_MARKER
from cryptolab.reports.html import _LOAD_MARKER as _LOAD_MARKER
from cryptolab.reports.html import _inline_bokehjs as _inline_bokehjs
from cryptolab.reports.html import _without_bokehjs_loaders as _without_bokehjs_loaders
from cryptolab.reports.html import notebook_to_html
from cryptolab.reports.market import (
    NOTEBOOKS_DIR,
    REPORT_NOTEBOOK,
    render_report,
    report_parameters,
)
from cryptolab.reports.notebooks import (
    FAILED_SUFFIX,
    NotebookRun,
    NotebookRunError,
    kernel_config,
    run_notebook,
)
from cryptolab.reports.notebooks import _execute as _execute
from cryptolab.reports.notebooks import _injected_index as _injected_index
from cryptolab.reports.notebooks import _mark_timeout as _mark_timeout
from cryptolab.reports.notebooks import log as log
from cryptolab.reports.redaction import ScrubFilter as _ScrubFilter  # noqa: F401
from cryptolab.reports.redaction import find_secrets as _secrets  # noqa: F401
from cryptolab.reports.redaction import redact_parameters
from cryptolab.reports.redaction import scrub as _scrub  # noqa: F401
from cryptolab.reports.redaction import scrub_notebook as _scrub_notebook  # noqa: F401
from cryptolab.reports.validation import _TYPE_NAMES as _TYPE_NAMES
from cryptolab.reports.validation import Parameter, inspect_parameters, validate_parameters
from cryptolab.reports.validation import _accepts as _accepts
from cryptolab.reports.validation import _literal as _literal
from cryptolab.reports.validation import _type_of as _type_of
from cryptolab.reports.validation import _Unparsed as _Unparsed

__all__ = [
    "FAILED_SUFFIX",
    "NOTEBOOKS_DIR",
    "REPORT_NOTEBOOK",
    "NotebookRun",
    "NotebookRunError",
    "Parameter",
    "inspect_parameters",
    "kernel_config",
    "notebook_to_html",
    "redact_parameters",
    "render_report",
    "report_parameters",
    "run_notebook",
    "validate_parameters",
]
