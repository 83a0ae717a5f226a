"""A seeded synthetic market: geometric Brownian motion with jumps and labelled anomalies.

Prices follow a geometric Brownian motion (annualised ``volatility``, optional
``drift``) with compound-Poisson jumps (``jump_intensity`` jumps per day, each a
normal log-return of standard deviation ``jump_scale``). Trades arrive as one
Poisson process of ``ticks_per_second`` across all symbols, each trade going to
a uniformly chosen symbol, so ticks come out ordered by event time across
symbols. Everything is drawn from one seeded generator: the same arguments give
the same ticks, bit for bit.

Injected anomalies (:class:`Injection`) are ramps of a given relative size: the
log-price moves linearly by ``log(1 + magnitude)`` (spike) or
``log(1 - magnitude)`` (crash) over the first 90% of ``[at_ms, at_ms +
duration_ms)`` and the walk then continues from the new level. A one-minute
candle aligned with a one-minute injection therefore sees
``|close - open| / open`` close to ``magnitude`` (up to the tiny diffusion inside
that minute). :attr:`SyntheticMarket.labels` lists every injection as ground
truth for detector evaluation.

Examples
--------
>>> m = SyntheticMarket(symbols=2, seed=7, duration_ms=60_000, ticks_per_second=10)
>>> ticks = list(m.iter_ticks())
>>> sorted({t.symbol for t in ticks})
['BTC-USD', 'ETH-USD']
>>> all(a.ts_ms <= b.ts_ms for a, b in zip(ticks, ticks[1:]))
True
>>> ticks == list(SyntheticMarket(symbols=2, seed=7, duration_ms=60_000,
...                               ticks_per_second=10).iter_ticks())
True

A labelled crash, seen by a one-minute candle aligned with it:

>>> inj = Injection(symbol="BTC-USD", at_ms=1_700_000_040_000, kind="crash", magnitude=0.10)
>>> m = SyntheticMarket(symbols=["BTC-USD"], seed=1, duration_ms=180_000, injections=[inj])
>>> m.labels
[{'symbol': 'BTC-USD', 'kind': 'crash', 'magnitude': 0.1, 'start_ms': 1700000040000, 'end_ms': 1700000100000}]
>>> window = [t.price for t in m.iter_ticks() if inj.at_ms <= t.ts_ms < inj.at_ms + 60_000]
>>> round(window[-1] / window[0] - 1, 2)
-0.1
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
import orjson

from cryptolab.errors import ValidationError
from cryptolab.models import MAX_TS_MS, MIN_TS_MS, WIRE_VERSION, Tick, validate_symbol

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from cryptolab.sources import RejectHandler, WireBatch

__all__ = ["DEFAULT_SYMBOLS", "Injection", "SyntheticMarket", "labels_path", "synthetic_symbols"]

log = logging.getLogger(__name__)

#: The first symbols of a synthetic market given as a count, with their start prices.
DEFAULT_SYMBOLS: Final[dict[str, float]] = {
    "BTC-USD": 37_000.0,
    "ETH-USD": 2_000.0,
    "SOL-USD": 55.0,
    "ADA-USD": 0.38,
    "XRP-USD": 0.60,
}

_MS_PER_YEAR: Final = 365.0 * 86_400_000.0
_MS_PER_DAY: Final = 86_400_000.0
#: Fraction of an injection window over which the ramp happens.
_RAMP_FRACTION: Final = 0.9
_MINUTE: Final = 60_000


def synthetic_symbols(count: int) -> list[str]:
    """The stable symbol list of a market of ``count`` symbols.

    Examples
    --------
    >>> synthetic_symbols(7)
    ['BTC-USD', 'ETH-USD', 'SOL-USD', 'ADA-USD', 'XRP-USD', 'SYN001-USD', 'SYN002-USD']
    """
    if count < 1:
        raise ValidationError("symbols", f"need at least one symbol, got {count}")
    names = list(DEFAULT_SYMBOLS)[:count]
    names += [f"SYN{i:03d}-USD" for i in range(1, count - len(names) + 1)]
    return names


def labels_path(data_path: str | Path) -> Path:
    """Where the labels of a data file go: ``ticks.jsonl`` -> ``ticks.labels.json``.

    A path that already ends in ``.json`` is taken as the labels file itself.

    Examples
    --------
    >>> labels_path("out/ticks.jsonl").as_posix()
    'out/ticks.labels.json'
    >>> labels_path("out/truth.json").as_posix()
    'out/truth.json'
    """
    p = Path(data_path)
    if p.name.endswith(".json"):
        return p
    stem = p.name.split(".", 1)[0] if "." in p.name[1:] else p.name
    return p.with_name(stem + ".labels.json")


@dataclass(frozen=True, kw_only=True)
class Injection:
    """A labelled price move injected into the synthetic market.

    Parameters
    ----------
    symbol
        Which symbol moves.
    at_ms
        Start of the move (epoch ms).
    kind
        ``"spike"`` (up) or ``"crash"`` (down).
    magnitude
        Relative size, positive: ``0.10`` is +10% for a spike, -10% for a crash.
    duration_ms
        The move happens inside ``[at_ms, at_ms + duration_ms)``.

    Examples
    --------
    >>> Injection(symbol="ETH-USD", at_ms=1_700_000_040_000, kind="spike", magnitude=0.05).end_ms
    1700000100000
    >>> Injection(symbol="ETH-USD", at_ms=1_700_000_040_000, kind="crash", magnitude=1.5)
    Traceback (most recent call last):
    ...
    cryptolab.errors.ValidationError: invalid 'magnitude': a crash must be in (0, 1), got 1.5
    """

    symbol: str
    at_ms: int
    kind: Literal["spike", "crash"]
    magnitude: float
    duration_ms: int = _MINUTE

    def __post_init__(self) -> None:
        validate_symbol(self.symbol)
        if self.kind not in ("spike", "crash"):
            raise ValidationError("kind", f"must be 'spike' or 'crash', got {self.kind!r}")
        m = self.magnitude
        if not isinstance(m, int | float) or not math.isfinite(m) or m <= 0:
            raise ValidationError("magnitude", f"must be a finite number > 0, got {m!r}")
        if self.kind == "crash" and m >= 1:
            raise ValidationError("magnitude", f"a crash must be in (0, 1), got {m!r}")
        if self.duration_ms <= 0:
            raise ValidationError("duration_ms", f"must be > 0, got {self.duration_ms}")
        if not MIN_TS_MS <= self.at_ms < MAX_TS_MS:
            raise ValidationError("at_ms", f"{self.at_ms} is not an epoch-ms timestamp")

    @property
    def end_ms(self) -> int:
        """End of the move window (exclusive)."""
        return self.at_ms + self.duration_ms

    @property
    def log_move(self) -> float:
        """The total log-price move."""
        return math.log1p(self.magnitude if self.kind == "spike" else -self.magnitude)

    def label(self) -> dict[str, Any]:
        """The ground-truth label of this injection."""
        return {
            "symbol": self.symbol,
            "kind": self.kind,
            "magnitude": self.magnitude,
            "start_ms": self.at_ms,
            "end_ms": self.end_ms,
        }


@dataclass(frozen=True, slots=True)
class _Chunk:
    """One generated block of ticks, as arrays (internal)."""

    sym: np.ndarray  # int indices into symbols
    ts: np.ndarray  # int64 epoch ms
    price: np.ndarray  # float64
    size: np.ndarray  # float64
    trade_no: np.ndarray  # int64, per-symbol trade counter


class SyntheticMarket:
    """A deterministic synthetic market (a :class:`~cryptolab.sources.Source`).

    Parameters
    ----------
    symbols
        A count (``5`` gives BTC-USD, ETH-USD, SOL-USD, ADA-USD, XRP-USD, then
        SYN001-USD...) or a list of symbols.
    seed
        Random seed; the same seed and arguments give the same ticks.
    start_ms
        Event time where the market starts (epoch ms).
    duration_ms
        Event-time length of the market; ``None`` for an endless stream.
    ticks_per_second
        Mean trade rate in event time, in total across all symbols.
    volatility
        Annualised volatility of the diffusion (0.8 = 80%).
    drift
        Annualised drift of the log-price (0 = a martingale price).
    jump_intensity
        Mean number of natural jumps per symbol per day.
    jump_scale
        Standard deviation of one natural jump's log-return.
    injections
        Labelled moves to inject.
    random_injections
        How many more labelled moves to draw (requires a finite ``duration_ms``):
        minute-aligned one-minute windows, chosen deterministically from the
        seed, never in the first 10 minutes, at least 5 minutes apart on the
        same symbol.
    min_magnitude, max_magnitude
        Range of the random injections' magnitudes.
    start_prices
        Start price per symbol (defaults: realistic for the named symbols, a
        seeded price between 1 and 1000 for SYNnnn-USD).
    chunk_size
        Ticks generated per vectorised block.

    Examples
    --------
    >>> m = SyntheticMarket(symbols=3, seed=42, duration_ms=600_000, random_injections=0)
    >>> df = m.to_frame()
    >>> list(df.columns)
    ['symbol', 'ts_ms', 'price', 'size', 'source', 'trade_id']
    >>> bool((df["size"] > 0).all()) and bool(df["ts_ms"].is_monotonic_increasing)
    True
    """

    name: Final = "synthetic"
    #: Ticks are valid by construction (the producer may skip re-validating them).
    validated: Final = True

    def __init__(
        self,
        *,
        symbols: int | Sequence[str] = 5,
        seed: int = 0,
        start_ms: int = 1_700_000_000_000,
        duration_ms: int | None = 7_200_000,
        ticks_per_second: float = 20.0,
        volatility: float = 0.8,
        drift: float = 0.0,
        jump_intensity: float = 2.0,
        jump_scale: float = 0.005,
        injections: Sequence[Injection] = (),
        random_injections: int = 0,
        min_magnitude: float = 0.03,
        max_magnitude: float = 0.15,
        start_prices: Mapping[str, float] | None = None,
        chunk_size: int = 65_536,
    ) -> None:
        if isinstance(symbols, bool | str):
            raise ValidationError("symbols", "give a count or a list of symbols")
        if isinstance(symbols, int):
            names = synthetic_symbols(symbols)
        else:
            names = [validate_symbol(s) for s in symbols]
            if not names:
                raise ValidationError("symbols", "need at least one symbol")
            if len(set(names)) != len(names):
                raise ValidationError("symbols", "symbols must be unique")
        if not MIN_TS_MS <= start_ms < MAX_TS_MS:
            raise ValidationError("start_ms", f"{start_ms} is not an epoch-ms timestamp")
        if duration_ms is not None and duration_ms <= 0:
            raise ValidationError("duration_ms", f"must be > 0 or None, got {duration_ms}")
        _positive("ticks_per_second", ticks_per_second)
        _non_negative("volatility", volatility)
        _non_negative("jump_intensity", jump_intensity)
        _non_negative("jump_scale", jump_scale)
        if not math.isfinite(drift):
            raise ValidationError("drift", f"must be finite, got {drift}")
        if random_injections < 0:
            raise ValidationError("random_injections", f"must be >= 0, got {random_injections}")
        if not 0 < min_magnitude <= max_magnitude < 1:
            raise ValidationError(
                "min_magnitude",
                f"need 0 < min_magnitude <= max_magnitude < 1, got {min_magnitude}, {max_magnitude}",
            )
        if chunk_size < 1:
            raise ValidationError("chunk_size", f"must be >= 1, got {chunk_size}")
        for inj in injections:
            if inj.symbol not in names:
                raise ValidationError("injections", f"{inj.symbol} is not one of the market's symbols")

        self.symbols: list[str] = names
        self.seed = seed
        self.start_ms = start_ms
        self.duration_ms = duration_ms
        self.ticks_per_second = float(ticks_per_second)
        self.volatility = float(volatility)
        self.drift = float(drift)
        self.jump_intensity = float(jump_intensity)
        self.jump_scale = float(jump_scale)
        self.chunk_size = chunk_size
        self.start_prices = self._start_prices(start_prices)
        self.injections: list[Injection] = list(injections) + self._random_injections(
            random_injections, min_magnitude, max_magnitude, list(injections)
        )
        self.injections.sort(key=lambda i: (i.at_ms, i.symbol))
        # Price decimals per symbol: ~7 significant digits, at least 2 decimals.
        self._decimals = [
            int(min(10, max(2, 6 - math.floor(math.log10(self.start_prices[s])))))
            for s in self.symbols
        ]

    # -- public -----------------------------------------------------------------

    @property
    def end_ms(self) -> int | None:
        """Event time where the market ends (exclusive), or ``None`` when endless."""
        return None if self.duration_ms is None else self.start_ms + self.duration_ms

    @property
    def labels(self) -> list[dict[str, Any]]:
        """Ground truth: one dict per injection, ``{symbol, kind, magnitude, start_ms, end_ms}``."""
        return [inj.label() for inj in self.injections]

    def write_labels(self, path: str | Path) -> Path:
        """Write :attr:`labels` as a JSON list next to the data file at ``path``.

        ``ticks.jsonl`` gives ``ticks.labels.json``; a path that already ends in
        ``.json`` is written as is. Returns the path written.
        """
        out = labels_path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(orjson.dumps(self.labels, option=orjson.OPT_INDENT_2))
        log.info("wrote %d labels to %s", len(self.injections), out)
        return out

    def iter_ticks(self, *, on_reject: RejectHandler | None = None) -> Iterator[Tick]:
        """Yield ticks in event-time order (ties keep generation order).

        Every tick has ``source="synthetic"``, a size > 0 and a per-symbol
        increasing ``trade_id``. ``on_reject`` is accepted for the
        :class:`~cryptolab.sources.Source` interface; synthetic ticks are valid
        by construction and never rejected.
        """
        from cryptolab.sources import unchecked_tick

        symbols = self.symbols
        for chunk in self._chunks():
            n = chunk.ts.size
            yield from map(
                unchecked_tick,
                [symbols[s] for s in chunk.sym.tolist()],
                chunk.ts.tolist(),
                chunk.price.tolist(),
                chunk.size.tolist(),
                repeat("synthetic", n),
                map(str, chunk.trade_no.tolist()),
            )

    def __iter__(self) -> Iterator[Tick]:
        return self.iter_ticks()

    def iter_wire(self) -> Iterator[WireBatch]:
        """Yield the same ticks as :meth:`iter_ticks`, pre-encoded, one block at a time.

        Each :class:`~cryptolab.sources.WireBatch` holds Kafka keys (the symbol),
        wire values byte-identical to :func:`~cryptolab.models.encode_tick` and
        event times. Skipping the :class:`~cryptolab.models.Tick` objects makes
        this about three times faster; the producer uses it for
        ``send_many(market)``.

        Examples
        --------
        >>> from cryptolab.models import encode_tick
        >>> m = SyntheticMarket(symbols=2, seed=1, duration_ms=10_000)
        >>> batch = next(m.iter_wire())
        >>> batch.values == [encode_tick(t) for t in m.iter_ticks()]
        True
        """
        from cryptolab.sources import WireBatch

        names = self.symbols
        keys_of = [s.encode() for s in names]
        dumps = orjson.dumps
        version = WIRE_VERSION
        for chunk in self._chunks():
            idx = chunk.sym.tolist()
            ts = chunk.ts.tolist()
            values = [
                dumps({"v": version, "symbol": names[i], "ts": t, "price": p, "size": z,
                       "source": "synthetic", "trade_id": str(n)})
                for i, t, p, z, n in zip(
                    idx, ts, chunk.price.tolist(), chunk.size.tolist(), chunk.trade_no.tolist(),
                    strict=True,
                )
            ]
            yield WireBatch([keys_of[i] for i in idx], values, ts)

    def to_frame(self) -> pd.DataFrame:
        """All ticks as a DataFrame (``symbol, ts_ms, price, size, source, trade_id``).

        Raises
        ------
        ValidationError
            When the market is endless (``duration_ms=None``).
        """
        import pandas as pd

        if self.duration_ms is None:
            raise ValidationError("duration_ms", "an endless market cannot be put in a DataFrame")
        chunks = list(self._chunks())
        if chunks:
            sym = np.concatenate([c.sym for c in chunks])
            ts = np.concatenate([c.ts for c in chunks])
            price = np.concatenate([c.price for c in chunks])
            size = np.concatenate([c.size for c in chunks])
            no = np.concatenate([c.trade_no for c in chunks])
        else:
            sym = np.empty(0, np.int64)
            ts = np.empty(0, np.int64)
            price = np.empty(0)
            size = np.empty(0)
            no = np.empty(0, np.int64)
        trade_ids = np.empty(no.size, dtype=object)
        trade_ids[:] = list(map(str, no.tolist()))
        return pd.DataFrame(
            {
                "symbol": np.array(self.symbols, dtype=object)[sym],
                "ts_ms": ts.astype(np.int64),
                "price": price,
                "size": size,
                "source": np.full(ts.size, "synthetic", dtype=object),
                "trade_id": trade_ids,
            }
        )

    def __repr__(self) -> str:
        return (
            f"SyntheticMarket(symbols={len(self.symbols)}, seed={self.seed}, "
            f"start_ms={self.start_ms}, duration_ms={self.duration_ms}, "
            f"ticks_per_second={self.ticks_per_second}, injections={len(self.injections)})"
        )

    # -- generation -------------------------------------------------------------

    def _start_prices(self, given: Mapping[str, float] | None) -> dict[str, float]:
        rng = np.random.default_rng([self.seed, 1])
        out: dict[str, float] = {}
        for s in self.symbols:
            if given is not None and s in given:
                p = float(given[s])
                _positive(f"start_prices[{s}]", p)
            elif s in DEFAULT_SYMBOLS:
                p = DEFAULT_SYMBOLS[s]
            else:
                p = float(round(10 ** rng.uniform(0.0, 3.0), 2))
            out[s] = p
        return out

    def _random_injections(
        self, count: int, lo: float, hi: float, fixed: list[Injection]
    ) -> list[Injection]:
        if count == 0:
            return []
        if self.duration_ms is None:
            raise ValidationError("random_injections", "needs a finite duration_ms")
        rng = np.random.default_rng([self.seed, 2])
        first = -(-(self.start_ms + 10 * _MINUTE) // _MINUTE) * _MINUTE
        last = (self.start_ms + self.duration_ms) // _MINUTE * _MINUTE - _MINUTE
        minutes = (last - first) // _MINUTE + 1
        if minutes <= 0:
            raise ValidationError("random_injections", "duration too short (need > 11 minutes)")
        taken: dict[str, list[int]] = {}
        for inj in fixed:
            taken.setdefault(inj.symbol, []).append(inj.at_ms)
        out: list[Injection] = []
        attempts = 0
        while len(out) < count:
            attempts += 1
            if attempts > 100 * count + 1000:
                raise ValidationError(
                    "random_injections",
                    f"cannot place {count} injections 5 minutes apart in {self.duration_ms} ms",
                )
            at = first + int(rng.integers(0, minutes)) * _MINUTE
            sym = self.symbols[int(rng.integers(0, len(self.symbols)))]
            kind: Literal["spike", "crash"] = "spike" if rng.random() < 0.5 else "crash"
            mag = float(round(rng.uniform(lo, hi), 4))
            if any(abs(at - t) < 5 * _MINUTE for t in taken.get(sym, [])):
                continue
            taken.setdefault(sym, []).append(at)
            out.append(Injection(symbol=sym, at_ms=at, kind=kind, magnitude=mag))
        return out

    def _chunks(self) -> Iterator[_Chunk]:
        """Generate ticks block by block (vectorised)."""
        rng = np.random.default_rng([self.seed, 0])
        n_sym = len(self.symbols)
        end = self.end_ms
        mean_gap = 1000.0 / self.ticks_per_second
        sigma2 = self.volatility**2
        mu = self.drift - 0.5 * sigma2  # drift of the log price
        log_p = np.log(np.array([self.start_prices[s] for s in self.symbols]))
        last_ts = np.full(n_sym, float(self.start_ms))
        trade_no = np.zeros(n_sym, dtype=np.int64)
        clock = float(self.start_ms)
        decimals = np.array(self._decimals)
        scale = np.power(10.0, decimals)
        min_price = 1.0 / scale
        size_scale = np.array([min(1.0, 1_000.0 / self.start_prices[s]) for s in self.symbols])
        inj_by_sym = [
            (self.symbols.index(i.symbol), i.at_ms, i.duration_ms * _RAMP_FRACTION, i.log_move)
            for i in self.injections
        ]
        n = self.chunk_size
        while True:
            gaps = rng.exponential(mean_gap, n)
            t_float = clock + np.cumsum(gaps)
            clock = float(t_float[-1])
            ts = np.floor(t_float).astype(np.int64)
            sym = rng.integers(0, n_sym, n)
            z = rng.standard_normal(n)
            jz = rng.standard_normal(n)
            u = rng.lognormal(-1.0, 1.0, n)
            if end is not None:
                keep = int(np.searchsorted(ts, end, side="left"))
                ts, sym, z, jz, u, t_float = (
                    ts[:keep], sym[:keep], z[:keep], jz[:keep], u[:keep], t_float[:keep]
                )
            m = ts.size
            if m == 0:
                return
            # Per-symbol increments: group by symbol (stable), diff times within groups.
            order = np.argsort(sym, kind="stable")
            s_sorted = sym[order]
            t_sorted = t_float[order]
            counts = np.bincount(s_sorted, minlength=n_sym)
            starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
            present = counts > 0
            prev = np.empty(m)
            prev[1:] = t_sorted[:-1]
            prev[starts[present]] = last_ts[present]
            dt_years = (t_sorted - prev) / _MS_PER_YEAR
            inc = mu * dt_years + self.volatility * np.sqrt(dt_years) * z[order]
            if self.jump_intensity > 0 and self.jump_scale > 0:
                n_jumps = rng.poisson(self.jump_intensity * (t_sorted - prev) / _MS_PER_DAY)
                inc += self.jump_scale * np.sqrt(n_jumps) * jz[order]
            csum = np.cumsum(inc)
            base = np.repeat(csum[starts] - inc[starts], counts)
            group_lp = np.repeat(log_p, counts) + csum - base
            ends = starts + counts - 1
            log_p[present] = group_lp[ends[present]]
            last_ts[present] = t_sorted[ends[present]]
            numbers = np.arange(m) - np.repeat(starts, counts) + 1 + np.repeat(trade_no, counts)
            trade_no += counts
            lp = np.empty(m)
            lp[order] = group_lp
            no = np.empty(m, dtype=np.int64)
            no[order] = numbers
            # Injected ramps: deterministic log offsets, permanent after the window.
            hi_ts = ts[-1]
            for k, at, ramp, move in inj_by_sym:
                if at > hi_ts:
                    continue
                mask = sym == k
                lp[mask] += move * np.clip((ts[mask] - at) / ramp, 0.0, 1.0)
            price = np.round(np.exp(lp) * scale[sym]) / scale[sym]
            price = np.maximum(price, min_price[sym])
            size = np.maximum(np.round(u * size_scale[sym], 6), 1e-6)
            yield _Chunk(sym=sym, ts=ts, price=price, size=size, trade_no=no)
            if m < n:
                return


def _positive(name: str, value: float) -> None:
    if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ValidationError(name, f"must be a finite number > 0, got {value!r}")


def _non_negative(name: str, value: float) -> None:
    if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValidationError(name, f"must be a finite number >= 0, got {value!r}")
