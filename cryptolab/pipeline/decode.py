"""Decoding: a batch of Kafka records -> each owned partition's valid ticks, as columns.

A record becomes a tick, or a dead letter with the reason and the field at fault. Three
paths give the same answer: a partition's run of consecutive records is decoded and
validated in bulk (one msgspec pass, or orjson and checks over whole columns), and any run
that fails a check goes one by one (a fast per-record check, then the full validator of
:func:`~cryptolab.models.tick_from_dict`, which names the field).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from itertools import chain, repeat
from operator import attrgetter
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
import orjson
from confluent_kafka import KafkaError, Message

from cryptolab.errors import ValidationError
from cryptolab.models.time import interval_name, iso_utc
from cryptolab.models.wire import (
    MAX_PRICE,
    MAX_RECORD_BYTES,
    MAX_SIZE,
    MAX_TEXT,
    MAX_TS_MS,
    MIN_TS_MS,
    SYMBOL_RE,
    TICK_KEYS,
    WIRE_VERSION,
    tick_from_dict,
)
from cryptolab.pipeline.partitions import Owned

if TYPE_CHECKING:  # pragma: no cover
    from cryptolab.store import LateTick

__all__ = ["Columns", "Decoder", "dead_letter_reason"]

#: The package's one logger: its lines keep the name they always had.
log = logging.getLogger("cryptolab.pipeline")

#: The wire's tick keys (:data:`cryptolab.models.wire.TICK_KEYS`), under the name they had here.
_TICK_KEYS = TICK_KEYS


class Columns:
    """One partition's valid ticks of a batch, as columns (and where each came from)."""

    __slots__ = ("codes", "offsets", "price", "records", "size", "ts")

    def __init__(self) -> None:
        self.codes: list[int] = []
        self.ts: list[int] = []
        self.price: list[float] = []
        self.size: list[float | None] = []
        self.offsets: list[int] = []
        self.records: list[dict[str, Any]] = []

    def late_ticks(
        self, topic: str, partition: int, rows: list[int], names: list[str], watermark_ms: int
    ) -> list[LateTick]:
        """The ticks at ``rows`` (too late to fold), as the store keeps them for audit."""
        from cryptolab.store import LateTick

        return [
            LateTick(
                topic=topic, partition=partition, offset=self.offsets[i], symbol=names[self.codes[i]],
                ts_ms=self.ts[i], price=self.price[i], size=self.size[i],
                source=str(_field(d, "source") or ""),
                trade_id=None if _field(d, "trade_id") is None else str(_field(d, "trade_id")),
                watermark_ms=watermark_ms,
            )
            for i in rows
            for d in (self.records[i],)
        ]


def _precise_error(record: Any, exc: Exception) -> Exception:
    """The full validator's error for a record the fast path choked on (it names the field)."""
    try:
        tick_from_dict(record)
    except ValidationError as precise:
        return precise
    return exc


try:  # the consumer's fast path decodes and validates wire records in one C pass
    import msgspec
except ImportError:  # pragma: no cover - msgspec is a dependency; orjson + checks otherwise
    msgspec = None  # type: ignore[assignment]


if msgspec is not None:

    class _WireTick(msgspec.Struct, forbid_unknown_fields=True, gc=False):
        """A wire record that passes the fast path's checks exactly.

        It is accepted only when :func:`~cryptolab.models.tick_from_dict` would accept it
        with the same values (an int price becomes a float in both); more is rejected
        (an int ``trade_id``, a float ``ts``, ``"v": 1.0``): such batches go one by one.
        Its fields are strings and numbers, which cannot form a cycle: the garbage collector
        does not track the tens of thousands a batch decodes (``gc=False``).
        """

        v: Literal[1]  # WIRE_VERSION: a Literal takes no name (tests/unit/test_pipeline_fastpath.py)
        symbol: str
        ts: Annotated[int, msgspec.Meta(ge=MIN_TS_MS, lt=MAX_TS_MS)]
        price: Annotated[float, msgspec.Meta(gt=0.0, lt=MAX_PRICE)]
        size: Annotated[float, msgspec.Meta(ge=0.0, lt=MAX_SIZE)] | None = None
        source: Annotated[str, msgspec.Meta(max_length=MAX_TEXT)] | None = None
        trade_id: Annotated[str, msgspec.Meta(max_length=MAX_TEXT)] | None = None


def _wire_decoder() -> Callable[[bytes], Any] | None:
    """The decoder of :class:`_WireTick` (``None`` without msgspec)."""
    if msgspec is None:  # pragma: no cover
        return None
    decode: Callable[[bytes], Any] = msgspec.json.Decoder(_WireTick).decode
    return decode


_decode_wire = _wire_decoder()
_symbol_of = attrgetter("symbol")
_ts_of = attrgetter("ts")
_price_of = attrgetter("price")
_size_of = attrgetter("size")


def _learn_symbol(symbol: str, codes: dict[str, int], names: list[str]) -> int:
    """The code of a validated symbol, given the next one when it is new (``names[code] == symbol``)."""
    code = codes.get(symbol)
    if code is None:
        code = codes[symbol] = len(names)
        names.append(symbol)
    return code


def _symbol_codes(symbols: Iterable[str], codes: dict[str, int], names: list[str]) -> list[int] | None:
    """The code of each symbol, learning well-formed new ones (``None`` when one is not).

    Examples
    --------
    >>> codes, names = {"BTC-USD": 0}, ["BTC-USD"]
    >>> _symbol_codes(["ETH-USD", "BTC-USD", "ETH-USD"], codes, names), names
    ([1, 0, 1], ['BTC-USD', 'ETH-USD'])
    >>> _symbol_codes(["BTC-USD", "no spaces"], codes, names) is None, names
    (True, ['BTC-USD', 'ETH-USD'])
    """
    symbols = list(symbols)
    code = list(map(codes.get, symbols))
    if None not in code:
        return code  # type: ignore[return-value]
    new = {s for s, c in zip(symbols, code, strict=True) if c is None}
    if not all(type(s) is str and SYMBOL_RE.fullmatch(s) for s in new):
        return None
    for s in sorted(new):
        _learn_symbol(s, codes, names)
    return list(map(codes.__getitem__, symbols))


def _struct_columns(
    records: list[Any], codes: dict[str, int], names: list[str]
) -> tuple[list[int], list[int], list[float], list[float | None]] | None:
    """Columns of validated wire records (``None`` when a symbol is malformed: one by one)."""
    code: list[int] | None = list(map(codes.get, map(_symbol_of, records)))  # type: ignore[arg-type]
    if None in code:  # type: ignore[operator]
        code = _symbol_codes(map(_symbol_of, records), codes, names)  # new symbols are learnt
        if code is None:
            return None
    return (code, list(map(_ts_of, records)), list(map(_price_of, records)),  # type: ignore[return-value]
            list(map(_size_of, records)))


def _days_hours(ms: int) -> str:
    """A duration for people.

    Examples
    --------
    >>> _days_hours(90_061_000), _days_hours(3_600_000 * 5), _days_hours(2_000)
    ('1 day 1 h', '5.0 h', '2 s')
    """
    hours = ms / 3_600_000
    if hours >= 24:
        days, rest = divmod(int(hours), 24)
        return f"{days:,} day{'s' if days > 1 else ''}" + (f" {rest} h" if rest else "")
    return f"{hours:.1f} h" if hours >= 1 else f"{ms // 1000} s"


def _field(record: Any, name: str) -> Any:
    """A field of a decoded record: a dict (one by one) or a wire struct (in bulk)."""
    return record.get(name) if isinstance(record, dict) else getattr(record, name)


def _runs(parts: list[int]) -> list[tuple[int, int]]:
    """``[a, b)`` ranges of consecutive messages from the same partition.

    Examples
    --------
    >>> _runs([0, 0, 1, 1, 1, 0])
    [(0, 2), (2, 5), (5, 6)]
    """
    n = len(parts)
    if parts.count(parts[0]) == n:
        return [(0, n)]
    arr = np.asarray(parts)
    bounds = [0, *(np.flatnonzero(arr[1:] != arr[:-1]) + 1).tolist(), n]
    return list(zip(bounds, bounds[1:], strict=False))


_get = dict.get
_item = dict.__getitem__
_NONE = type(None)


def _valid_columns(
    records: list[Any], codes: dict[str, int], names: list[str]
) -> tuple[list[int], list[int], list[float], list[float | None]] | None:
    """Symbol codes, times, prices and sizes of decoded records when every one passes the
    per-record fast checks of ``Decoder._read_records``; ``None`` when one does not.

    Each check runs over the whole batch at C speed (``map``, ``set``, ``min``/``max``).

    Examples
    --------
    >>> ok = {"v": 1, "symbol": "BTC-USD", "ts": 1_700_000_000_000, "price": 2.0, "size": None}
    >>> _valid_columns([ok], {"BTC-USD": 0}, ["BTC-USD"])
    ([0], [1700000000000], [2.0], [None])
    >>> _valid_columns([ok, {**ok, "v": True}], {"BTC-USD": 0}, ["BTC-USD"]) is None
    True
    """
    n = len(records)
    if set(map(type, records)) != {dict} or not TICK_KEYS.issuperset(chain.from_iterable(records)):
        return None
    v = list(map(_get, records, repeat("v")))
    if set(map(type, v)) != {int} or v.count(WIRE_VERSION) != n:
        return None
    ts = list(map(_item, records, repeat("ts")))
    if set(map(type, ts)) != {int} or min(ts) < MIN_TS_MS or max(ts) >= MAX_TS_MS:
        return None
    price = list(map(_item, records, repeat("price")))
    if set(map(type, price)) != {float} or not (min(price) > 0.0 and max(price) < MAX_PRICE):
        return None
    size = list(map(_get, records, repeat("size")))
    kinds = set(map(type, size))
    if not kinds <= {float, _NONE}:
        return None
    if float in kinds:
        sized: list[Any] = [z for z in size if z is not None] if _NONE in kinds else size
        if not (min(sized) >= 0.0 and max(sized) < MAX_SIZE):
            return None
    for name in ("source", "trade_id"):
        text = list(map(_get, records, repeat(name)))
        if not set(map(type, text)) <= {str, _NONE} or max(map(len, filter(None, text)), default=0) > MAX_TEXT:
            return None
    code = _symbol_codes(map(_item, records, repeat("symbol")), codes, names)
    if code is None:
        return None
    return code, ts, price, size  # type: ignore[return-value]


def dead_letter_reason(exc: Exception) -> tuple[str, str]:
    """The ``(reason, field)`` a dead letter is labelled with, for the error its record raised.

    Examples
    --------
    >>> dead_letter_reason(ValidationError("price", "must be > 0"))
    ('must be > 0', 'price')
    >>> dead_letter_reason(KeyError("ts"))
    ('missing', 'ts')
    """
    if isinstance(exc, ValidationError):
        return exc.reason, exc.field
    if isinstance(exc, orjson.JSONDecodeError):
        return f"not valid JSON: {exc}", "record"
    if isinstance(exc, KeyError):
        return "missing", str(exc.args[0]) if exc.args else "record"
    if isinstance(exc, TypeError | AttributeError):
        return "must be a JSON object with symbol, ts and price", "record"
    return f"{type(exc).__name__}: {exc}", "record"


class Decoder:
    """A batch of records -> each owned partition's valid ticks as :class:`Columns`.

    Records of partitions not in ``owned`` (revoked meanwhile) or finished, and records
    already applied (duplicates after a seek), are skipped; each record taken moves its
    partition's :attr:`~cryptolab.pipeline.partitions.Owned.next_offset` on. A record that
    is not a valid tick goes to ``reject`` with the reason and the field at fault.

    Parameters
    ----------
    owned
        The partitions the member owns (shared with the consumer, which changes it).
    max_clock_skew_ms
        Event times further ahead of the wall clock are rejected (0: no bound).
    reject
        ``f(message, reason, field)`` for each record that is not a valid tick.
    """

    def __init__(
        self, owned: dict[int, Owned], max_clock_skew_ms: int,
        reject: Callable[[Message, str, str], None],
    ) -> None:
        self.owned = owned
        self.max_clock_skew_ms = max_clock_skew_ms
        self.reject = reject
        self.symbol_codes: dict[str, int] = {}  # validated symbols -> index in symbol_names
        self.symbol_names: list[str] = []
        self.ts_limit = MAX_TS_MS  # event times above: dead letters (set per batch from the wall clock)

    def read(self, msgs: list[Message], now: float) -> dict[int, Columns]:
        """The valid ticks of ``msgs`` by partition (``now``: the monotonic clock, for idleness)."""
        batch: dict[int, Columns] = {}
        skew = self.max_clock_skew_ms
        self.ts_limit = int(time.time() * 1000) + skew if skew > 0 else MAX_TS_MS
        if list(map(Message.error, msgs)).count(None) != len(msgs):
            self._read_records(msgs, batch, now)
        else:
            parts = list(map(Message.partition, msgs))
            for a, b in _runs(parts):
                if not self._read_run(msgs, parts[a], a, b, batch, now):
                    self._read_records(msgs[a:b], batch, now)
        return batch

    def _read_run(
        self,
        msgs: list[Message],
        p: int,
        a: int,
        b: int,
        batch: dict[int, Columns],
        now: float,
    ) -> bool:
        """Collect ``msgs[a:b]`` (one partition, consecutive offsets) in bulk when every
        record passes the same checks as :meth:`_read_records`' fast path; return False,
        having changed nothing, when one does not (that method then takes them one by one).
        """
        o = self.owned.get(p)
        if o is None or o.finished:  # a partition revoked meanwhile, or paused at its end: skipped
            return True
        first, last = msgs[a].offset(), msgs[b - 1].offset()
        if first < o.next_offset or last - first != b - a - 1:
            return False  # duplicates after a seek, or gaps: one by one
        values = list(map(Message.value, msgs[a:b]))
        records: list[Any]
        try:
            if max(map(len, values)) > MAX_RECORD_BYTES:
                return False
            if _decode_wire is not None:  # decoded and validated in one C pass
                records = list(map(_decode_wire, values))
                columns = _struct_columns(records, self.symbol_codes, self.symbol_names)
            else:
                records = list(map(orjson.loads, values))
                columns = _valid_columns(records, self.symbol_codes, self.symbol_names)
        except Exception:  # None, not JSON, a failed check, missing keys...: one by one
            return False
        if columns is None or max(columns[1]) > self.ts_limit:  # a tick from the future: one by one
            return False
        o.next_offset = last + 1
        c = batch.get(p)
        if c is None:
            c = batch[p] = Columns()
            o.dirty = True
            o.last_seen = now
            o.idle_closed = False
        codes, ts, price, size = columns
        c.codes += codes
        c.ts += ts
        c.price += price
        c.size += size
        c.offsets += range(first, last + 1)  # consecutive (checked above)
        c.records += records
        return True

    def _read_records(self, msgs: Sequence[Message], batch: dict[int, Columns], now: float) -> None:
        """Validate and collect records one by one (errors, duplicates, bad records, new symbols)."""
        loads = orjson.loads
        owned = self.owned
        codes = self.symbol_codes
        keys = TICK_KEYS
        version = WIRE_VERSION
        max_text = MAX_TEXT
        cur_p = -1
        o: Owned | None = None
        cols: Columns | None = None
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("consume error: %s", err)
                continue
            p = m.partition()
            if p != cur_p:
                cur_p = p
                o = owned.get(p)
                cols = batch.get(p)
            if o is None or o.finished:  # a partition revoked meanwhile, or paused at its end
                continue
            off = m.offset()
            if off < o.next_offset:  # already applied (duplicate delivery after a seek)
                continue
            o.next_offset = off + 1
            if cols is None:
                cols = batch[p] = Columns()
                o.dirty = True
                o.last_seen = now
                o.idle_closed = False
            raw = m.value()
            try:
                if raw is None or len(raw) > MAX_RECORD_BYTES:
                    raise ValidationError("record", "empty or oversized record")
                d = loads(raw)
                sym = d["symbol"]
                ts = d["ts"]
                price = d["price"]
                size = d.get("size")
                src = d.get("source")
                tid = d.get("trade_id")
                code = codes.get(sym)
                if not (
                    type(d.get("v")) is int
                    and d["v"] == version
                    and type(ts) is int
                    and MIN_TS_MS <= ts < MAX_TS_MS
                    and type(price) is float
                    and 0.0 < price < MAX_PRICE
                    and (size is None or (type(size) is float and 0.0 <= size < MAX_SIZE))
                    and (src is None or (type(src) is str and len(src) <= max_text))
                    and (tid is None or (type(tid) is str and len(tid) <= max_text))
                    and code is not None
                    and d.keys() <= keys
                ):
                    t = tick_from_dict(d)  # slow path: full validation, names the field
                    sym, ts, price, size = t.symbol, t.ts_ms, t.price, t.size
                    code = _learn_symbol(sym, codes, self.symbol_names)
                if ts > self.ts_limit:
                    raise ValidationError("ts", self._ahead_reason(ts))
            except Exception as exc:  # any bad record goes to the DLQ
                if isinstance(exc, KeyError | TypeError | AttributeError):
                    exc = _precise_error(d, exc)  # the fast path choked: name the field
                self.reject(m, *dead_letter_reason(exc))
                continue
            cols.codes.append(code)
            cols.ts.append(ts)
            cols.price.append(price)
            cols.size.append(size)
            cols.offsets.append(off)
            cols.records.append(d)

    def _ahead_reason(self, ts: int) -> str:
        ahead = _days_hours(ts - self.ts_limit + self.max_clock_skew_ms)
        return (
            f"{ts} ({iso_utc(ts)}) is {ahead} ahead of the wall clock, more than "
            f"CRYPTOLAB_MAX_CLOCK_SKEW={interval_name(self.max_clock_skew_ms)} (a clock or unit "
            "error upstream; 0s lifts the bound, for data stamped ahead of the clock on purpose)"
        )

