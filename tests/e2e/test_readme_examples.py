"""Every ```python snippet of README.md runs as written, in order, on the embedded defaults.

A snippet whose first line is :data:`ONLINE` talks to a real exchange: it is compiled and its
``cryptolab`` imports resolved, not run (the test suite runs offline; the same calls run against
the stand-in exchange in tests/e2e and tests/unit).

The snippets run in one fresh interpreter, in an empty directory, with no ``CRYPTOLAB_*``
variable (the embedded mock cluster, ``.cryptolab/cryptolab.db`` and the in-process cache),
sharing one namespace as a reader pasting them into one notebook would. After a snippet, the
checks given for it below record what it produced, and the test compares that with what its
comments promise (a snippet without checks must still run).
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)

#: Run in a fresh interpreter: ``argv[1]`` is a JSON list of [first line, code, checks or null].
_RUNNER = r"""
import json, sys
blocks = json.loads(open(sys.argv[1], encoding="utf-8").read())
ns = {"__name__": "__main__"}
facts = {}
for line, code, checks in blocks:
    # padded so that a traceback names the README's own line numbers
    exec(compile("\n" * (line - 1) + code, "README.md", "exec"), ns)
    if checks:
        ns["facts"] = facts
        exec(compile(checks, "checks", "exec"), ns)
print("FACTS " + json.dumps(facts))
"""

#: Checks run after the snippet that contains the key; each sets entries of ``facts``.
CHECKS = {
    "cryptolab.candles_from_ticks(ticks_df": """
from cryptolab.batch import epoch_ms
btc = candles[(candles.symbol == "BTC-USD") & (candles.interval == "1m")]
facts["api"] = {
    "ticks": len(ticks_df), "consumed": stats.ticks,
    "reference": [[w, float(x)] for w, x in zip(epoch_ms(btc.window_start).tolist(), btc.close)],
    "history": [[w, float(x)] for w, x in zip(epoch_ms(df.window_start).tolist(), df.close)],
    "same_frames": bool(candles.dtypes.equals(df.dtypes) and df.dtypes.equals(scored.dtypes[df.columns])),
    "latest": [c.window_start, c.close, c.final],
    "scored": len(scored),
    "chart_bars": len(chart.buffer),
}
""",
    "market.write_labels(": """
import json, pathlib
facts["producer"] = {
    "ticks": len(df), "delivered": producer.stats.delivered, "failed": producer.stats.failed,
    "labels": len(json.loads(pathlib.Path("out/ticks.labels.json").read_text())),
    "injections": len(market.labels),
}
""",
    "chart.attach(settings=": """
facts["chart"] = {"symbol": chart.symbol, "bars": len(chart.buffer)}
""",
}


#: The first line of a snippet that needs a real exchange's API.
ONLINE = "# online: talks to the exchange"


def readme_blocks(*, online: bool = False) -> list[tuple[int, str]]:
    """The ```python blocks of README.md: (line of their first code line, code); the offline
    ones, or with ``online`` the ones marked :data:`ONLINE`."""
    text = README.read_text(encoding="utf-8")
    blocks = [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in _BLOCK.finditer(text)]
    return [(line, code) for line, code in blocks if code.startswith(ONLINE) == online]


def test_online_readme_snippets_compile_and_import_what_they_name() -> None:
    blocks = readme_blocks(online=True)
    assert blocks, "no README snippet is marked online: then this test and ONLINE can go"
    for line, code in blocks:
        tree = compile("\n" * (line - 1) + code, "README.md", "exec", flags=ast.PyCF_ONLY_AST)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cryptolab"):
                module = importlib.import_module(node.module)
                missing = [a.name for a in node.names if not hasattr(module, a.name)]
                assert not missing, f"README.md line {node.lineno}: {node.module} has no {missing}"


def test_every_readme_python_snippet_runs_and_does_what_it_says(tmp_path: Path) -> None:
    blocks = readme_blocks()
    assert len(blocks) >= 3, "README.md lost its Python snippets"
    plan = []
    for line, code in blocks:
        checks = [c for key, c in CHECKS.items() if key in code]
        plan.append([line, code, "\n".join(checks) or None])
    for key in CHECKS:
        assert any(key in code for _, code in blocks), f"no README snippet contains {key!r} any more"
    (tmp_path / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    (tmp_path / "runner.py").write_text(_RUNNER, encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOLAB_")}
    proc = subprocess.run([sys.executable, str(tmp_path / "runner.py"), str(tmp_path / "plan.json")],
                          cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"a README snippet failed:\n{proc.stderr[-4000:]}"
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("FACTS ")]
    facts = json.loads(line[len("FACTS "):])

    api = facts["api"]
    assert api["consumed"] == api["ticks"] > 0  # the pipeline consumed every tick produced
    assert api["reference"], "the synthetic market has no BTC-USD trades"
    assert api["history"] == api["reference"]  # stored history = the batch candles
    assert api["same_frames"]  # candles_from_ticks, history and score_history: one frame layout
    assert api["latest"] == [*api["reference"][-1], True]  # the last candle, closed at the end
    assert api["scored"] == len(api["history"])
    assert api["chart_bars"] > 0  # the live chart backfilled from the store

    producer = facts["producer"]
    assert producer["delivered"] == producer["ticks"] > 0 and producer["failed"] == 0
    assert producer["labels"] == producer["injections"] == 10

    assert facts["chart"] == {"symbol": "BTC-USD", "bars": facts["chart"]["bars"]}
    assert facts["chart"]["bars"] > 0
    assert (work / ".cryptolab" / "cryptolab.db").is_file()  # the embedded default store
