"""Values as recorded files write them: decimal numbers (as text or not) and JSON documents.

Timestamps are parsed by :func:`cryptolab.models.time.parse_ts`, re-exported here.

Examples
--------
>>> parse_number(" 1e3 ", "size"), parse_ts("1700000000")
(1000.0, 1700000000000)
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from cryptolab.errors import ValidationError
from cryptolab.models.time import NUMBER_RE, TsUnit, detect_ts_unit, parse_ts
from cryptolab.models.wire import MAX_TEXT
from cryptolab.sources import loads_lenient

__all__ = ["TsUnit", "detect_ts_unit", "load_json", "log", "parse_number", "parse_ts"]

#: The replay's one logger: its lines keep the name they always had.
log = logging.getLogger("cryptolab.sources.replay")


def parse_number(text: object, field: str) -> float:
    """Parse a price or size given as a number or a decimal string.

    Raises
    ------
    ValidationError
        For anything that is not a plain finite decimal number.

    Examples
    --------
    >>> parse_number("0.35280000", "price"), parse_number(12, "size")
    (0.3528, 12.0)
    >>> parse_number("NaN", "price")
    Traceback (most recent call last):
    ...
    cryptolab.errors.ValidationError: invalid 'price': not a number: 'NaN'
    """
    if isinstance(text, bool) or text is None:
        raise ValidationError(field, f"not a number: {text!r}")
    if isinstance(text, int | float):
        value = float(text) if not isinstance(text, int) or abs(text) < 1e300 else math.inf
    elif isinstance(text, str) and len(text) <= MAX_TEXT and NUMBER_RE.fullmatch(text):
        value = float(text)
    else:
        shown = text if not isinstance(text, str) else text[:40]
        raise ValidationError(field, f"not a number: {shown!r}")
    if not math.isfinite(value):
        raise ValidationError(field, f"not a finite number: {text!r}")
    return value


def load_json(path: Path) -> Any:
    """The JSON document in ``path`` (``NaN`` and overflowing numbers allowed).

    Raises
    ------
    ValidationError
        When the file is not JSON, naming it.
    """
    try:
        return loads_lenient(path.read_bytes())
    except ValueError as exc:
        raise ValidationError("record", f"{path}: not valid JSON: {exc}") from None
