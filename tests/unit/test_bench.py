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
        "consumer_candles_equal_flink": True, "flink_all_ticks": True,
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


# ------------------------------------------------------------------ the Flink peer (no Flink needed)
FLINK_KEYS = {k for k, (section, _) in KEYS.items() if section == "flink"}
_NOWHERE = ("--kafka", "127.0.0.1:1", "--store", "postgresql+psycopg://x@127.0.0.1:1/x", "--redis",
            "redis://127.0.0.1:1/0")


def test_flink_section_without_java_is_skipped_with_the_reason(tmp_path, monkeypatch):
    """No Java runtime: the section is skipped, saying so, before it touches a service; exit 1."""
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    code, doc = _run_cli(tmp_path, "--only", "flink", *_NOWHERE)
    assert code == 1
    assert set(doc["skipped"]) == {"flink"}
    assert "Java" in doc["skipped"]["flink"] and "none found" in doc["skipped"]["flink"]
    assert not doc["skipped"]["flink"].startswith("failed")  # a peer missing, not a crash
    _assert_document(doc, set())
    assert {doc[k] for k in FLINK_KEYS} == {None} and doc["targets"]["consumer_vs_flink"]["ok"] is None


def test_flink_peer_says_what_is_missing(tmp_path, monkeypatch):
    """No interpreter PyFlink supports, no Maven for the connector jar, an old Java: each a reason."""
    import benchmarks.peers.flink as peer
    from benchmarks.peers.venv import PeerUnavailable, ensure_venv

    with pytest.raises(PeerUnavailable, match=r"needs Python 0\.1: none found"):
        ensure_venv("x", ["nothing==1"], pythons=["0.1"])
    monkeypatch.setattr(peer, "CACHE", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(PeerUnavailable, match=r"flink-sql-connector-kafka.* needs Maven"):
        peer._connector_jar()
    (tmp_path / "flink-jars").mkdir()
    jar = tmp_path / "flink-jars" / f"{peer.CONNECTOR.split(':')[1]}-{peer.CONNECTOR.split(':')[2]}.jar"
    jar.write_bytes(b"")
    assert peer._connector_jar() == jar  # fetched once, then reused from the cache
    old = tmp_path / "jdk8"
    (old / "bin").mkdir(parents=True)
    (old / "bin" / "java").write_text('#!/bin/sh\necho \'java version "1.8.0_392"\' >&2\n')
    (old / "bin" / "java").chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(old))
    with pytest.raises(PeerUnavailable, match=r"needs Java >= 11.*1\.8\.0"):
        peer.setup()


def test_flink_job_sql_is_a_bounded_event_time_tumbling_aggregate():
    from benchmarks.peers.flink_job import candles_sql, source_ddl

    ddl = source_ddl({"topic": "t", "kafka": "k:9092", "out_of_orderness_ms": 1_500}, "g")
    assert "'scan.bounded.mode' = 'latest-offset'" in ddl and "'scan.startup.mode' = 'earliest-offset'" in ddl
    assert "WATERMARK FOR rt AS rt - INTERVAL '1.500' SECOND" in ddl and "TO_TIMESTAMP_LTZ(ts, 3)" in ddl
    assert "'scan.startup.mode' = 'latest-offset'" in source_ddl({"topic": "t", "kafka": "k", "out_of_orderness_ms": 0},
                                                                 "g", empty=True)
    sql = candles_sql(["1m", "5m", "15m"])
    assert sql.count("TUMBLE(TABLE ticks, DESCRIPTOR(rt)") == 3 and sql.count("UNION ALL") == 2
    assert "INTERVAL '15' MINUTE" in sql and "FIRST_VALUE(price)" in sql and "LAST_VALUE(ts)" in sql
    with pytest.raises(ValueError, match="not a candle interval"):
        candles_sql(["1m' --"])


def _flink_run(rows: list[list], *, ticks: int) -> dict:
    return {"jvm_start_s": 3.0, "pyflink": "2.2.1", "empty": {"ticks": 0, "job_s": 2.0},
            "runs": [{"ticks": ticks, "job_s": 12.0}, {"ticks": ticks, "job_s": 7.0}], "_rows": rows}


def test_flink_section_builds_its_keys_checks_and_details(tmp_path, monkeypatch):
    """The section with a stand-in Flink and consumer pair: every key, both checks, honest open/close."""
    import benchmarks.sections.flink as section
    from benchmarks.peers.flink import FlinkSetup
    from benchmarks.services import Services
    from cryptolab.config import Settings

    ours = [["A", "1m", 0, 1.0, 2.0, 0.5, 1.5, 3.0], ["A", "5m", 0, 1.0, 2.0, 0.5, 1.5, 3.0]]
    flink_rows = [[*r, 4, 10, 50, 10, 50] for r in ours]
    flink_rows[1][3] = 9.0  # this window's first tick to arrive was not its earliest: open not compared
    flink_rows[1][11] = 20
    monkeypatch.setattr(section, "setup", lambda: FlinkSetup(python=tmp_path / "py", jar=tmp_path / "c.jar",
                                                             java_home=None, java="openjdk 17"))
    seen: list[int] = []

    def fake_run_flink(_fs, params, *, timeout):
        seen.append(params["parallelism"])
        assert params["topic"] == "cl_topic" and timeout > 0
        Path(params["candles_out"]).write_text(json.dumps(flink_rows))
        return _flink_run(flink_rows, ticks=4_000)

    monkeypatch.setattr(section, "run_flink", fake_run_flink)
    monkeypatch.setattr(section, "_pair", lambda *_a: {"ticks": 4_000, "seconds": 2.5, "ticks_per_s": 1_600.0})
    svc = Services(Settings.from_env({}, kafka_bootstrap="127.0.0.1:1"))
    svc.notes.update(consumer_topic="cl_topic", consumer_ticks=4_000, consumer_ticks_per_s=8_000.0, consumer_candles=ours)
    out = section.run(svc, BenchConfig.quick_config(), lambda _line: None)
    assert seen == [1, 2]
    assert {k for k in out if k in KEYS} == FLINK_KEYS
    assert out["flink_ticks_per_s"] == 4_000 / (7.0 - 2.0)  # the best job less the empty one
    assert out["consumer_vs_flink"] == 10.0 and out["consumer_2proc_vs_flink_p2"] == 2.0
    assert out["checks"] == {"consumer_candles_equal_flink": True, "flink_all_ticks": True}
    cmp = out["details"]["candles_vs_flink"]
    assert cmp["compared"] == 2 and cmp["open_by_arrival"] == 1 and cmp["mismatched"] == 0
    assert out["details"]["p1"]["with_startup_ticks_per_s"] < out["details"]["p1"]["ticks_per_s"]
    flink_rows[0][4] = 2.5  # a different high is a mismatch
    assert section.run(svc, BenchConfig.quick_config(), lambda _line: None)["checks"]["consumer_candles_equal_flink"] is False
