"""The public surface, what a consumer process loads, and docs that match the code (the purity of
the core is import-linter's contract: tests/unit/test_layers.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cryptolab
from cryptolab.cli import build_parser
from cryptolab.config import ENV_VARS

ROOT = Path(__file__).resolve().parents[2]

PUBLIC = {
    "Alert", "Candle", "CandleAggregator", "CandleChart", "CandlePipeline", "CryptolabError",
    "Settings", "Tick", "TickProducer", "ValidationError", "candles_from_ticks", "history", "latest", "live",
    "run_notebook", "score_history", "__version__",
}


def test_public_names_are_pinned_and_all_resolve():
    assert set(cryptolab.__all__) == PUBLIC
    for name in cryptolab.__all__:
        assert getattr(cryptolab, name) is not None, name


def test_readme_documents_every_variable_and_command():
    readme = (ROOT / "README.md").read_text()
    for var in ENV_VARS:
        assert f"`{var}`" in readme, f"{var} missing from README"
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in sub.choices:
        assert f"cryptolab {name}" in readme, f"`cryptolab {name}` missing from README"
    assert "make demo" in readme and "make test" in readme


def test_a_scoring_consumer_never_loads_pandas_or_pyarrow(tmp_path: Path) -> None:
    """pandas and pyarrow are ~90 MiB of a process: the consumer path (producer, pipeline with
    scoring, SQL store, cache) must not import them; only DataFrame-returning calls do."""
    code = (
        "import sys\n"
        "from cryptolab.config import Settings\n"
        "from cryptolab.pipeline import CandlePipeline\n"
        "from cryptolab.producer import TickProducer\n"
        "from cryptolab.sources.synthetic import SyntheticMarket\n"
        "from cryptolab.store import Store\n"
        "from cryptolab.cache import MemoryCache\n"
        f"s = Settings.from_env({{}}, store_url='sqlite:///{tmp_path / 'c.db'}', topic='footprint')\n"
        "with TickProducer(s) as p:\n"
        "    p.send_many(SyntheticMarket(symbols=3, seed=1, start_ms=1_700_000_000_000,\n"
        "                                duration_ms=600_000).iter_ticks())\n"
        "store = Store(s.resolved_store_url()); store.init()\n"
        "stats = CandlePipeline(s, store=store, cache=MemoryCache(), scorer=True).run(stop_at_end=True)\n"
        "assert stats.ticks > 0 and stats.candles_final > 0, stats\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'pandas', 'pyarrow', 'polars'}))\n"
        "store.history('SYM-0', '1m')\n"
        "print('pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[]", "True"]


def test_every_candle_frame_of_the_api_shows_window_times_as_history_does(tmp_path: Path) -> None:
    """candles_from_ticks, history and score_history: the same candles, the same frame (UTC
    datetimes for window_start/window_end, epoch-ms ints for the tick times), bit for bit."""
    import pandas as pd

    from cryptolab.batch import frame_to_candles
    from cryptolab.sources.synthetic import SyntheticMarket
    from cryptolab.store import Store

    url = f"sqlite:///{(tmp_path / 'c.db').as_posix()}"
    ticks = SyntheticMarket(symbols=["BTC-USD"], seed=2, start_ms=1_700_000_040_000,
                            duration_ms=1_800_000).to_frame()
    batch = cryptolab.candles_from_ticks(ticks, intervals="1m")
    with Store(url) as store:
        store.init()
        store.commit_batch(group="g", topic="t", candles=frame_to_candles(batch))
    stored = cryptolab.history("BTC-USD", "1m", store_url=url)
    assert len(stored) == len(batch) == 30
    assert str(batch["window_start"].dtype) == str(batch["window_end"].dtype) == "datetime64[ms, UTC]"
    assert batch["window_start"].iloc[0] == pd.Timestamp("2023-11-14 22:14", tz="UTC")
    assert batch["first_ts"].dtype == "int64"
    pd.testing.assert_frame_equal(batch, stored, check_exact=True)
    pd.testing.assert_frame_equal(cryptolab.score_history(batch, "rule"),
                                  cryptolab.score_history(stored, "rule"), check_exact=True)
    empty = cryptolab.candles_from_ticks(ticks.iloc[:0], intervals="1m")
    assert empty.dtypes.equals(cryptolab.history("ETH-USD", "1m", store_url=url).dtypes)
