"""Quix Streams computing the consumer section's candles, and their comparison with cryptolab's."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from cryptolab.models import parse_interval

__all__ = ["compare_candles", "work_quix"]


def work_quix(p: dict[str, Any]) -> dict[str, Any]:
    """Quix Streams computing the same candles: tumbling windows per interval, final() results."""
    from quixstreams import Application
    from quixstreams.dataframe.windows.aggregations import Earliest, Latest, Max, Min, Sum

    state_dir = tempfile.mkdtemp(prefix="cryptolab-bench-quix-")
    try:
        app = Application(
            broker_address=p["kafka"], consumer_group=p["group"], auto_offset_reset="earliest",
            state_dir=state_dir, loglevel="WARNING", use_changelog_topics=False,
            consumer_extra_config=p["consumer"],
        )
        topic = app.topic(p["topic"], value_deserializer="json")  # windows use the message timestamp
        sdf = app.dataframe(topic)
        n = p["ticks"]
        clock: dict[str, Any] = {"seen": 0, "t0": None, "t1": None, "cpu0": 0.0, "cpu": 0.0}

        def count(_value: Any) -> None:
            if clock["t0"] is None:
                clock["t0"] = time.perf_counter()
                clock["cpu0"] = time.process_time()
            clock["seen"] += 1
            if clock["seen"] >= n:
                clock["t1"] = time.perf_counter()
                clock["cpu"] = time.process_time() - clock["cpu0"]
                app.stop()

        sdf = sdf.update(count)
        rows: list[list[Any]] = []
        for name in p["intervals"].split(","):
            window = sdf.tumbling_window(duration_ms=parse_interval(name), grace_ms=p["grace_ms"])
            agg = window.agg(open=Earliest("price"), high=Max("price"), low=Min("price"),
                             close=Latest("price"), volume=Sum("size")).final()

            def collect(value: Any, key: Any, _ts: int, _headers: Any, name: str = name) -> None:
                sym = key.decode() if isinstance(key, bytes) else str(key)
                rows.append([sym, name, value["start"], value["open"], value["high"], value["low"],
                             value["close"], value["volume"]])

            agg.update(collect, metadata=True)
        app.run(timeout=p["timeout"])
        if p.get("candles_out"):
            Path(p["candles_out"]).write_bytes(orjson.dumps(rows))
        seconds = clock["t1"] - clock["t0"] if clock["t1"] is not None else float("nan")
        return {"ticks": clock["seen"], "seconds": seconds,
                "ticks_per_s": clock["seen"] / seconds if clock["t1"] is not None else None,
                "cpu_seconds": clock["cpu"], "candles_final": len(rows),
                "config": "changelog topics off (its fastest setting), grace = out_of_orderness"}
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)


def compare_candles(ours: list[list[Any]], theirs: list[list[Any]]) -> dict[str, Any]:
    """cryptolab's candles vs Quix's, ``[symbol, interval, window_start, o, h, l, c, volume]``
    rows, bit for bit.

    Quix's last window of each series stays open (nothing after it closes it): cryptolab
    closes it at the end of the topic, so up to one candle per series is cryptolab's only.

    Examples
    --------
    >>> a = [["X", "1m", 0, 1.0, 2.0, 0.5, 1.5, 3.0], ["X", "1m", 60_000, 1.5, 1.5, 1.5, 1.5, 1.0]]
    >>> cmp = compare_candles(a, a[:1])
    >>> cmp["match"], cmp["compared"], cmp["cryptolab_only"]
    (True, 1, 1)
    >>> compare_candles(a, [["X", "1m", 0, 1.0, 2.0, 0.5, 1.5, 3.5]])["mismatched"]
    1
    """
    mine = {(r[0], r[1], r[2]): tuple(r[3:]) for r in ours}
    compared = mismatched = missing = 0
    examples: list[Any] = []
    for r in theirs:
        key = (r[0], r[1], r[2])
        got = mine.get(key)
        if got is None:
            missing += 1
            continue
        compared += 1
        if got != tuple(r[3:]):
            mismatched += 1
            if len(examples) < 3:
                examples.append({"key": list(key), "cryptolab": list(got), "quix": r[3:]})
    series = {(r[0], r[1]) for r in ours}
    return {"compared": compared, "mismatched": mismatched, "missing_in_cryptolab": missing,
            "cryptolab_candles": len(ours), "quix_candles": len(theirs),
            "cryptolab_only": len(ours) - compared, "series": len(series),
            "match": compared > 0 and mismatched == 0 and missing == 0 and len(ours) - compared <= len(series),
            "examples": examples}
