"""What every anomaly detector is: the :class:`Detector` protocol and :class:`BaseDetector`.

Every detector follows one protocol (:class:`Detector`), River's one-sample
verbs applied *prequentially*: for each candle, ``score_one`` first, then
``flag(score)``, then ``learn_one``. Scoring never changes the detector, so a
sample's score cannot depend on having learnt it (:mod:`cryptolab.anomaly.checks`
runs that contract on any detector).

Detectors are deterministic given their ``seed`` and the sequence of features
they learn: :class:`~cryptolab.anomaly.AnomalyScorer` gives every
(symbol, interval) stream its own clone seeded from a stable hash
(:func:`stream_seed`), which is what makes alerts after a restart equal those
of an uninterrupted run.

Examples
--------
>>> SEVERITIES
('LOW', 'MEDIUM', 'HIGH')
>>> stream_seed(0, "ETH-USD", "5m", "zscore") == stream_seed(0, "ETH-USD", "5m", "zscore")
True
"""

from __future__ import annotations

import copy
import math
import pickle
import zlib
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Final, Literal, Protocol, Self, runtime_checkable

from cryptolab.errors import ValidationError

__all__ = ["SEVERITIES", "BaseDetector", "Detector", "Severity", "forget_streams", "stream_seed"]

Severity = Literal["LOW", "MEDIUM", "HIGH"]
#: Severities from least to most severe.
SEVERITIES: Final[tuple[Severity, ...]] = ("LOW", "MEDIUM", "HIGH")


def stream_seed(seed: int, symbol: str, interval: str, detector: str) -> int:
    """A stable 32-bit seed for one detector on one (symbol, interval) stream.

    Uses CRC-32 (never Python's salted ``hash()``), so it is the same in every
    process and on every machine.

    Parameters
    ----------
    seed
        The detector's own seed.
    symbol, interval
        The stream.
    detector
        The detector's name.

    Returns
    -------
    int
        A seed in ``[0, 2**32)``.

    Examples
    --------
    >>> stream_seed(0, "BTC-USD", "1m", "hst")
    892702522
    >>> stream_seed(0, "BTC-USD", "1m", "hst") == stream_seed(1, "BTC-USD", "1m", "hst")
    False
    """
    return zlib.crc32(f"{seed}|{symbol}|{interval}|{detector}".encode())


@runtime_checkable
class Detector(Protocol):
    """What every anomaly detector offers (River's verbs, plus a severity).

    ``score_one`` must not change the detector; ``learn_one`` folds a sample
    in; ``flag`` turns a score into a severity (or ``None``) using the
    detector's current threshold. ``clone`` returns a fresh, unfitted copy
    with the same parameters (optionally another seed); ``snapshot`` returns
    the full state as bytes. :func:`cryptolab.anomaly.checks.check_detector`
    tells whether a detector keeps these promises.
    """

    name: str
    seed: int

    def score_one(self, x: Mapping[str, float]) -> float:
        """Anomaly score of ``x`` (higher is more anomalous); no side effect."""
        ...

    def learn_one(self, x: Mapping[str, float]) -> None:
        """Learn ``x``."""
        ...

    def flag(self, score: float) -> Severity | None:
        """Severity of ``score`` under the current threshold, or ``None``."""
        ...

    def clone(self, *, seed: int | None = None) -> Detector:
        """A fresh, unfitted detector with the same parameters."""
        ...

    def snapshot(self) -> bytes:
        """The detector's full state (restore with :meth:`BaseDetector.restore`)."""
        ...


class BaseDetector:
    """Shared plumbing: parameters, ``clone``, ``snapshot``/``restore``, ``repr``.

    Subclasses list their constructor parameters in ``_params`` and implement
    ``score_one``, ``learn_one`` and ``flag``.

    Parameters
    ----------
    name
        Detector name (the ``detector`` column of alerts).
    seed
        Random seed.
    """

    name: str
    seed: int
    _params: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, name: str = "detector", seed: int = 0) -> None:
        self.name = name
        self.seed = seed

    def score_one(self, x: Mapping[str, float]) -> float:  # pragma: no cover - abstract
        """Anomaly score of ``x`` (higher is more anomalous); no side effect."""
        raise NotImplementedError

    def learn_one(self, x: Mapping[str, float]) -> None:  # pragma: no cover - abstract
        """Learn ``x``."""
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        """The constructor parameters (without ``seed``)."""
        return {p: copy.deepcopy(getattr(self, p)) for p in self._params}

    def clone(self, *, seed: int | None = None) -> Self:
        """A fresh, unfitted detector with the same parameters and ``seed`` (default: same)."""
        return type(self)(**self.params(), seed=self.seed if seed is None else seed)

    def flag(self, score: float) -> Severity | None:  # pragma: no cover - abstract
        """Severity of ``score`` under the current threshold, or ``None``."""
        raise NotImplementedError

    def level(self, score: float) -> float:
        """``score`` on a common scale: 1, 2, 3 for LOW, MEDIUM, HIGH; below 1 when not flagged.

        Below 1 it is the fraction of the current threshold that ``score``
        reaches (capped just under 1), so detectors with different score
        scales can be combined (see :class:`~cryptolab.anomaly.EnsembleDetector`).
        """
        sev = self.flag(score)
        if sev is not None:
            return float(SEVERITIES.index(sev) + 1)
        thr = self._threshold_now()
        return 0.0 if not thr > 0 or not score > 0 else min(score / thr, 0.999)

    def _threshold_now(self) -> float:
        """The smallest score that could be flagged now (``inf``: none can be, or unknown)."""
        return math.inf

    def snapshot(self) -> bytes:
        """The full state as bytes (pickle: restore only snapshots you made yourself)."""
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def restore(cls, blob: bytes) -> Self:
        """Rebuild a detector from :meth:`snapshot` (trusted bytes only: this unpickles)."""
        obj = pickle.loads(blob)  # documented: restore only your own snapshots
        if not isinstance(obj, cls):
            raise ValidationError("snapshot", f"is a {type(obj).__name__}, not a {cls.__name__}")
        return obj

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args}, seed={self.seed})"


def forget_streams(streams: dict[tuple[str, str], Any], symbols: Iterable[str] | None) -> int:
    """Drop the per-``(symbol, interval)`` state of ``symbols`` (all with ``None``) from
    ``streams``; return how many streams were dropped.

    Examples
    --------
    >>> st = {("A", "1m"): 1, ("A", "5m"): 2, ("B", "1m"): 3}
    >>> forget_streams(st, ["A"]), sorted(st)
    (2, [('B', '1m')])
    >>> forget_streams(st, None), st
    (1, {})
    """
    if symbols is None:
        n = len(streams)
        streams.clear()
        return n
    drop = set(symbols)
    keys = [k for k in streams if k[0] in drop]
    for k in keys:
        del streams[k]
    return len(keys)
