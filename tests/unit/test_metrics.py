"""Prometheus metrics on the embedded defaults: the consumer's collector against a real run, the API
middleware's bounded route labels, the ``--metrics-port`` flag's refusals, and the health panel."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from cryptolab.cache import MemoryCache
from cryptolab.cli import main
from cryptolab.config import Settings
from cryptolab.errors import ConfigError
from cryptolab.metrics import (
    ApiMetrics,
    ConsumerCollector,
    MetricsMiddleware,
    MetricsServer,
    registry,
)
from cryptolab.metrics.consumer import COUNTERS
from cryptolab.pipeline import CandlePipeline
from cryptolab.producer import TickProducer
from cryptolab.sources.synthetic import SyntheticMarket
from cryptolab.status import HealthReport, PartitionHealth, ServiceHealth
from cryptolab.store import Store


def test_a_consumers_scrape_equals_its_counters_after_a_run(tmp_path: Path) -> None:
    s = Settings.from_env({}, topic="metrics-run", data_dir=tmp_path, intervals="1m", idle_timeout="0s")
    with TickProducer(s) as producer:
        producer.send_many(SyntheticMarket(symbols=3, seed=3, start_ms=1_700_000_000_000,
                                           duration_ms=600_000).iter_ticks())
        producer.reject(b"\x00not a tick", "planted")  # a dead letter of the producer, not the consumer
    store = Store(f"sqlite:///{tmp_path / 'm.db'}")
    store.init()
    pipe = CandlePipeline(s, store=store, cache=MemoryCache(), scorer=None, batch_size=50)
    reg = registry(ConsumerCollector(pipe))
    before = reg.get_sample_value("cryptolab_consumer_ticks_consumed_total")
    stats = pipe.run(stop_at_end=True)
    assert before == 0 and stats.ticks > 0 and stats.commits > 1
    families = {f.name: f for f in text_string_to_metric_families(generate_latest(reg).decode())}
    for attr, (name, _doc) in COUNTERS.items():
        assert families[name].type == "counter"
        assert reg.get_sample_value(name + "_total") == getattr(stats, attr), name
    assert reg.get_sample_value("cryptolab_consumer_candles_final_total") == len(store.candles())
    assert reg.get_sample_value("cryptolab_consumer_commit_latency_seconds_count") == stats.commits
    buckets = [s.value for s in families["cryptolab_consumer_commit_latency_seconds"].samples
               if s.name.endswith("_bucket")]
    assert buckets == sorted(buckets) and buckets[-1] == stats.commits  # cumulative
    assert reg.get_sample_value("cryptolab_consumer_last_commit_timestamp_seconds") is not None
    assert "process_cpu_seconds_total" in families or "python_gc_objects_collected" in families
    store.close()


def test_two_pipelines_in_one_process_keep_their_numbers_apart() -> None:
    a = CandlePipeline(store=Store("sqlite://"), cache=MemoryCache(), scorer=None)
    b = CandlePipeline(store=Store("sqlite://"), cache=MemoryCache(), scorer=None)
    a.stats.ticks, b.stats.ticks = 5, 7
    ra, rb = registry(ConsumerCollector(a), process=False), registry(ConsumerCollector(b), process=False)
    assert ra.get_sample_value("cryptolab_consumer_ticks_consumed_total") == 5
    assert rb.get_sample_value("cryptolab_consumer_ticks_consumed_total") == 7


def test_api_requests_are_labelled_by_route_template_never_by_raw_path() -> None:
    pytest.importorskip("starlette")
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    def item(request: object) -> PlainTextResponse:
        return PlainTextResponse("ok")

    def boom(request: object) -> PlainTextResponse:
        raise RuntimeError("planted")

    class Hub:
        clients, dropped_slow = 3, 2

    reg = registry(process=False)
    app = Starlette(routes=[Route("/items/{name}", item), Route("/boom", boom)])
    app.add_middleware(MetricsMiddleware, metrics=ApiMetrics(reg, hub=lambda: Hub()))  # type: ignore[arg-type]
    with TestClient(app, raise_server_exceptions=False) as http:
        for name in ("a", "b", "x" * 5_000):
            assert http.get(f"/items/{name}").status_code == 200
        for path in ("/nope", "/nope/" + "y" * 5_000, "/%27;DROP%20TABLE"):
            assert http.get(path).status_code == 404
        assert http.get("/boom").status_code == 500

    def requests(route: str, status: str) -> float | None:
        return reg.get_sample_value("cryptolab_api_requests_total",
                                    {"route": route, "method": "GET", "status": status})

    assert requests("/items/{name}", "200") == 3
    assert requests("<unmatched>", "404") == 3
    assert requests("/boom", "500") == 1
    routes = {s.labels["route"] for f in text_string_to_metric_families(generate_latest(reg).decode())
              for s in f.samples if "route" in s.labels}
    assert routes == {"/items/{name}", "<unmatched>", "/boom"}  # bounded by the routes
    assert reg.get_sample_value("cryptolab_api_request_duration_seconds_count",
                                {"route": "/items/{name}", "method": "GET"}) == 3
    assert reg.get_sample_value("cryptolab_api_websocket_clients") == 3
    assert reg.get_sample_value("cryptolab_api_websocket_dropped_slow_clients_total") == 2


def test_the_metrics_server_serves_and_refuses_a_taken_port() -> None:
    with MetricsServer(registry(process=False), 0) as server:
        assert httpx.get(server.url, timeout=10).status_code == 200
        with pytest.raises(ConfigError, match=f"cannot serve metrics on 127.0.0.1:{server.port}"):
            MetricsServer(registry(process=False), server.port)


@pytest.mark.parametrize("port", ["70000", "-1"])
def test_metrics_port_out_of_range_is_one_line_and_exit_2(
        port: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["consume", "--kafka", "127.0.0.1:1", "--store", f"sqlite:///{tmp_path / 'x.db'}",
            "--metrics-port", port, "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == f"cryptolab consume: error: --metrics-port must be between 0 and 65535, not {port}\n"


def test_metrics_port_in_use_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = ["consume", "--kafka", "127.0.0.1:1", "--store", f"sqlite:///{tmp_path / 'x.db'}",
                "--metrics-port", str(port), "--quiet"]
        assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"cryptolab consume: error: cannot serve metrics on 127.0.0.1:{port}: ")
    assert err.count("\n") == 1


def test_metrics_without_prometheus_client_names_the_extra(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name in [m for m in sys.modules if m.startswith("cryptolab.metrics")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    argv = ["consume", "--kafka", "127.0.0.1:1", "--store", f"sqlite:///{tmp_path / 'x.db'}",
            "--metrics-port", "0", "--quiet"]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        'cryptolab consume needs the "metrics" extra: pip install \'cryptolab[metrics]\'\n')


def test_the_health_panel_escapes_what_services_say() -> None:
    report = HealthReport(
        group="g<1>", topic="ticks", checked_ms=1_700_000_000_000,
        services=[ServiceHealth("kafka", True, "b:9092"),
                  ServiceHealth("store", False, "postgresql://db/x", "<script>alert(1)</script>"),
                  ServiceHealth("cache", True, "in-process")],
        partitions=[PartitionHealth(0, end=4, committed=None, lag=4)], dead_letters=None)
    html = report._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html and "g&lt;1&gt;" in html
    assert "DOWN: store" in html and "<td>4</td>" in html
    assert report.to_dict()["down"] == ["store"] and report.to_dict()["lag"] == 4
    assert "dead letters   unknown" in report.text()


def test_a_live_sessions_health_asks_its_own_embedded_kafka(tmp_path: Path) -> None:
    from cryptolab.market.session import live

    session = live("synthetic", backfill="5m", settings=Settings.from_env({}, data_dir=tmp_path))
    try:
        report = session.health()
    finally:
        session.stop()
        session.close()
    assert report.ok, report.text()
    kafka = report.services[0]
    assert kafka.name == "kafka" and kafka.where.startswith("embedded 127.0.0.1:")
    assert report.partitions and report.lag is not None  # the session's topic, asked of the mock cluster
    assert "<table" in report._repr_html_()
