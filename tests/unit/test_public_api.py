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
