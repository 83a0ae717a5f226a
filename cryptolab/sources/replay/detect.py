"""Which format a recorded file is in, and which pair its name mentions.

Examples
--------
>>> from pathlib import Path
>>> guess_symbol(Path("bitstamp_btcusd_2012.csv")), guess_symbol(Path("trades.csv"))
('BTC-USD', None)
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Final

from cryptolab.errors import ValidationError
from cryptolab.models.time import NUMBER_RE

__all__ = ["FORMATS", "detect_format", "guess_symbol"]

#: The formats a :class:`~cryptolab.sources.replay.Replay` reads.
FORMATS: Final = ("csv", "klines", "bars", "coingecko", "parquet", "jsonl")

_PAIR_IN_NAME_RE: Final = re.compile(
    r"(?<![a-z])(btc|eth|sol|ada|xrp|ltc|bnb|doge|dot|avax|link|matic)[-_/]?(usdt|usdc|usd|eur|gbp|btc|eth)(?![a-z])",
    re.IGNORECASE,
)
#: Bytes read from the start of a file to tell its format.
_HEAD_BYTES: Final = 4096
#: Columns of a headerless Binance klines CSV row that are all numbers.
_KLINE_COLUMNS: Final = 11


def detect_format(path: Path) -> str:
    """Detect a file's replay format from its extension and first bytes.

    Raises
    ------
    ValidationError
        When the format cannot be told; pass ``format`` explicitly then.
    """
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    with open(path, "rb") as fh:
        head = fh.read(_HEAD_BYTES)
    text = head.lstrip()
    if suffix == ".json" or text[:1] in (b"{", b"["):
        if text.startswith(b"["):
            rest = text[1:].lstrip()
            if rest.startswith(b"["):
                return "klines"
            return "bars"
        if b'"prices"' in head:
            return "coingecko"
        if b'"ohlc"' in head or b'"candles"' in head:
            return "bars"
        if text.startswith(b"{") and b'"v"' in head.split(b"\n", 1)[0]:
            return "jsonl"
        raise ValidationError("format", f"{path}: cannot tell the JSON format; pass format=")
    first = head.split(b"\n", 1)[0].decode("utf-8", "replace")
    cells = next(csv.reader([first]), [])
    if len(cells) >= _KLINE_COLUMNS and all(NUMBER_RE.fullmatch(c) for c in cells[:_KLINE_COLUMNS]):
        return "klines"
    return "csv"


def guess_symbol(path: Path) -> str | None:
    """The pair a file's name mentions (``bitstamp_btcusd_...csv`` -> ``BTC-USD``), if any."""
    m = _PAIR_IN_NAME_RE.search(path.name)
    if m is None:
        return None
    return f"{m.group(1).upper()}-{m.group(2).upper()}"
