"""``cryptolab serve`` as a real process on the real PostgreSQL and Redis, driven with httpx and a
websockets client: REST answers equal the store, live WebSocket fan-out (200 clients, one cache
subscription per process), slow clients dropped, since-replay, auth, rate limits, hostile input and
the store going away."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
import websockets
from api_harness import (
    T0,
    alert,
    candle,
    health,
    redis_subscribers_of,
    serve,
    unique_symbol,
    wait_until,
)
from websockets.asyncio.client import connect

from cryptolab.cache import RedisCache
from cryptolab.models import Candle, encode_alert, encode_candle
from cryptolab.store import Store

pytest.importorskip("fastapi", reason="the API needs the api extra")


def as_json(c: Candle) -> dict[str, Any]:
    return dict(orjson.loads(encode_candle(c)))


def seed(pg_url: str, symbols: list[str]) -> Store:
    store = Store(pg_url)
    store.init()
    candles = [candle(s, i, final=i < 9) for s in symbols for i in range(10)]
    candles += [candle(symbols[0], i, interval="5m") for i in range(4)]
    alerts = [alert(s, i, d) for s in symbols for i in (2, 5) for d in ("rule", "zscore")]
    store.commit_batch(group="g", topic="t", candles=candles, alerts=alerts)
    return store


def test_rest_answers_equal_the_store(pg_url: str, redis_url: str, tmp_path: Path) -> None:
    symbols = ["BINANCE:BTC-USDT", unique_symbol()]
    store = seed(pg_url, symbols)
    with serve(tmp_path, "--store", pg_url, "--redis", redis_url) as server:
        got = server.get("/api/v1/symbols").json()["series"]
        want = [{"symbol": s["symbol"], "interval": s["interval"], "count": s["candles"]}
                for s in store.info()["series"]]
        assert [{k: g[k] for k in ("symbol", "interval", "count")} for g in got] == want
        btc = next(g for g in got if g["symbol"] == "BINANCE:BTC-USDT" and g["interval"] == "1m")
        assert (btc["first"], btc["last"]) == (T0, T0 + 9 * 60_000)

        for sym in symbols:
            for path_sym in {sym, quote(sym, safe="")}:  # ':' raw and as %3A
                body = server.get(f"/api/v1/candles/{path_sym}/1m").json()
                assert body["symbol"] == sym and body["interval"] == "1m"
                assert body["candles"] == [as_json(c) for c in store.candles(sym, "1m")]
                assert body["count"] == 10
        sym = symbols[1]
        stored = store.candles(sym, "1m")
        body = server.get(f"/api/v1/candles/{sym}/60s", params={
            "start": "2023-11-14T22:16:00Z", "end": str(T0 + 8 * 60_000), "limit": "3"}).json()
        assert body["interval"] == "1m"
        assert body["candles"] == [as_json(c) for c in stored[5:8]]
        finals = server.get(f"/api/v1/candles/{sym}/1m", params={"final_only": "true"}).json()
        assert finals["candles"] == [as_json(c) for c in stored if c.final]
        five = server.get(f"/api/v1/candles/{quote(symbols[0])}/5m").json()["candles"]
        assert five == [as_json(c) for c in store.candles(symbols[0], "5m")]

        # latest: the store's newest while the cache has none, then the cache's
        assert server.get(f"/api/v1/latest/{sym}/1m").json() == as_json(stored[-1])
        live = candle(sym, 10, final=False, price=200.0)
        RedisCache(redis_url).publish([live])
        assert server.get(f"/api/v1/latest/{sym}/1m").json() == as_json(live)
        missing = server.get(f"/api/v1/latest/{unique_symbol()}/1m")
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"

        alerts = server.get("/api/v1/alerts").json()
        assert alerts["alerts"] == [orjson.loads(encode_alert(a)) for a in store.alert_list()]
        assert alerts["count"] == 8
        filtered = server.get("/api/v1/alerts", params={
            "symbol": sym, "detector": "zscore", "interval": "1m", "start": str(T0 + 3 * 60_000)}).json()
        want_alerts = store.alert_list(sym, "1m", T0 + 3 * 60_000, detector="zscore")
        assert filtered["alerts"] == [orjson.loads(encode_alert(a)) for a in want_alerts]
        assert len(want_alerts) == 1
        assert server.get("/api/v1/alerts", params={"limit": "3"}).json()["alerts"] == [
            orjson.loads(encode_alert(a)) for a in store.alert_list(limit=3)]
    store.close()


async def _receive(ws: Any, n: int, timeout: float = 120.0) -> list[str]:
    return [await asyncio.wait_for(ws.recv(), timeout) for _ in range(n)]


def _publish(redis_url: str, candles: list[Candle]) -> None:
    cache = RedisCache(redis_url)
    try:
        cache.publish(candles)
    finally:
        cache.close()


def test_200_websocket_clients_get_every_update_through_one_cache_subscription(
        pg_url: str, redis_url: str, tmp_path: Path) -> None:
    sym = unique_symbol()
    updates = [candle(sym, i // 3, final=i % 3 == 2) for i in range(30)]  # open, open, final...
    updates = [dataclasses.replace(c, close=c.close + k) for k, c in enumerate(updates)]
    other = unique_symbol()  # a series nobody follows

    with serve(tmp_path, "--store", pg_url, "--redis", redis_url) as server:
        wait_until(lambda: health(server)["stream"]["subscribed"], 60, "the hub to subscribe")
        assert len(redis_subscribers_of(server.proc.pid, redis_url)) == 1

        async def run() -> list[list[str]]:
            url = f"{server.ws}/ws/candles?symbols={sym},ETH-USD&interval=1m"
            clients = [await connect(url, open_timeout=60) for _ in range(200)]
            try:
                await asyncio.to_thread(wait_until, lambda: health(server)["stream"]["clients"] == 200,
                                        60, "200 clients")
                subs = await asyncio.to_thread(redis_subscribers_of, server.proc.pid, redis_url)
                assert len(subs) == 1, subs  # one subscription, whatever the client count
                assert int(subs[0]["psub"]) == 2  # its two patterns: candles and alerts
                await asyncio.to_thread(_publish, redis_url, [candle(other, 0), *updates])
                return list(await asyncio.gather(*(_receive(ws, len(updates)) for ws in clients)))
            finally:
                await asyncio.gather(*(ws.close() for ws in clients))

        received = asyncio.run(run())
        want = [encode_candle(c).decode() for c in updates]
        assert all(r == want for r in received)
        assert len(received) == 200
        wait_until(lambda: health(server)["stream"]["clients"] == 0, 60, "the clients to go")
        assert len(redis_subscribers_of(server.proc.pid, redis_url)) == 1
        assert health(server)["stream"]["dropped_slow"] == 0


def test_latest_follows_every_update_the_process_received_and_never_goes_back(
        pg_url: str, redis_url: str, tmp_path: Path) -> None:
    """/latest answers from the process's mirror of its subscription: once a WebSocket client of
    the same process has an update, /latest shows it (the hub keeps the newest before it queues
    an update); an older window or revision published after it never shows; the answer equals
    what Redis holds as the series' latest."""
    sym = unique_symbol()
    newest = candle(sym, 5, final=False)
    steps = [candle(sym, 3), candle(sym, 4, final=False), candle(sym, 4, revision=1), newest,
             dataclasses.replace(newest, close=newest.close + 1, revision=1)]
    stale = [candle(sym, 2, revision=7), dataclasses.replace(newest, revision=0, close=1.0)]

    with serve(tmp_path, "--store", pg_url, "--redis", redis_url) as server:
        wait_until(lambda: health(server)["stream"]["subscribed"], 60, "the hub to subscribe")

        async def run() -> list[tuple[dict[str, Any], dict[str, Any]]]:
            seen = []
            async with connect(f"{server.ws}/ws/candles?symbols={sym}&interval=1m", open_timeout=60) as ws:
                await asyncio.to_thread(wait_until, lambda: health(server)["stream"]["clients"] == 1, 60,
                                        "the client")
                for c in [*steps, *stale]:
                    await asyncio.to_thread(_publish, redis_url, [c])
                    got = orjson.loads(await asyncio.wait_for(ws.recv(), 60))
                    answer = await asyncio.to_thread(server.get, f"/api/v1/latest/{sym}/1m")
                    seen.append((got, answer.json()))
            return seen

        seen = asyncio.run(run())
        want = [as_json(c) for c in steps]
        assert [got for got, _ in seen] == want + [as_json(c) for c in stale]  # every update pushed
        assert [answer for _, answer in seen] == want + [want[-1]] * len(stale)
        cached = RedisCache(redis_url)
        try:
            assert cached.latest(sym, "1m") == steps[-1]
        finally:
            cached.close()


def test_a_slow_client_is_dropped_with_a_close_code_and_the_others_keep_up(
        pg_url: str, redis_url: str, tmp_path: Path) -> None:
    sym = unique_symbol()
    batch = 100
    with serve(tmp_path, "--store", pg_url, "--redis", redis_url, "--ws-queue", "256") as server:
        wait_until(lambda: health(server)["stream"]["subscribed"], 60, "the hub to subscribe")

        async def run() -> tuple[int, int, int | None]:
            url = f"{server.ws}/ws/candles?symbols={sym}"
            fast = await connect(url, open_timeout=60)
            # reads nothing: its socket fills, then its queue on the server
            slow = await connect(url, open_timeout=60, max_queue=1)
            await asyncio.to_thread(wait_until, lambda: health(server)["stream"]["clients"] == 2,
                                    60, "2 clients")
            sent = 0
            for b in range(1000):  # up to 100,000 updates; the slow one goes long before
                chunk = [candle(sym, sent + i, final=False) for i in range(batch)]
                await asyncio.to_thread(_publish, redis_url, chunk)
                got = await _receive(fast, batch)
                assert got == [encode_candle(c).decode() for c in chunk], b
                sent += batch
                if (await asyncio.to_thread(health, server))["stream"]["dropped_slow"]:
                    break
            code = None
            try:
                while True:  # what was buffered, then the close frame
                    await asyncio.wait_for(slow.recv(), 120)
            except websockets.ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else None
            # the fast client is still served
            tail = [candle(sym, sent + i, final=True) for i in range(3)]
            await asyncio.to_thread(_publish, redis_url, tail)
            assert await _receive(fast, 3) == [encode_candle(c).decode() for c in tail]
            await fast.close()
            return sent, (await asyncio.to_thread(health, server))["stream"]["dropped_slow"], code

        sent, dropped, code = asyncio.run(run())
        assert dropped == 1
        assert code == 1008
        assert sent < 100_000


def test_since_replays_the_missed_candles_from_the_store_then_goes_live(
        pg_url: str, redis_url: str, tmp_path: Path) -> None:
    sym = unique_symbol()
    store = seed(pg_url, [sym])
    with serve(tmp_path, "--store", pg_url, "--redis", redis_url) as server:
        wait_until(lambda: health(server)["stream"]["subscribed"], 60, "the hub to subscribe")

        async def run() -> tuple[list[str], list[str], list[str]]:
            since = T0 + 6 * 60_000
            async with connect(f"{server.ws}/ws/candles?symbols={sym}&interval=1m&since={since}",
                               open_timeout=60) as ws:
                replayed = await _receive(ws, 4)
                live = candle(sym, 10, final=False)
                await asyncio.to_thread(_publish, redis_url, [live])
                got = await _receive(ws, 1)
            async with connect(f"{server.ws}/ws/alerts?since=2023-11-14T22:19:00Z",
                               open_timeout=60) as ws:
                alerts = await _receive(ws, 2)
            return replayed, got, alerts

        replayed, got, alerts = asyncio.run(run())
        assert replayed == [encode_candle(c).decode() for c in store.candles(sym, "1m")[6:]]
        assert got == [encode_candle(candle(sym, 10, final=False)).decode()]
        assert alerts == [encode_alert(a).decode() for a in store.alert_list(start=T0 + 5 * 60_000)]
    store.close()


def test_a_token_guards_every_route_but_health(pg_url: str, redis_url: str, tmp_path: Path) -> None:
    token = "t0k3n-" + unique_symbol()
    (tmp_path / "token").write_text(token + "\n")
    with serve(tmp_path, "--store", pg_url, "--redis", redis_url,
               "--token-file", str(tmp_path / "token")) as server:
        assert server.get("/health").status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {token}"},
                        {"Authorization": f"Bearer {token}x"}):
            for path in ("/api/v1/symbols", "/api/v1/alerts", "/openapi.json", "/api/v1/nope"):
                r = server.get(path, headers=headers)
                assert r.status_code == 401, (path, headers)
                assert r.json()["error"] == "unauthorized"
                assert r.headers["www-authenticate"] == "Bearer"
        ok = {"Authorization": f"Bearer {token}"}
        assert server.get("/api/v1/symbols", headers=ok).status_code == 200
        schema = server.get("/openapi.json", headers=ok).json()
        assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
        assert schema["paths"]["/health"]["get"]["security"] == []

        async def run() -> tuple[int, str, str]:
            url = f"{server.ws}/ws/alerts"
            with pytest.raises(websockets.InvalidStatus) as refused:
                await connect(url, open_timeout=60)
            async with connect(url, additional_headers=ok, open_timeout=60) as ws:
                await ws.ping()
                by_header = "open"
            async with connect(f"{url}?token={token}", open_timeout=60) as ws:
                await ws.ping()
                by_query = "open"
            return refused.value.response.status_code, by_header, by_query

        assert asyncio.run(run()) == (401, "open", "open")


def test_requests_over_the_rate_are_refused_with_retry_after(
        pg_url: str, redis_url: str, tmp_path: Path) -> None:
    # one token per 100 s: no refill happens within the test, however slow the machine
    with serve(tmp_path, "--store", pg_url, "--redis", redis_url,
               "--rate-limit", "0.01", "--burst", "3") as server:
        codes = [server.get("/api/v1/symbols").status_code for _ in range(3)]
        refused = server.get("/api/v1/alerts")
        assert codes == [200, 200, 200]
        assert refused.status_code == 429
        assert refused.json()["error"] == "rate_limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 100
        assert [server.get("/health").status_code for _ in range(10)] == [200] * 10  # not limited


HOSTILE = [
    # (path, status, field named)
    ("/api/v1/candles/BTC';DROP TABLE candles;--/1m", 422, "symbol"),
    ("/api/v1/candles/" + quote("BTC';DROP TABLE candles;--", safe="") + "/1m", 422, "symbol"),
    ("/api/v1/latest/BTC-USD';DELETE FROM alerts;--/1m", 422, "symbol"),
    ("/api/v1/alerts?symbol=" + quote("x' OR '1'='1"), 422, "symbol"),
    ("/api/v1/candles/btc-usd/1m", 422, "symbol"),
    ("/api/v1/candles/BTC-USD/7x", 422, "interval"),
    ("/api/v1/candles/BTC-USD/7m", 422, "interval"),
    ("/api/v1/latest/BTC-USD/0s", 422, "interval"),
    ("/api/v1/alerts?interval=forever", 422, "interval"),
    ("/api/v1/candles/BTC-USD/1m?limit=0", 422, "limit"),
    ("/api/v1/candles/BTC-USD/1m?limit=-5", 422, "limit"),
    ("/api/v1/candles/BTC-USD/1m?limit=10001", 422, "limit"),
    ("/api/v1/candles/BTC-USD/1m?limit=" + "9" * 400, 422, "limit"),
    ("/api/v1/alerts?limit=lots", 422, "limit"),
    ("/api/v1/candles/BTC-USD/1m?start=yesterday", 422, "start"),
    ("/api/v1/candles/BTC-USD/1m?end=" + "9" * 40, 422, "end"),
    ("/api/v1/candles/BTC-USD/1m?start=-1", 422, "start"),
    ("/api/v1/candles/BTC-USD/1m?start=2023-13-45T99:00:00Z", 422, "start"),
    ("/api/v1/alerts?start=NaN", 422, "start"),
    ("/api/v1/candles/BTC-USD/1m?final_only=perhaps", 422, "final_only"),
    ("/api/v1/alerts?detector=" + quote("rule'; --"), 422, "detector"),
    ("/api/v1/candles/" + "A" * 5000 + "/1m", 422, "symbol"),
    ("/api/v1/candles/BTC-USD/" + "1" * 5000, 422, "interval"),
    ("/api/v1/latest/" + "%00" * 100 + "/1m", 422, "symbol"),
    ("/api/v1/candles/BTC-USD/1m?lmit=5", 422, "lmit"),
    ("/api/v1/symbols?debug=1", 422, "debug"),
    ("/api/v1/alerts?symbols=BTC-USD", 422, "symbols"),
    ("/health?verbose=1", 422, "verbose"),
    ("/api/v1/" + "x" * 5000, 404, None),
    ("/api/v2/symbols", 404, None),
]


def test_hostile_input_is_a_clear_4xx_and_costs_nothing(
        pg_url: str, redis_url: str, tmp_path: Path) -> None:
    store = seed(pg_url, ["BTC-USD"])
    before = (len(store.candles()), len(store.alert_list()))
    wrong = []
    with serve(tmp_path, "--store", pg_url, "--redis", redis_url, "--rate-limit", "0") as server:
        for path, status, field in HOSTILE:
            r = httpx.get(server.url + path, timeout=30)
            body = r.json()
            if (r.status_code, body.get("field")) != (status, field) or not body.get("message"):
                wrong.append((path[:80], r.status_code, body))
        r = httpx.post(server.url + "/api/v1/symbols", timeout=30)
        assert (r.status_code, r.json()["error"]) == (405, "method_not_allowed")

        async def ws_refusals() -> list[tuple[str, int | None]]:
            out = []
            for query in ("symbols=" + quote("BTC';DROP TABLE candles;--"), "symbols=BTC-USD&interval=7x",
                          "interval=1m", "symbols=BTC-USD&since=soon", "symbols=BTC-USD&x=1"):
                async with connect(f"{server.ws}/ws/candles?{query}", open_timeout=60) as ws:
                    error = orjson.loads(await asyncio.wait_for(ws.recv(), 60))
                    with pytest.raises(websockets.ConnectionClosed) as closed:
                        await asyncio.wait_for(ws.recv(), 60)
                    out.append((error["field"], closed.value.rcvd.code if closed.value.rcvd else None))
            return out

        assert asyncio.run(ws_refusals()) == [
            ("symbols", 1008), ("interval", 1008), ("symbols", 1008), ("since", 1008), ("x", 1008)]
        assert health(server)["status"] == "ok"
        assert "Traceback" not in server.stderr()
    assert wrong == []
    assert (len(store.candles()), len(store.alert_list())) == before
    store.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_health_is_503_while_the_store_is_unreachable(redis_url: str, tmp_path: Path) -> None:
    dead = f"postgresql+psycopg://cryptolab@127.0.0.1:{_closed_port()}/cryptolab?connect_timeout=3"
    with serve(tmp_path, "--store", dead, "--redis", redis_url) as server:
        r = server.get("/health")
        assert r.status_code == 503
        body = r.json()
        assert body["status"] == "down" and body["store"]["ok"] is False
        assert body["store"]["detail"] and body["cache"]["ok"] is True
        for path in ("/api/v1/symbols", "/api/v1/candles/BTC-USD/1m", "/api/v1/alerts",
                     "/api/v1/latest/BTC-USD/1m"):
            r = server.get(path)
            assert r.status_code == 503, path
            assert r.json()["error"] == "unavailable"
        assert server.proc.poll() is None
