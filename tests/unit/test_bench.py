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
    doc = {"consumer_vs_bare": 0.69, "history_1000_ms_p50": 2.0, "consumer_rss_mb": float("nan")}
    checked = check_targets(doc)
    assert checked["consumer_vs_bare"]["ok"] is False
    assert checked["history_1000_ms_p50"]["ok"] is True
    assert checked["consumer_rss_mb"]["ok"] is None
    assert checked["consumer_vs_quix"] == {"value": None, "target": ">= 30", "ok": None}


@pytest.mark.slow
def test_quick_suite_against_the_services(tmp_path, kafka_bootstrap, pg_url, redis_url):
    code, doc = _run_cli(tmp_path, "--kafka", kafka_bootstrap, "--store", pg_url, "--redis", redis_url)
    assert doc["skipped"] == {}
    _assert_document(doc, set(SECTIONS))
    assert doc["checks"] == {
        "consumer_all_ticks": True, "consumer_candles_equal_quix": True, "batch_candles_equal_polars": True,
        "stream_candles_equal_batch_bitstamp": True, "stream_candles_equal_batch_mtgox": True,
        "stream_bars_equal_nautilus": True,
        "consumer_candles_equal_flink": True, "flink_all_ticks": True,
        "api_candles_returned_1000": True, "api_ws_every_update_received": True,
    }
    assert code == 0
    cmp = doc["details"]["consumer"]["candles_vs_quix"]
    assert cmp["compared"] > 0 and cmp["mismatched"] == 0
    assert doc["details"]["latency"]["window_closes_measured"] > 0
    assert doc["details"]["history"]["dialect"] == "postgresql"
    assert doc["details"]["api"]["services"] == "postgresql+redis"


@pytest.mark.slow
def test_quick_api_section_drives_a_real_serve_process_and_writes_its_keys(tmp_path):
    """The api section on the embedded defaults (SQLite, the server's in-process cache): a real
    ``cryptolab serve`` under locust (its virtualenv made once), its answers checked, every
    WebSocket update received by every client."""
    code, doc = _run_cli(tmp_path, "--only", "api")
    assert doc["skipped"] == {}, doc["skipped"]
    _assert_document(doc, {"api"})
    assert doc["checks"] == {"api_candles_returned_1000": True, "api_ws_every_update_received": True}
    assert code == 0
    api = doc["details"]["api"]
    quick = BenchConfig.quick_config()
    assert api["services"] == "sqlite+in-process cache" and api["candles_in_store"] >= 1_000
    assert api["answers"]["candles_count"] == 1_000
    for name in ("bare", "latest", "candles"):
        run = api["load"][name]
        assert run["requests"] > 0 and run["failures"] == 0 and run["server_cpu_s"] > 0, (name, run)
    push = api["ws_push"]
    assert push["clients"] == quick.ws_clients and push["received"] == push["expected"] > 0
    assert push["clients_with_every_update"] == quick.ws_clients
    assert "in the server's process" in push["publisher"]
    assert set(doc["targets"]) >= {"api_latest_vs_bare", "ws_push_ms_p99"}


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


# ----------------------------------------------------------------- the NautilusTrader peer
def _nautilus_like_bars(stream, minutes):
    """The bars NautilusTrader builds, from cryptolab's candles on its convention: every
    candle but the last of each series (no later tick fires its timer)."""
    from benchmarks.peers.nautilus import closing_side_ts, feed
    from cryptolab.models import parse_interval

    rows = []
    for m in minutes:
        candles = feed(stream, f"{m}m", 20_000, ts=closing_side_ts(stream.codes, stream.ts, m * 60_000))
        last = {c.symbol: max(x.window_end for x in candles if x.symbol == c.symbol) for c in candles}
        rows += [[c.symbol, parse_interval(c.interval) // 60_000, c.window_end, c.open, c.high, c.low, c.close,
                  c.volume] for c in candles if c.window_end != last[c.symbol]]
    return rows


def test_nautilus_section_structure_with_a_stand_in_peer(tmp_path, monkeypatch):
    """The section without the virtualenv: the peer's run is replaced by the bars it would
    build, so the keys, per-stream details and the check are exercised."""
    import benchmarks.sections.nautilus as section
    from benchmarks.sections.nautilus import REAL_FILES

    def fake_run(python, stream, minutes, repeat, timeout, min_seconds):
        bars = _nautilus_like_bars(stream, minutes)
        return ({"ticks": len(stream), "seconds": 1.0, "ticks_per_s": float(len(stream)), "bars": len(bars),
                 "tick_build_seconds": 0.1, "price_precision": 2, "size_precision": 4, "version": "stand-in",
                 "python": "3.12", "runs_seconds": [1.0]}, bars)

    monkeypatch.setattr(section, "nautilus_python", lambda: tmp_path / "python")
    monkeypatch.setattr(section, "run_nautilus", fake_run)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr("cryptolab.evaluation.shared_data_dir", lambda: tmp_path)  # no real data here
    code, doc = _run_cli(tmp_path, "--only", "stream_vs_nautilus")
    assert doc["skipped"] == {}
    _assert_document(doc, {"nautilus"})
    assert doc["checks"] == {"stream_bars_equal_nautilus": True}
    details = doc["details"]["nautilus"]
    assert set(details["streams"]) == {"synthetic"}
    assert set(details["real_data"]) == set(REAL_FILES)
    assert all(note.startswith("skipped: ") for note in details["real_data"].values())
    synthetic = details["streams"]["synthetic"]
    assert synthetic["ticks"] == BenchConfig.quick_config().nautilus_ticks
    assert doc["stream_vs_nautilus"] == synthetic["ratio"] > 0
    cmp = synthetic["bars_vs_cryptolab"]
    assert cmp["match"] and cmp["differing"] == 0 and cmp["cryptolab_only"] == cmp["series"]
    assert doc["targets"]["stream_vs_nautilus"]["target"] == ">= 1"
    assert code == 0

    monkeypatch.setenv("CI", "true")  # under CI a missing data set fails the section
    code, doc = _run_cli(tmp_path, "--only", "nautilus")
    assert code == 1 and "real data set missing under CI=true" in doc["skipped"]["nautilus"]


def test_nautilus_section_without_a_python_312_is_skipped_with_the_reason(tmp_path, monkeypatch):
    import benchmarks.peers.nautilus as peer

    monkeypatch.setattr(peer, "find_python", lambda versions: None)
    for ci in ("false", "true"):  # the same under CI: skipped with the reason, exit 1
        monkeypatch.setenv("CI", ci)
        code, doc = _run_cli(tmp_path, "--only", "nautilus,batch")
        assert code == 1
        assert set(doc["skipped"]) == {"nautilus"}
        assert "nautilus: no suitable Python interpreter found" in doc["skipped"]["nautilus"]
        _assert_document(doc, {"batch"})


def test_peer_venv_reuses_a_complete_one_and_names_what_failed(tmp_path):
    import sys

    from benchmarks.peers.venv import PeerUnavailable, ensure_venv, find_python

    assert find_python(["2.1"], roots=[tmp_path]) is None
    with pytest.raises(PeerUnavailable, match="peer: no suitable Python"):
        ensure_venv("peer", ["x==1"], interpreter=None, cache_dir=tmp_path)
    with pytest.raises(PeerUnavailable, match="peer: no suitable Python"):
        ensure_venv("peer", ["x==1"], interpreter=tmp_path / "nope", cache_dir=tmp_path)
    # a complete virtualenv for the same interpreter and requirements is reused as it is
    home = tmp_path / "done"
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "python").touch()
    (home / "cryptolab-bench-venv.txt").write_text(f"{Path(sys.executable).resolve()}\nx==1\n")
    assert ensure_venv("done", ["x==1"], interpreter=Path(sys.executable), cache_dir=tmp_path) == home / "bin" / "python"
    # an install that fails says so, and leaves no marker: the next run tries again
    with pytest.raises(PeerUnavailable, match="broken: -m pip install failed"):
        ensure_venv("broken", [str(tmp_path / "no-such-project")], interpreter=Path(sys.executable), cache_dir=tmp_path)
    assert not (tmp_path / "broken" / "cryptolab-bench-venv.txt").exists()


def test_nautilus_convention_moves_only_the_tick_that_closes_a_bar():
    """(start, end] windows with ties on a boundary split: the first tick stamped 60 s closes
    the first minute, the second one opens the next."""
    import numpy as np

    from benchmarks.peers.nautilus import Stream, closing_side_ts, compare_bars, decimals, feed

    ts = np.array([30_000, 60_000, 60_000, 90_000], dtype=np.int64)
    stream = Stream("t", np.zeros(4, dtype=np.int64), ["BTC-USD"], ts, np.array([1.0, 2.0, 3.0, 4.0]),
                    np.array([1.0, 1.0, 1.0, 1.0]))
    moved = feed(stream, "1m", 2, ts=closing_side_ts(stream.codes, ts, 60_000))
    assert [(c.window_end, c.open, c.close, c.trades) for c in moved] == [(60_000, 1.0, 2.0, 2), (120_000, 3.0, 4.0, 2)]
    bars = [["BTC-USD", 1, 60_000, 1.0, 2.0, 1.0, 2.0, 2.0]]
    assert compare_bars(moved, bars)["match"]
    own = feed(stream, "1m", 2)  # cryptolab's own [start, end): the boundary ticks open the next minute
    assert compare_bars(own, bars)["differing"] == 1
    assert decimals(np.array([0.1, 0.25])) == 2


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
    from benchmarks.peers.venv import PeerUnavailable

    monkeypatch.setattr(peer, "find_python", lambda versions: None)
    with pytest.raises(PeerUnavailable, match=r"flink: no suitable Python interpreter found"):
        peer.flink_python()
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
