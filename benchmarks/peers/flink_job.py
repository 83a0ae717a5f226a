"""The Flink SQL job of the ``flink`` section: 1m/5m/15m OHLCV per symbol from a Kafka topic.

Runs under the Flink peer's own virtualenv (PyFlink, see :mod:`benchmarks.peers.flink`), so it
imports only the standard library and ``pyflink``, never ``cryptolab``::

    .cache/bench/flink/bin/python benchmarks/peers/flink_job.py PARAMS_JSON

Parameters: ``kafka``, ``topic``, ``jar`` (the Kafka SQL connector), ``intervals``
(``"1m,5m,15m"``), ``out_of_orderness_ms``, ``parallelism``, ``repeat`` (jobs run one after
the other in the same JVM, each reading the whole topic; then one more reads none of it, its
time the job's fixed cost), ``group`` (a prefix of the consumer
group ids) and ``candles_out`` (where the last run's candles go, as JSON). Prints one JSON
line: the JVM's start-up time and, per run, its clocks (see :func:`run_job`).

The source is bounded (``'scan.bounded.mode' = 'latest-offset'``: the end offsets are read
when the job starts), event time is the tick's ``ts`` with the watermark ``out_of_orderness``
behind the largest seen, and each interval is a tumbling window TVF; the three share the one
source (the planner reuses it). ``FIRST_VALUE``/``LAST_VALUE`` follow arrival order: the job
also returns the event times of the first and last ticks to arrive, so a comparison can tell
where that order differs from event time.
"""

from __future__ import annotations

import calendar
import json
import re
import sys
import time
from typing import Any

_UNITS = {"s": "SECOND", "m": "MINUTE", "h": "HOUR", "d": "DAY"}


def interval_sql(name: str) -> str:
    """A candle interval (``"5m"``) as a SQL interval literal (``ValueError`` for anything else).

    Examples
    --------
    >>> interval_sql("5m"), interval_sql("1h")
    ("INTERVAL '5' MINUTE", "INTERVAL '1' HOUR")
    >>> interval_sql("1m'; DROP")
    Traceback (most recent call last):
    ...
    ValueError: not a candle interval: "1m'; DROP"
    """
    if re.fullmatch(r"[1-9][0-9]{0,3}[smhd]", name) is None:
        raise ValueError(f"not a candle interval: {name!r}")
    return f"INTERVAL '{int(name[:-1])}' {_UNITS[name[-1]]}"


def quoted(text: str) -> str:
    """``text`` as a SQL string literal.

    Examples
    --------
    >>> quoted("it's")
    "'it''s'"
    """
    return "'" + text.replace("'", "''") + "'"


def source_ddl(p: dict[str, Any], group: str, *, empty: bool = False) -> str:
    """The bounded Kafka source table ``ticks`` (the tick wire format's JSON fields used);
    ``empty``: from the end offsets to the end offsets (no record: the job's fixed cost)."""
    start = "latest-offset" if empty else "earliest-offset"
    ooo = p["out_of_orderness_ms"] / 1000
    return f"""
        CREATE TEMPORARY TABLE ticks (
            symbol STRING, ts BIGINT, price DOUBLE, size DOUBLE,
            rt AS TO_TIMESTAMP_LTZ(ts, 3),
            WATERMARK FOR rt AS rt - INTERVAL '{ooo:.3f}' SECOND
        ) WITH (
            'connector' = 'kafka', 'topic' = {quoted(p["topic"])},
            'properties.bootstrap.servers' = {quoted(p["kafka"])}, 'properties.group.id' = {quoted(group)},
            'scan.startup.mode' = '{start}', 'scan.bounded.mode' = 'latest-offset',
            'format' = 'json', 'json.ignore-parse-errors' = 'false'
        )"""


def candles_sql(intervals: list[str]) -> str:
    """One query: a tumbling-window aggregate per interval, their rows in one stream."""
    parts = [  # (each name passed interval_sql's check first)
        f"""SELECT symbol, {quoted(name)} AS iv, window_start, FIRST_VALUE(price) AS o, MAX(price) AS h,
                   MIN(price) AS l, LAST_VALUE(price) AS c, SUM(size) AS v, COUNT(*) AS n,
                   MIN(ts) AS first_ts, MAX(ts) AS last_ts,
                   FIRST_VALUE(ts) AS first_arrival_ts, LAST_VALUE(ts) AS last_arrival_ts
            FROM TABLE(TUMBLE(TABLE ticks, DESCRIPTOR(rt), {interval_sql(name)}))
            GROUP BY symbol, window_start, window_end"""  # noqa: S608 (checked names, quoted)
        for name in intervals
    ]
    return "\nUNION ALL\n".join(parts)


def run_job(env: Any, p: dict[str, Any], i: int, *, empty: bool = False) -> tuple[dict[str, Any], list[list[Any]]]:
    """One job over the whole topic (``empty``: over none of it): its clocks (seconds) and candles.

    ``job_s``: from submitting the query to the last candle received (job start-up included);
    ``first_to_last_s``: from the first candle received to the last (the first 1m window
    closes after about 1/120 of the synthetic topic's event time).
    """
    group = f"{p['group']}-{'empty' if empty else i}"
    env.execute_sql("DROP TEMPORARY TABLE IF EXISTS ticks")
    env.execute_sql(source_ddl(p, group, empty=empty))
    rows: list[list[Any]] = []
    t_submit = time.perf_counter()
    t_first: float | None = None
    result = env.execute_sql(candles_sql(p["intervals"].split(",")))
    with result.collect() as it:
        for r in it:
            if t_first is None:
                t_first = time.perf_counter()
            ws = r[2]
            start_ms = calendar.timegm(ws.timetuple()) * 1000 + ws.microsecond // 1000
            rows.append([r[0], r[1], start_ms, r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12]])
    t_last = time.perf_counter()
    ticks = sum(r[8] for r in rows if r[1] == p["intervals"].split(",")[0])
    run = {"ticks": ticks, "candles": len(rows), "job_s": t_last - t_submit,
           "first_to_last_s": t_last - t_first if t_first is not None else None,
           "submit_to_first_s": t_first - t_submit if t_first is not None else None}
    return run, rows


def main(argv: list[str]) -> int:
    """Start the JVM, run the jobs, print the clocks as one JSON line."""
    p = json.loads(argv[0])
    t0 = time.perf_counter()
    from pyflink.table import EnvironmentSettings, TableEnvironment

    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    conf = env.get_config()
    conf.set("pipeline.jars", "file://" + p["jar"])
    conf.set("parallelism.default", str(p["parallelism"]))
    conf.set("table.local-time-zone", "UTC")
    t_jvm = time.perf_counter() - t0
    runs: list[dict[str, Any]] = []
    rows: list[list[Any]] = []
    for i in range(p["repeat"]):
        run, rows = run_job(env, p, i)
        runs.append(run)
        print(f"flink job {i}: {json.dumps(run)}", file=sys.stderr, flush=True)
    empty, _ = run_job(env, p, 0, empty=True)  # the same job on no record: start-up and shutdown
    if p.get("candles_out"):
        with open(p["candles_out"], "w") as f:
            json.dump(rows, f)
    import pyflink

    sys.stdout.write(json.dumps({"jvm_start_s": t_jvm, "runs": runs, "empty": empty, "parallelism": p["parallelism"],
                                 "pyflink": getattr(pyflink, "__version__", None)}) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
