"""The layer rule: import-linter's contracts in pyproject.toml hold, say what the README says, and
break when a module crosses a layer (so that a kept contract means something).

`make test` runs `lint-imports` itself; these tests also run it from pytest alone, and on a copy
of the package with one forbidden import added.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("importlinter", reason="import-linter comes with the test extra")

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS: dict[str, dict[str, Any]] = {
    c["id"]: c
    for c in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
}
LINT = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """Run lint-imports on the package and pyproject.toml under ``root``."""
    return subprocess.run(
        [sys.executable, "-c", LINT, "--no-cache"], cwd=root, capture_output=True, text=True,
        env={"PYTHONPATH": str(root), "PATH": "", "COLUMNS": "200"}, timeout=120,
    )


def test_the_contracts_are_kept() -> None:
    out = lint_imports(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in out.stdout


def test_the_pure_core_contract_covers_the_core_and_every_io_library() -> None:
    pure = CONTRACTS["pure-core"]
    assert pure["type"] == "forbidden" and not pure.get("ignore_imports")
    assert {"cryptolab.models", "cryptolab.candles", "cryptolab.windows", "cryptolab.batch",
            "cryptolab.anomaly"} <= set(pure["source_modules"])
    assert {"confluent_kafka", "redis", "sqlalchemy", "psycopg", "bokeh", "httpx",
            "websockets"} <= set(pure["forbidden_modules"])
    adapters = CONTRACTS["adapters"]
    assert not adapters.get("ignore_imports")
    assert {"cryptolab.kafka", "cryptolab.store", "cryptolab.cache",
            "cryptolab.sources"} <= set(adapters["source_modules"])
    layers = CONTRACTS["layers"]
    assert layers["exhaustive"] is True
    assert "kafka | store | cache | sources | webhooks" in layers["layers"]  # independent of each other


# (file, text appended to it, a line of lint-imports' report that must appear)
BREACHES = [
    ("models/records.py", "\n\ndef _breach() -> None:\n    import confluent_kafka  # noqa: F401\n",
     "cryptolab.models is not allowed to import confluent_kafka"),
    ("candles/stream.py", "\n\ndef _breach() -> None:\n    from cryptolab.store import Store  # noqa: F401\n",
     "cryptolab.candles is not allowed to import sqlalchemy"),
    ("candles/batch.py", "\nfrom typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
     "    from cryptolab.viz.chart import CandleChart  # noqa: F401\n",
     "cryptolab.candles is not allowed to import cryptolab.viz"),
    ("cache/redis.py", "\n\ndef _breach() -> None:\n    from cryptolab.store import Store  # noqa: F401\n",
     "cryptolab.cache is not allowed to import cryptolab.store"),
    ("store/queries.py", "\n\ndef _breach() -> None:\n    from cryptolab.candles import CandleAggregator  # noqa: F401\n",
     "cryptolab.store is not allowed to import cryptolab.candles"),
    ("kafka.py", "\n\ndef _breach() -> None:\n    from cryptolab.pipeline import CandlePipeline  # noqa: F401\n",
     "cryptolab.kafka is not allowed to import cryptolab.pipeline"),
    ("viz/buffer.py", "\n\ndef _breach() -> None:\n    import polars  # noqa: F401\n",
     "cryptolab.viz.buffer -> polars"),
    ("viz/chart.py", "\n\ndef _breach() -> None:\n    from cryptolab.cache import open_cache  # noqa: F401\n",
     "cryptolab.viz.chart -> cryptolab.cache"),
    ("demo.py", "\n\ndef _breach() -> None:\n    import nautilus_trader  # noqa: F401\n",
     "cryptolab.demo -> nautilus_trader"),
    ("cli/__init__.py", "\n\ndef _breach() -> None:\n    from benchmarks import run  # noqa: F401\n",
     "cryptolab.cli -> benchmarks"),
    ("anomaly/evaluation.py", "\n\ndef _breach() -> None:\n    from cryptolab.sources.synthetic import SyntheticMarket  # noqa: F401\n",
     "cryptolab.anomaly is not allowed to import cryptolab.sources"),
    ("reports/market.py", "\n\ndef _breach() -> None:\n    from cryptolab.viz import CandleChart  # noqa: F401\n",
     "cryptolab.reports is not allowed to import cryptolab.viz"),
    ("unplaced.py", "\"\"\"A module no layer lists.\"\"\"\n", "- cryptolab.unplaced"),
]


@pytest.mark.parametrize(("where", "text", "report"), BREACHES,
                         ids=[where for where, _, _ in BREACHES])
def test_a_module_crossing_a_layer_breaks_the_check(
        where: str, text: str, report: str, tmp_path: Path) -> None:
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    shutil.copytree(ROOT / "cryptolab", tmp_path / "cryptolab",
                    ignore=shutil.ignore_patterns("__pycache__", "*.ipynb"))
    with (tmp_path / "cryptolab" / where).open("a") as f:
        f.write(text)
    out = lint_imports(tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    assert report in out.stdout, out.stdout
