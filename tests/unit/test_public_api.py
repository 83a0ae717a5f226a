"""The public surface, the purity of the core, and docs that match the code."""

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
    "Settings", "Tick", "TickProducer", "ValidationError", "candles_from_ticks", "history", "latest",
    "run_notebook", "score_history", "__version__",
}


def test_public_names_are_pinned_and_all_resolve():
    assert set(cryptolab.__all__) == PUBLIC
    for name in cryptolab.__all__:
        assert getattr(cryptolab, name) is not None, name


def test_pure_core_imports_no_io_libraries():
    code = (
        "import sys\n"
        "import cryptolab.models, cryptolab.windows, cryptolab.batch, cryptolab.anomaly.features\n"
        "bad = {'confluent_kafka', 'redis', 'sqlalchemy', 'psycopg', 'bokeh', 'httpx', 'websockets'}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


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
