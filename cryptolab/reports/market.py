"""The market report: its arguments checked, then rendered to HTML.

:func:`report_parameters` checks what a caller asks for (symbols, interval,
window) without touching a kernel, a file or a store; :func:`render_report`
runs the market report (``reports/market_report.ipynb``, found by
:func:`cryptolab.resources.find_notebook`) on a store with
:func:`~cryptolab.reports.notebooks.run_notebook`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from cryptolab.errors import NotebookError, ValidationError
from cryptolab.parameters import list_parameter
from cryptolab.reports.notebooks import run_notebook
from cryptolab.resources import REPORT, find_notebook, shipped_dir

__all__ = ["NOTEBOOKS_DIR", "REPORT_NOTEBOOK", "render_report", "report_parameters"]

#: The notebooks shipped with cryptolab (``<repo>/notebooks`` in a checkout).
NOTEBOOKS_DIR: Final = shipped_dir("notebooks")
#: The shipped market report (:func:`render_report` runs the one :func:`find_notebook` finds).
REPORT_NOTEBOOK: Final = NOTEBOOKS_DIR / REPORT


def report_parameters(
    *,
    symbols: list[str] | str | None = None,
    interval: str = "1m",
    start: Any = None,
    end: Any = None,
) -> dict[str, Any]:
    """The market report's parameters, checked (no kernel, no file, no store is touched).

    Parameters
    ----------
    symbols
        A list, ``"BTC"``, ``"BTC,ETH"`` or a JSON list; ``None`` or empty: every
        symbol of ``interval`` in the store.
    interval
        Candle interval.
    start, end
        Window of the report (epoch ms, ISO-8601 text or datetime; ``None``: the
        newest 6 hours of the store).

    Returns
    -------
    dict
        ``symbols``, ``interval``, ``start`` and ``end`` (ISO-8601 UTC) for the notebook.

    Raises
    ------
    ValidationError
        A malformed symbol, interval or time, or ``start`` not before ``end``.

    Examples
    --------
    >>> report_parameters(symbols="BTC,ETH", start="2013-01-01", end=1_357_084_800_000)
    {'symbols': ['BTC', 'ETH'], 'interval': '1m', 'start': '2013-01-01T00:00:00Z', 'end': '2013-01-02T00:00:00Z'}
    >>> report_parameters(start="notadate")
    Traceback (most recent call last):
    ...
    cryptolab.errors.ValidationError: invalid 'start': 'notadate' is not an ISO-8601 time or epoch ms
    """
    from cryptolab.models import iso_utc, parse_interval, validate_symbol
    from cryptolab.store import to_ms

    parse_interval(interval)
    names = [validate_symbol(s) for s in list_parameter(symbols, "symbols") or []]
    first, last = to_ms(start, "start"), to_ms(end, "end")
    if first is not None and last is not None and first >= last:
        raise ValidationError("end", f"must be after start ({iso_utc(first)}), got {iso_utc(last)}")
    return {"symbols": names or None, "interval": interval,
            "start": None if first is None else iso_utc(first),
            "end": None if last is None else iso_utc(last)}


def render_report(
    store_url: str,
    out_dir: str | Path,
    *,
    symbols: list[str] | str | None = None,
    interval: str = "1m",
    start: Any = None,
    end: Any = None,
    timeout: float | None = 600.0,
    name: str = "market_report",
) -> Path:
    """Render the market report of a store to HTML; return the HTML path.

    Executes the market report notebook (:func:`~cryptolab.resources.find_notebook`:
    ``./notebooks``, ``CRYPTOLAB_NOTEBOOKS_DIR``, then the shipped copy) with papermill and
    writes ``<out_dir>/market_report.ipynb`` and ``<out_dir>/market_report.html``
    (outputs only, BokehJS inline).

    Parameters
    ----------
    store_url
        SQLAlchemy URL of the store to report on.
    out_dir
        Output folder.
    symbols, interval, start, end
        As :func:`report_parameters` takes them (checked there first).
    timeout
        Seconds any one cell may run.
    name
        Output file stem.

    Raises
    ------
    ValidationError
        A malformed symbol, interval or time, or ``start`` not before ``end``:
        checked before any kernel starts, and nothing is written.
    NotebookRunError
        When the report fails (e.g. no candles in the window); the previous
        report stays, the failed run is in ``<name>.failed.html``.
    """
    params = {"store_url": store_url, "sample": False,
              **report_parameters(symbols=symbols, interval=interval, start=start, end=end)}
    run = run_notebook(find_notebook(REPORT), params, output_dir=out_dir, timeout=timeout, name=name,
                       hide_code=True)
    if run.html is None:  # pragma: no cover - HTML export failed and was logged
        raise NotebookError(f"the report ran but its HTML could not be written ({run.output})")
    return run.html
