"""The ``jsonl`` format: wire-format ticks, one JSON object a line (what
``--to jsonl:PATH`` writes), each checked by :func:`cryptolab.models.wire.tick_from_dict`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import orjson

from cryptolab.errors import ValidationError
from cryptolab.models.records import Tick
from cryptolab.models.wire import tick_from_dict
from cryptolab.sources import RejectHandler

if TYPE_CHECKING:  # pragma: no cover
    from cryptolab.sources.replay.source import Replay

__all__ = ["read_jsonl"]


def read_jsonl(replay: Replay, on_reject: RejectHandler | None) -> Iterator[Tick]:
    """The ticks of a ``jsonl`` file, one per non-blank line."""
    path = str(replay.path)
    with open(replay.path, "rb") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                tick = tick_from_dict(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                replay._reject(on_reject, line.rstrip(b"\n"),
                               ValidationError("record", f"not valid JSON: {exc}"), f"{path}:{line_no}")
                continue
            except ValidationError as exc:
                replay._reject(on_reject, line.rstrip(b"\n"), exc, f"{path}:{line_no}")
                continue
            yield tick
