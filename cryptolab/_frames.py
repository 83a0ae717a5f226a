"""Moved to :mod:`cryptolab.store.frames`; this name stays importable.

Examples
--------
>>> from cryptolab.store import frames
>>> history_frame is frames.history_frame
True
"""

from __future__ import annotations

from cryptolab.store.frames import alerts_frame, history_frame, utc_column

__all__ = ["alerts_frame", "history_frame", "utc_column"]
