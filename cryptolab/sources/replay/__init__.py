"""Replay recorded market data files as ticks, preserving event time.

:class:`Replay` reads one file and yields its records as ticks in file order,
as fast as possible (``speed=None``) or paced by event time at ``speed`` times
real time (``speed=1`` is real time, ``speed=60`` a minute per second).

Formats (``format="auto"`` detects them from the extension and content):

``csv``
    Trades with a header row: a time column (``ts``, ``ts_ms``, ``timestamp``,
    ``time``, ``date``, ``datetime``...), ``price``, a size column (``size``,
    ``amount``, ``qty``, ``quantity``, ``volume``), and optionally ``symbol``
    (or ``pair``, ``product_id``), ``side`` (or ``type``; read, not carried:
    ticks have no side) and ``trade_id`` (or ``tid``, ``id``). Also headerless
    ``ts,price,amount[,side]`` files (like Bitstamp's), and files whose only
    time is an ``id`` column of epoch microseconds (like Mt.Gox's
    ``id,price,amount,type``): an ``id`` column is taken as the time when no
    time column exists and its first value is a plausible epoch timestamp.
    Choose the column yourself with ``ts_column``.
``klines``
    Binance klines, as the REST JSON array of arrays or the headerless CSV of
    ``data.binance.vision`` (``open_time, open, high, low, close, volume,
    close_time, ...``). Each kline becomes four ticks, as bars do.
``bars``
    Bar JSON: ``{"name": "ETH/USD_PT5M@...", "ohlc": [{"endTime", "openPrice",
    "highPrice", "lowPrice", "closePrice", "volume"}...]}`` (endTime = last
    millisecond of the bar) or Coinbase's ``{"candles": [{"start" (epoch s),
    "open", "high", "low", "close", "volume"}...]}``; a bare list of such bars
    works too. The interval comes from the ``PT5M``-style name, else from the
    most common gap between bars, or from ``interval``.
``coingecko``
    CoinGecko ``/coins/{id}/market_chart`` JSON (``{"prices": [[ms, price]...],
    "total_volumes": ...}``): one tick per price point, without size (the
    volumes there are rolling 24-hour totals, not trade sizes).
``parquet``
    Columns named as for ``csv``; timestamp columns of Arrow timestamp type work.
``jsonl``
    Wire-format ticks, one JSON object a line (what ``--to jsonl:PATH`` writes).

**Bars become ticks** as four ticks inside the bar ``[start, end)``: the open
at ``start``, then the low and the high (low first for a rising bar, high first
for a falling one) at ``start + d/4`` and ``start + d/2``, and the close at
``end - 1 ms``, each with a quarter of the volume. Re-aggregated at the bar's
interval (windows aligned to the epoch, as cryptolab's are) they give back the
bar's open, high, low, close and volume exactly.

**Timestamps** are epoch seconds, milliseconds, microseconds or nanoseconds --
the unit is detected from the first row's magnitude (below 1e11: s, 1e14: ms,
1e17: us, else ns) and then fixed for the file, or given with ``ts_unit`` --
or ISO-8601 text (``2024-01-01T00:00:00Z``; text without an offset is UTC).
A column named ``ts_ms`` is milliseconds.

One module per format (``tabular`` for ``csv``, ``klines``, ``bars``,
``market_chart`` for ``coingecko``, ``parquet``, ``jsonl``), the format detection
(``detect``), the values (``values``) and the source (``source``); timestamps are
parsed by :func:`cryptolab.models.time.parse_ts`.

**Bad rows** never pass silently and never corrupt data. With the default
``errors="raise"`` the first malformed row stops the replay with a
:class:`~cryptolab.errors.ValidationError` naming the file, the line and the
field. With ``errors="skip"`` it is skipped, logged and counted
(:attr:`Replay.stats`). Either way, an ``on_reject`` callback (the producer's
dead-letter topic) receives it first.

Examples
--------
>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "t.csv").write_text("ts,price,size\\n1700000000,100.5,2\\n1700000001,oops,1\\n")
>>> [t.price for t in Replay(d / "t.csv", symbol="BTC-USD", errors="skip").iter_ticks()]
[100.5]
>>> list(Replay(d / "t.csv", symbol="BTC-USD").iter_ticks())  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
cryptolab.errors.ValidationError: invalid 'price': ...t.csv:3: not a number: 'oops'
"""

from __future__ import annotations

from cryptolab.models.time import TsUnit, detect_ts_unit, parse_ts
from cryptolab.sources.replay.bars import bar_to_ticks
from cryptolab.sources.replay.detect import FORMATS, detect_format
from cryptolab.sources.replay.source import Replay
from cryptolab.sources.replay.values import parse_number

__all__ = ["FORMATS", "Replay", "TsUnit", "bar_to_ticks", "detect_format", "detect_ts_unit",
           "parse_number", "parse_ts"]
