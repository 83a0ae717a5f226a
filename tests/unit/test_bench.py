"""Smoke tests of the benchmark suite (``make bench``, ``python -m benchmarks.run``): keys, types,
checks. No timings.

The unit tests run the sections that need no service (batch vs polars, scoring, history on
SQLite) in ``--quick`` mode; the integration test runs the whole quick suite against the
real services. Neither asserts a speed: only that every fixed key is there, of the right
type, and that the correctness checks (cryptolab's candles equal Quix's and polars') hold.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from benchmarks.run import main
from benchmarks.suite import KEYS, SECTIONS, TARGETS, BenchConfig, check_targets, resolve_sections
from cryptolab.cli import main as cryptolab_main

PURE = ("history", "scoring", "batch")


def _run_cli(tmp_path: Path, *args: str) -> tuple[int, dict]:
    out = tmp_path / "bench.json"
    code = main(["--quick", "--json", str(out), *args])
    return code, json.loads(out.read_text())


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _assert_document(doc: dict, measured: set[str]) -> None:
    assert set(KEYS) <= set(doc), "every fixed key is always present"
    for key, (section, _meaning) in KEYS.items():
        if section in measured:
            assert _is_number(doc[key]), f"{key} = {doc[key]!r}"
            assert doc[key] > 0, key
        else:
            assert doc[key] is None, f"{key} was not measured but is {doc[key]!r}"
    assert set(doc["targets"]) == set(TARGETS)
    for key, target in doc["targets"].items():
        assert target["value"] == doc[key]
        assert target["ok"] is (None if doc[key] is None else target["ok"])
        if doc[key] is not None:
            assert isinstance(target["ok"], bool)
    assert all(isinstance(ok, bool) for ok in doc["checks"].values())
    assert doc["machine"]["cpus"] >= 1 and isinstance(doc["machine"]["python"], str)
    assert doc["versions"]["cryptolab"] and doc["versions"]["polars"]
    assert set(doc["details"]) == measured
    assert doc["config"]["sections"] == [s for s in SECTIONS if s in doc["config"]["sections"]]


def test_quick_pure_sections_write_every_key(tmp_path):
    code, doc = _run_cli(tmp_path, "--only", ",".join(PURE))
    assert code == 0, doc["skipped"]
    assert doc["skipped"] == {}
    _assert_document(doc, set(PURE))
    assert doc["checks"] == {"batch_candles_equal_polars": True}
    batch = doc["details"]["batch"]
    assert batch["ticks"] == BenchConfig.quick_config().batch_ticks
    assert batch["same_windows"] and batch["ohlc_trades_equal"] and batch["volume_close"]
    assert doc["details"]["history"]["dialect"] == "sqlite"  # no PostgreSQL configured in unit tests
    assert 0 <= doc["scoring_cpu_overhead"] < 10


def test_quick_sparse_section_writes_its_keys_and_checks(tmp_path, shared_data):
    """The sparse section (no service needed: the replay falls back to the embedded ones)
    writes its keys and checks the stream's candles of the recorded files equal the batch's."""
    code, doc = _run_cli(tmp_path, "--only", "sparse")
    assert doc["skipped"] == {}
    _assert_document(doc, {"sparse"})
    assert doc["checks"] == {"stream_candles_equal_batch_bitstamp": True, "stream_candles_equal_batch_mtgox": True}
    assert code == 0
    sparse = doc["details"]["sparse"]
    assert sparse["ticks"] == BenchConfig.quick_config().sparse_ticks
    assert sparse["feed_batch"] == 20_000 and sparse["sparse_gap_minutes"] == 40
    assert sparse["bitstamp"]["candles"] > 0 and sparse["mtgox"]["candles"] > 0
    assert sparse["replay"]["services"] in ("embedded", "partly embedded", "kafka+postgresql+redis")
    assert set(sparse["replay"]["seconds"]) == {"bitstamp", "dense"}
    for key in ("stream_sparse_vs_dense", "stream_vs_batch_bitstamp"):
        assert key in doc["targets"]


def test_sections_without_their_services_are_skipped_and_named(tmp_path):
    code, doc = _run_cli(tmp_path, "--only", "batch,latest,consumer_vs_quix")
    assert code == 1  # a requested section could not run
    assert set(doc["skipped"]) == {"latest", "consumer"}
    assert "Redis" in doc["skipped"]["latest"] and "services.sh" in doc["skipped"]["latest"]
    assert "Kafka" in doc["skipped"]["consumer"]
    _assert_document(doc, {"batch"})


def test_only_accepts_sections_and_keys_and_rejects_the_rest(capsys, tmp_path):
    assert resolve_sections("latency_window_end_to_publish_ms_p99,batch") == ["latency", "batch"]
    assert resolve_sections(["memory", "producer"]) == ["producer", "memory"]
    with pytest.raises(ValueError, match="unknown benchmark 'nope'"):
        resolve_sections("batch,nope")
    assert main(["--json", str(tmp_path / "x.json"), "--only", "nope"]) == 2
    assert "unknown benchmark" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_check_targets_compares_each_bound():
    doc = {"consumer_vs_bare": 0.49, "history_1000_ms_p50": 2.0, "consumer_rss_mb": float("nan")}
    checked = check_targets(doc)
    assert checked["consumer_vs_bare"]["ok"] is False
    assert checked["history_1000_ms_p50"]["ok"] is True
    assert checked["consumer_rss_mb"]["ok"] is None
    assert checked["consumer_vs_quix"] == {"value": None, "target": ">= 10", "ok": None}


@pytest.mark.slow
def test_quick_suite_against_the_services(tmp_path, kafka_bootstrap, pg_url, redis_url):
    code, doc = _run_cli(tmp_path, "--kafka", kafka_bootstrap, "--store", pg_url, "--redis", redis_url)
    assert doc["skipped"] == {}
    _assert_document(doc, set(SECTIONS))
    assert doc["checks"] == {
        "consumer_all_ticks": True, "consumer_candles_equal_quix": True, "batch_candles_equal_polars": True,
        "stream_candles_equal_batch_bitstamp": True, "stream_candles_equal_batch_mtgox": True,
    }
    assert code == 0
    cmp = doc["details"]["consumer"]["candles_vs_quix"]
    assert cmp["compared"] > 0 and cmp["mismatched"] == 0
    assert doc["details"]["latency"]["window_closes_measured"] > 0
    assert doc["details"]["history"]["dialect"] == "postgresql"


def test_each_section_waits_for_a_quiet_machine_at_most_settle_max_s(tmp_path, monkeypatch):
    """A quick run (a smoke test, e.g. the benchmark notebook under papermill) must not spend
    half a minute per section waiting for a busy machine to calm down."""
    import benchmarks.suite as bench

    waits: list[float] = []
    monkeypatch.setattr(bench, "settle", lambda max_wait=30.0, **_: waits.append(max_wait) or 0.0)
    _code, doc = _run_cli(tmp_path, "--only", "batch,history")  # (the code says whether targets held)
    assert doc["skipped"] == {}
    assert waits == [BenchConfig.quick_config().settle_max_s] * 2
    assert BenchConfig.quick_config().settle_max_s < BenchConfig().settle_max_s


def test_cryptolab_bench_says_in_one_line_that_the_suite_runs_from_a_checkout(capsys, tmp_path):
    """The package ships no benchmark: ``cryptolab bench``, whatever its arguments, points to
    ``make bench`` in one line, exit 2, and writes nothing."""
    for argv in ([], ["--quick", "--json", str(tmp_path / "x.json")], ["--only", "batch"], ["--help"]):
        assert cryptolab_main(["bench", *argv]) == 2, argv
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1, (argv, err)
        assert "source checkout" in err and "make bench" in err and "python -m benchmarks.run" in err
    assert not (tmp_path / "x.json").exists()
