"""Every notebook under notebooks/ runs under papermill with small parameters; the report renders,
from cryptolab and from papermill's own command line, as a quant would read it."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import pytest

from benchmarks.spec import KEYS, SECTIONS
from cryptolab.batch import candles_from_ticks, frame_to_candles
from cryptolab.cli import main
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
from cryptolab.store import Store, to_ms

pytestmark = pytest.mark.notebooks

PAPERMILL = Path(sys.executable).with_name("papermill")
HOUR = 3_600_000
#: Sections of the benchmark notebook that need no service.
PURE_SECTIONS = ["history", "scoring", "batch"]

BENCHMARK = "benchmarks/pipeline_benchmark.ipynb"
#: Small parameters per notebook (path relative to notebooks/); others run with their defaults.
SMALL: dict[str, dict[str, Any]] = {
    "00_quickstart.ipynb": {"hours": 0.25, "symbols": 2},
    "10_live_dashboard.ipynb": {"run_seconds": 4.0, "symbols": 2},
    "20_anomaly_models.ipynb": {"hours": 1.0, "injections": 4, "symbols": 2},
    # offline: the synthetic market here; the stand-in exchange in test_live_market_on_the_stand_in_exchange
    "30_live_market.ipynb": {"source": "synthetic", "symbols": "BTC-USD,ETH-USD", "backfill": "1h",
                             "speed": 60.0, "run_seconds": 4.0},
    "reports/market_report.ipynb": {"lookback_hours": 2.0, "symbols": "BTC-USD,ETH-USD"},
    # papermill -p style text for a list parameter; the result under the test's folder
    BENCHMARK: {"sections": ",".join(PURE_SECTIONS), "json_path": "{tmp}/bench/notebook.json"},
}

NOTEBOOKS = sorted(
    p.relative_to(NOTEBOOKS_DIR).as_posix()
    for p in NOTEBOOKS_DIR.rglob("*.ipynb")
    if ".ipynb_checkpoints" not in p.parts and ".cryptolab" not in p.parts
)


def small_parameters(rel: str, tmp_path: Path) -> dict[str, Any]:
    params = SMALL.get(rel, {})
    assert set(params) <= set(inspect_parameters(NOTEBOOKS_DIR / rel))  # papermill sees them all
    return {k: v.replace("{tmp}", str(tmp_path)) if isinstance(v, str) else v
            for k, v in params.items()}


# --------------------------------------------------------------------------- reading outputs


def outputs(nb: Any, kind: str) -> list[str]:
    """Every output of ``kind`` (a MIME type, or ``stream``) of an executed notebook."""
    found = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            if kind == "stream" and o.get("output_type") == "stream":
                found.append(o["text"])
            elif kind in o.get("data", {}):
                found.append(o["data"][kind])
    return found


def bokeh_models(nb: Any) -> Iterator[dict[str, Any]]:
    """Every Bokeh model object in the documents the notebook's charts embed."""
    for js in outputs(nb, "application/javascript"):
        m = re.search(r"const docs_json = (\{.*?\});\n\s*const render_items", js, re.S)
        if m is None:
            continue
        stack: list[Any] = [json.loads(m.group(1))]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                if node.get("type") == "object":
                    yield node
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)


def charts(nb: Any) -> dict[str, tuple[float, float]]:
    """``{chart title: (start, end) of its time axis}`` for each candle chart."""
    out = {}
    for model in bokeh_models(nb):
        attrs = model.get("attributes", {})
        title, x_range = attrs.get("title"), attrs.get("x_range")
        if model.get("name") == "Figure" and isinstance(title, dict) and "attributes" in title:
            r = x_range.get("attributes", {}) if isinstance(x_range, dict) else {}
            out[title["attributes"]["text"]] = (r.get("start"), r.get("end"))
    return out


def summary_symbols(nb: Any) -> list[str]:
    """Row labels of the returns-and-volatility table."""
    (table,) = [t for t in outputs(nb, "text/html") if "volatility % (ann.)" in t]
    return re.findall(r"<tr>\s*<th>([^<]*)</th>", table.split("<tbody>")[1])


def assert_reads_like_a_report(nb: Any) -> None:
    """No papermill notes, no raw indexes or +00:00 stamps, UTC said once, anomalies or a sentence."""
    shown = (outputs(nb, "text/markdown") + outputs(nb, "text/plain") + outputs(nb, "stream")
             + [c.source for c in nb.cells if c.cell_type == "markdown"])
    text = "\n".join(t for t in shown if not t.startswith("<IPython"))
    assert "papermill" not in text.lower() and "parameters" not in text.lower()
    assert "+00:00" not in text
    assert text.count("UTC") == 1, text
    tables = [t for t in outputs(nb, "text/html") if 'class="dataframe"' in t]
    assert tables
    for table in tables:  # every row is labelled by what it is (a symbol, a time), never 0, 1, 2
        labels = re.findall(r"<tr>\s*<th>([^<]*)</th>", table)
        assert labels and not any(label.strip().isdigit() for label in labels), labels
    (count,) = [int(m.group(1)) for t in outputs(nb, "stream")
                if (m := re.match(r"(\d+) anomalies from", t))]
    said = "No anomalies in this period." in outputs(nb, "text/markdown")
    anomaly_tables = [t for t in tables if "detector" in t and "severity" in t]
    assert said == (count == 0) and bool(anomaly_tables) == (count > 0)


# --------------------------------------------------------------------------- every notebook


def test_every_project_notebook_is_covered() -> None:
    assert {"00_quickstart.ipynb", "10_live_dashboard.ipynb", "reports/market_report.ipynb"} <= set(NOTEBOOKS)


@pytest.mark.parametrize("rel", NOTEBOOKS)
def test_every_assignment_of_a_parameters_cell_is_a_parameter_papermill_sees(rel: str) -> None:
    nb = nbformat.read(NOTEBOOKS_DIR / rel, as_version=4)
    (cell,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assigned = [t.id for node in ast.parse(cell.source).body
                for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
                if isinstance(t, ast.Name)]
    assert list(inspect_parameters(NOTEBOOKS_DIR / rel)) == assigned


@pytest.mark.parametrize("rel", NOTEBOOKS)
def test_list_parameters_accept_text_in_the_first_cell_after_the_parameters(rel: str) -> None:
    """papermill -p passes text: each list parameter goes through list_parameter at once."""
    nb = nbformat.read(NOTEBOOKS_DIR / rel, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    at = next(i for i, c in enumerate(code) if "parameters" in c.metadata.get("tags", []))
    for name, spec in inspect_parameters(NOTEBOOKS_DIR / rel).items():
        if spec.type.rstrip("?") == "list":
            assert f'{name} = list_parameter({name}, "{name}")' in code[at + 1].source, name


def bench_assertions(result: dict[str, Any], wanted: list[str]) -> None:
    """The sections the run claims (``config.sections``) ran: figures, no skip, no failure."""
    assert result["config"]["sections"] == wanted
    assert result["skipped"] == {}
    for section in wanted:
        assert section in result["details"], section
        keys = [k for k, (s, _) in KEYS.items() if s == section]
        assert keys and all(result[k] is not None for k in keys), (section, keys)


@pytest.mark.parametrize("rel", NOTEBOOKS)
def test_notebook_runs_under_papermill(rel: str, tmp_path: Path) -> None:
    repo_result = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "notebook.json"
    before = repo_result.stat().st_mtime_ns if repo_result.exists() else None
    params = small_parameters(rel, tmp_path)
    run = run_notebook(NOTEBOOKS_DIR / rel, params, output_dir=tmp_path, cwd=tmp_path, timeout=600)
    assert run.output.is_file() and run.html is not None and run.html.is_file()
    executed = nbformat.read(run.output, as_version=4)
    errors = [o for c in executed.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert bool(injected) == bool(params)
    if rel == BENCHMARK:
        bench_assertions(json.loads((tmp_path / "bench" / "notebook.json").read_text()), PURE_SECTIONS)
    assert (repo_result.stat().st_mtime_ns if repo_result.exists() else None) == before


def test_live_market_on_the_stand_in_exchange(tmp_path: Path) -> None:
    """30_live_market as on a real exchange, offline: Binance's REST and websocket APIs on a local
    stand-in (its past is the backfill, then it keeps trading on the wall clock)."""
    import time

    from fakes.exchange import StandInExchange, Tape

    now = int(time.time() * 1000)
    tape = Tape.generated("BTC/USDT", now - 2 * HOUR, now + HOUR, seed=17, mean_gap_ms=500, price=42_000.0)
    with StandInExchange("binance", tape, paced=True) as ex:
        params = {"source": "binance", "symbols": "BTC/USDT", "intervals": "1m,5m", "backfill": "1h",
                  "run_seconds": 8.0, "api_url": ex.api_url, "ws_url": ex.ws_url}
        assert set(params) <= set(inspect_parameters(NOTEBOOKS_DIR / "30_live_market.ipynb"))
        run = run_notebook(NOTEBOOKS_DIR / "30_live_market.ipynb", params, output_dir=tmp_path, cwd=tmp_path,
                           timeout=600)
        published = len(ex.published)
    executed = nbformat.read(run.output, as_version=4)
    errors = [o for c in executed.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    text = "".join(outputs(executed, "stream"))
    # the hour of klines at once, on the venue's series, then the live trades
    m = re.search(r"BINANCE:BTC-USDT: (\d+) 1m candles at once", text)
    assert m is not None and int(m.group(1)) >= 60, text
    grown = re.search(r"after 8s: (\d+) candles \(were (\d+)\)", text)
    assert grown is not None and int(grown.group(1)) >= int(grown.group(2)) >= 60, text
    assert published > 0  # the websocket published live trades while the notebook watched
    assert [r.path for r in ex.requests if r.path == "/api/v3/klines"], "no backfill over REST"


#: The service sections the notebook runs on the services: the ones that reach each service
#: (Kafka, PostgreSQL, Redis) and the API's server and event loop from the kernel's process.
#: The command line's quick suite (tests/unit/test_bench.py) runs every section on the services
#: through the same ``run_suite``; running them all twice would only add minutes.
NOTEBOOK_SERVICE_SECTIONS = ("producer", "consumer", "history", "latest", "api")


@pytest.mark.slow
def test_benchmark_notebook_runs_the_service_sections_on_the_services(
        kafka_bootstrap: str, pg_url: str, redis_url: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Service sections, on the services, from the notebook's kernel (whose event loop runs:
    the API section must bring its own); skipped without them, under CI=true a failure."""
    monkeypatch.setenv("CRYPTOLAB_KAFKA_BOOTSTRAP", kafka_bootstrap)
    monkeypatch.setenv("CRYPTOLAB_STORE_URL", pg_url)
    monkeypatch.setenv("CRYPTOLAB_REDIS_URL", redis_url)
    path = tmp_path / "bench.json"
    wanted = list(NOTEBOOK_SERVICE_SECTIONS)
    assert set(wanted) <= set(SECTIONS)
    run_notebook(NOTEBOOKS_DIR / BENCHMARK,
                 {"json_path": str(path), "ticks": 5_000, "symbols": 5, "sections": ",".join(wanted)},
                 output_dir=tmp_path, cwd=tmp_path, timeout=900)
    bench_assertions(json.loads(path.read_text()), wanted)


# --------------------------------------------------------------------------- the market report


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
    header = outputs(executed, "text/markdown")[0]
    assert header.startswith("## BTC-USD, ETH-USD · 1m candles")
    # the period asked for (end: just after the newest candle), 2 symbols x 134 minutes
    assert "**2023-11-14 23:00 → 2023-11-15 01:14** (all times UTC) · 268 candles" in header
    assert summary_symbols(executed) == ["BTC-USD", "ETH-USD"]
    assert_reads_like_a_report(executed)
    period = (to_ms("2023-11-14T23:00:00Z"), to_ms("2023-11-15T01:14:00Z"))
    assert charts(executed) == {"BTC-USD · 1m": period, "ETH-USD · 1m": period}


def test_render_report_of_an_empty_store_fails_naming_the_cell(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    store = Store(url)
    store.init()
    store.close()
    with pytest.raises(NotebookRunError) as info:
        render_report(url, tmp_path / "out")
    err = info.value
    assert err.cell == 3 and "no 1m candles for any symbol" in str(err)
    assert "it holds no candles" in str(err)
    assert err.source is not None and "store.info()" in err.source
    assert err.html is not None and err.html.is_file()
    assert not (tmp_path / "out" / "market_report.html").exists()  # no report, only the failure


def test_report_parameters_are_the_documented_ones() -> None:
    params = inspect_parameters(REPORT_NOTEBOOK)
    assert {"symbols", "interval", "start", "end", "store_url"} <= set(params)
    assert params["interval"].default == "1m"
    assert params["symbols"].type == "list?"
    with pytest.raises(Exception, match="unknown parameter"):
        run_notebook(REPORT_NOTEBOOK, {"symbol": "BTC-USD"}, output_dir=".")


def test_history_frame_times_are_utc(tmp_path: Path) -> None:
    url = make_store(tmp_path / "s.db")
    df = Store(url).history("BTC-USD", "1m", limit=3)
    assert isinstance(df.window_start.dtype, pd.DatetimeTZDtype)


# --------------------------------------------------------------------------- on replayed real data


def _bars_between(src: Path, dst: Path, start: str, end: str) -> Path:
    """The bars of ``src`` (Coinbase 4h JSON) that start in [start, end), as a file to replay."""
    lo, hi = to_ms(start) // 1000, to_ms(end) // 1000  # type: ignore[operator]
    bars = [b for b in json.loads(src.read_text())["candles"] if lo <= int(b["start"]) < hi]
    dst.write_text(json.dumps({"candles": bars}))
    return dst


@pytest.fixture(scope="module")
def replayed(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An SQLite store filled by `cryptolab replay`: the Mt.Gox day (BTC, 1m/5m/15m) and four
    weeks of Coinbase 4h bars (BTC and ETH)."""
    d = tmp_path_factory.mktemp("replayed")
    url = f"sqlite:///{d / 'replayed.db'}"
    runs = [[str(shared_data / "trades" / "mtgox_btcusd_2013-01-01.csv"), "--symbol", "BTC"]]
    for sym, name in (("BTC", "btcusd"), ("ETH", "ethusd")):
        src = shared_data / "bars" / f"coinbase_{name}_4h_2016-05-18_2025-10-28.json"
        part = _bars_between(src, d / f"coinbase_{name}_4h_2025-10.json", "2025-10-01", "2025-10-28")
        runs.append([str(part), "--symbol", sym, "--bar-interval", "4h", "--intervals", "4h"])
    for args in runs:
        assert main(["replay", *args, "--store", url, "--no-score"]) == 0
    return url


def held(url: str, symbols: list[str], interval: str, start: int, end: int) -> pd.DataFrame:
    with Store(url) as store:
        return pd.concat([store.history(s, interval, start, end) for s in symbols], ignore_index=True)


# the command and the three forms of a list papermill's CLI gives
CLI_CASES = [
    (["-p", "symbols", "BTC"], ["BTC"], "5m", "2013-01-01", "2013-01-02"),
    (["-p", "symbols", '["BTC"]'], ["BTC"], "5m", "2013-01-01", "2013-01-02"),
    (["-y", "symbols: [BTC]"], ["BTC"], "1m", None, None),  # the newest 6 hours of the day
    (["-p", "symbols", "BTC,ETH"], ["BTC", "ETH"], "4h", "2025-10-01", "2025-10-28"),
]


@pytest.mark.parametrize(("given", "symbols", "interval", "start", "end"), CLI_CASES,
                         ids=["one", "json", "yaml", "two"])
def test_papermill_cli_renders_the_report_for_exactly_the_symbols_given(
        replayed: str, tmp_path: Path, given: list[str], symbols: list[str], interval: str,
        start: str | None, end: str | None) -> None:
    out = tmp_path / "out.ipynb"
    argv = [str(PAPERMILL), str(REPORT_NOTEBOOK), str(out), *given, "-p", "interval", interval,
            "-p", "store_url", replayed, "--cwd", str(tmp_path)]
    for name, value in (("start", start), ("end", end)):
        if value is not None:
            argv += ["-p", name, value]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    executed = nbformat.read(out, as_version=4)
    iv = {"1m": 60_000, "5m": 300_000, "4h": 4 * HOUR}[interval]
    if end is None:  # the report's default: the 6 hours up to just after the newest candle
        with Store(replayed) as store:
            last = max(to_ms(s["last"]) for s in store.info()["series"]  # type: ignore[type-var]
                       if s["symbol"] in symbols and s["interval"] == interval)
        lo, hi = last + iv - 6 * HOUR, last + iv
    else:
        lo, hi = to_ms(start), to_ms(end)
    expected = held(replayed, symbols, interval, lo, hi)
    assert sorted(expected.symbol.unique()) == symbols  # the store has candles for each
    assert summary_symbols(executed) == symbols
    header = outputs(executed, "text/markdown")[0]
    assert header.startswith(f"## {', '.join(symbols)} · {interval} candles")
    assert f"· {len(expected):,} candles" in header
    # each chart covers the whole period where it has candles (not only the newest bars)
    first = to_ms(expected.window_start.min())
    last_end = to_ms(expected.window_end.max())
    period = (max(lo, first), min(hi, last_end))  # type: ignore[type-var]
    assert charts(executed) == {f"{s} · {interval}": period for s in symbols}
    assert period[1] - period[0] >= 0.95 * (hi - lo)  # type: ignore[operator]
    assert_reads_like_a_report(executed)


def test_an_unknown_symbol_names_what_was_looked_for_and_what_the_store_holds(
        replayed: str, tmp_path: Path) -> None:
    with pytest.raises(NotebookRunError) as info:
        render_report(replayed, tmp_path / "out", symbols="DOGE,XRP", interval="5m")
    message = str(info.value)
    assert "no 5m candles for DOGE, XRP in sqlite:///" in message
    assert "between None and None" not in message
    with Store(replayed) as store:
        series = [s for s in store.info()["series"] if s["interval"] == "5m"]
    assert [s["symbol"] for s in series] == ["BTC"]
    assert "it holds BTC 5m candles 2013-01-01 00:00 to 2013-01-01 23:55" in message


def test_a_known_symbol_outside_the_period_says_when_the_store_has_it(
        replayed: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    render_report(replayed, out, symbols="BTC", interval="5m", start="2013-01-01", end="2013-01-02")
    good = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(NotebookRunError) as info:
        render_report(replayed, out, symbols=["BTC"], interval="5m", start="2014-01-01",
                      end="2014-01-02")
    assert ("no 5m candles for BTC between 2014-01-01 00:00 and 2014-01-02 00:00 UTC in sqlite:///"
            in str(info.value))
    assert "it holds BTC 5m candles 2013-01-01 00:00 to 2013-01-01 23:55" in str(info.value)
    # the failed run left the last good report alone, and can be read beside it
    assert {k: (out / k).read_bytes() for k in good} == good
    assert (out / "market_report.failed.html").is_file()
