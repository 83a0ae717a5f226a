"""What a backfill did: :class:`BackfillReport`, per series :class:`SeriesReport`.

Examples
--------
>>> r = BackfillReport(exchange="binance", kind="ohlcv", symbols=("BINANCE:BTC-USDT",),
...                    intervals=("1m",), since_ms=1_700_000_040_000, until_ms=1_700_000_160_000,
...                    store_url="sqlite://")
>>> s = r.series_for("BINANCE:BTC-USDT", "1m", 60_000)
>>> s.add(1_700_000_040_000, gap=False); s.add(1_700_000_100_000, gap=True)
>>> r.candles, r.gaps, s.complete(r.until_ms), s.holes
(2, 1, True, 0)
>>> print(r.summary())  # doctest: +NORMALIZE_WHITESPACE
exchange     binance (ohlcv), 0 pages, 0 requests, 0 retries
span         2023-11-14T22:14:00Z .. 2023-11-14T22:16:00Z
candles      2 stored (1 flat gap candles)
series       BINANCE:BTC-USDT 1m: 2 candles 2023-11-14T22:14:00Z .. 2023-11-14T22:15:00Z
store        sqlite://
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptolab.models.time import iso_utc

__all__ = ["BackfillReport", "SeriesReport"]


@dataclass
class SeriesReport:
    """The candles stored for one ``(symbol, interval)``: how many, gaps, first and last window."""

    symbol: str
    interval: str
    interval_ms: int
    candles: int = 0
    gaps: int = 0
    first_ms: int | None = None
    last_ms: int | None = None

    def add(self, window_start: int, *, gap: bool) -> None:
        """Count one stored candle."""
        self.candles += 1
        self.gaps += int(gap)
        if self.first_ms is None or window_start < self.first_ms:
            self.first_ms = window_start
        if self.last_ms is None or window_start > self.last_ms:
            self.last_ms = window_start

    @property
    def holes(self) -> int:
        """Windows between the first and the last stored that were not stored."""
        if self.first_ms is None or self.last_ms is None:
            return 0
        return (self.last_ms - self.first_ms) // self.interval_ms + 1 - self.candles

    def complete(self, until_ms: int) -> bool:
        """Whether the series reaches ``until_ms`` (its last window ends there)."""
        return self.last_ms is not None and self.last_ms + self.interval_ms >= until_ms

    def describe(self, kind: str = "ohlcv") -> str:
        """One line: ``SYMBOL INTERVAL: N candles FIRST .. LAST`` and the windows in between
        without a candle (not served by the exchange, or without trades)."""
        if self.first_ms is None or self.last_ms is None:
            return f"{self.symbol} {self.interval}: no candles"
        why = "without trades" if kind == "trades" else "not served"
        extra = f", {self.holes} windows {why}" if self.holes else ""
        return (f"{self.symbol} {self.interval}: {self.candles} candles "
                f"{iso_utc(self.first_ms)} .. {iso_utc(self.last_ms)}{extra}")


@dataclass
class BackfillReport:
    """The result of :func:`cryptolab.market.backfill.backfill`.

    ``since_ms`` / ``until_ms`` are the span after alignment to window starts; ``pages`` the
    pages that brought data, ``requests`` every data request made (retries included),
    ``retries`` the rate-limit and network retries and ``waited_s`` the time spent waiting
    for them; ``trades`` the trades folded (``kind="trades"``); ``rejected`` exchange rows
    that were not valid (never stored).
    """

    exchange: str
    kind: str
    symbols: tuple[str, ...]
    intervals: tuple[str, ...]
    since_ms: int
    until_ms: int
    store_url: str
    pages: int = 0
    requests: int = 0
    retries: int = 0
    waited_s: float = 0.0
    trades: int = 0
    rejected: int = 0
    elapsed_s: float = 0.0
    series: dict[tuple[str, str], SeriesReport] = field(default_factory=dict)

    def series_for(self, symbol: str, interval: str, interval_ms: int) -> SeriesReport:
        """The series' report (created empty on first use)."""
        key = (symbol, interval)
        if key not in self.series:
            self.series[key] = SeriesReport(symbol, interval, interval_ms)
        return self.series[key]

    @property
    def candles(self) -> int:
        """Candles stored, all series."""
        return sum(s.candles for s in self.series.values())

    @property
    def gaps(self) -> int:
        """Flat gap candles among them."""
        return sum(s.gaps for s in self.series.values())

    def summary(self) -> str:
        """A few aligned lines for the command line."""
        lines = [
            f"exchange     {self.exchange} ({self.kind}), {self.pages} pages, {self.requests} requests, "
            f"{self.retries} retries" + (f" ({self.waited_s:.1f} s waited)" if self.waited_s else ""),
            f"span         {iso_utc(self.since_ms)} .. {iso_utc(self.until_ms)}",
        ]
        if self.kind == "trades":
            lines.append(f"trades       {self.trades}")
        lines.append(f"candles      {self.candles} stored ({self.gaps} flat gap candles)"
                     + (f", {self.rejected} invalid rows skipped" if self.rejected else ""))
        for i, s in enumerate(self.series.values()):
            lines.append(("series       " if i == 0 else "             ") + s.describe(self.kind))
        lines.append(f"store        {self.store_url}")
        return "\n".join(lines)
