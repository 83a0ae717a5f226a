"""polars computing ``candles_from_ticks``' candles: a lazy group-by per interval."""

from __future__ import annotations

from typing import Any

from cryptolab.models import parse_interval

__all__ = ["polars_candles"]


def polars_candles(frame: Any, intervals: str) -> Any:
    """The candles of a polars ``frame`` of ticks (``symbol, ts_ms, price, size``) for each of
    ``intervals`` (``"1m,5m"``), as one polars DataFrame; the lazy queries are collected together
    (polars' own thread pool)."""
    import polars as pl

    pl_col = pl.col
    parts = []
    for name in intervals.split(","):
        iv = parse_interval(name)
        parts.append(
            frame.lazy()
            .with_columns(window_start=pl_col("ts_ms") - pl_col("ts_ms") % iv)
            .group_by("symbol", "window_start")
            .agg(
                open=pl_col("price").first(), high=pl_col("price").max(), low=pl_col("price").min(),
                close=pl_col("price").last(), volume=pl_col("size").sum(),
                vwap=(pl_col("price") * pl_col("size")).sum() / pl_col("size").sum(),
                trades=pl.len(), first_ts=pl_col("ts_ms").min(), last_ts=pl_col("ts_ms").max(),
            )
            .with_columns(interval=pl.lit(name))
        )
    return pl.concat(pl.collect_all(parts))
