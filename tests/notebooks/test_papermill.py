"""Every notebook under notebooks/ runs under papermill with small parameters; the report renders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import pytest

from cryptolab.batch import candles_from_ticks, frame_to_candles
from cryptolab.models import Alert
from cryptolab.notebooks import (
    NOTEBOOKS_DIR,
    REPORT_NOTEBOOK,
    NotebookRunError,
    inspect_parameters,
    render_report,
    run_notebook,
)
from cryptolab.sources.synthetic import Injection, SyntheticMarket
from cryptolab.store import Store

pytestmark = pytest.mark.notebooks

#: Small parameters per notebook (path relative to notebooks/); others run with their defaults.
SMALL: dict[str, dict[str, Any]] = {
    "00_quickstart.ipynb": {"hours": 0.25, "symbols": 2},
    "10_live_dashboard.ipynb": {"run_seconds": 4.0, "symbols": 2},
    "20_anomaly_models.ipynb": {"hours": 1.0, "injections": 4, "symbols": 2},
    "reports/market_report.ipynb": {"lookback_hours": 2.0, "symbols": ["BTC-USD", "ETH-USD"]},
    "benchmarks/pipeline_benchmark.ipynb": {},
}

NOTEBOOKS = sorted(
    p.relative_to(NOTEBOOKS_DIR).as_posix()
    for p in NOTEBOOKS_DIR.rglob("*.ipynb")
    if ".ipynb_checkpoints" not in p.parts and ".cryptolab" not in p.parts
)


def small_parameters(rel: str) -> dict[str, Any]:
    declared = inspect_parameters(NOTEBOOKS_DIR / rel)
    return {k: v for k, v in SMALL.get(rel, {}).items() if k in declared}


def test_every_project_notebook_is_covered() -> None:
    assert {"00_quickstart.ipynb", "10_live_dashboard.ipynb", "reports/market_report.ipynb"} <= set(NOTEBOOKS)


@pytest.mark.parametrize("rel", NOTEBOOKS)
def test_notebook_runs_under_papermill(rel: str, tmp_path: Path) -> None:
    params = small_parameters(rel)
    run = run_notebook(NOTEBOOKS_DIR / rel, params, output_dir=tmp_path, cwd=tmp_path, timeout=600)
    assert run.output.is_file() and run.html is not None and run.html.is_file()
    executed = nbformat.read(run.output, as_version=4)
    errors = [o for c in executed.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert bool(injected) == bool(params)


def make_store(path: Path) -> str:
    t0 = 1_700_000_040_000
    market = SyntheticMarket(
        symbols=2, seed=3, start_ms=t0, duration_ms=3 * 3_600_000, ticks_per_second=2.0,
        injections=[Injection(symbol="BTC-USD", at_ms=t0 + 2 * 3_600_000, kind="crash",
                              magnitude=0.09)],
    )
    candles = frame_to_candles(candles_from_ticks(market.to_frame(), intervals="1m,5m"))
    url = f"sqlite:///{path}"
    store = Store(url)
    store.init()
    alert = Alert(symbol="BTC-USD", interval="1m", window_start=t0 + 2 * 3_600_000,
                  detector="stored_rule", severity="HIGH", score=0.09, ts_ms=t0 + 2 * 3_600_000 + 60_000)
    store.commit_batch(group="g", topic="t", candles=candles, alerts=[alert])
    store.close()
    return url


def test_render_report_on_a_store(tmp_path: Path) -> None:
    url = make_store(tmp_path / "store.db")
    html = render_report(url, tmp_path / "out", interval="1m", start="2023-11-14T23:00:00Z")
    assert html == tmp_path / "out" / "market_report.html"
    page = html.read_text(encoding="utf-8")
    assert "BTC-USD" in page and "ETH-USD" in page
    assert "stored_rule" in page  # the store's own alerts are listed
    assert "BEGIN bokeh.min.js" in page  # charts render offline
    executed = nbformat.read(tmp_path / "out" / "market_report.ipynb", as_version=4)
    text = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    assert "window    2023-11-14 23:00 -> 2023-11-15 01:14 UTC" in text
    assert "(268 candles)" in text  # 2 symbols x 134 minutes, 1m only
    summary = [o for c in executed.cells for o in c.get("outputs", [])
               if "volatility % (ann.)" in o.get("data", {}).get("text/plain", "")]
    assert len(summary) == 1


def test_render_report_of_an_empty_store_fails_naming_the_cell(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    store = Store(url)
    store.init()
    store.close()
    with pytest.raises(NotebookRunError) as info:
        render_report(url, tmp_path / "out")
    err = info.value
    assert err.cell == 3 and "no 1m candles" in str(err)
    assert err.source is not None and "store.info()" in err.source
    assert err.html is not None and err.html.is_file()


def test_report_parameters_are_the_documented_ones() -> None:
    params = inspect_parameters(REPORT_NOTEBOOK)
    assert {"symbols", "interval", "start", "end", "store_url"} <= set(params)
    assert params["interval"].default == "1m"
    with pytest.raises(Exception, match="unknown parameter"):
        run_notebook(REPORT_NOTEBOOK, {"symbol": "BTC-USD"}, output_dir=".")


def test_history_frame_times_are_utc(tmp_path: Path) -> None:
    url = make_store(tmp_path / "s.db")
    df = Store(url).history("BTC-USD", "1m", limit=3)
    assert isinstance(df.window_start.dtype, pd.DatetimeTZDtype)
