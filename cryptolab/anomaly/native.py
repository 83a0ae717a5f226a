"""River's running quantile and ADWIN, reached without importing River's packages.

``river.stats.Quantile`` and ``river.drift.ADWIN`` are thin Python shells over
estimators of River's compiled extension (``river._river_rust``), but
``import river.stats`` and ``import river.drift`` load every estimator of those
packages, SciPy among their dependencies: about 75 MiB of a consumer's
resident memory, for two small objects per detector. The classes here drive
the same compiled estimators, with the same calls in the same order, so their
values are River's to the last bit (``tests/unit/test_anomaly_native.py``
compares them); with a River whose extension lacks them, they are River's own
classes.

Examples
--------
>>> q = Quantile(0.5)
>>> q.get() is None                  # nothing seen yet
True
>>> for x in (3.0, 1.0, 2.0):
...     q.update(x)
>>> q.get()
2.0
>>> adwin = ADWIN(delta=0.002, clock=1)
>>> adwin.update(0.5)
>>> adwin.drift_detected
False
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["ADWIN", "Quantile"]


def _compiled(module: str, name: str) -> Any:
    """River's compiled estimator ``module.name``, or ``None`` when this River has none."""
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):  # pragma: no cover - another River
        return None


_RS_QUANTILE: Any = _compiled("river._river_rust.stats", "RsQuantile")
_RS_ADWIN: Any = _compiled("river._river_rust.drift", "AdaptiveWindowing")


class Quantile:
    """Running ``q``-quantile (P²): ``river.stats.Quantile``'s estimator and its ``get``.

    Parameters
    ----------
    q
        Quantile level, in ``(0, 1)``.
    """

    __slots__ = ("_est", "_seen", "q")

    def __init__(self, q: float = 0.5) -> None:
        if not 0 < q < 1:
            raise ValueError("q is not comprised between 0 and 1")
        self.q = q
        self._seen = False
        self._est: Any = _river_quantile(q) if _RS_QUANTILE is None else _RS_QUANTILE(q)

    def update(self, x: float) -> None:
        """Take ``x`` into account."""
        self._est.update(x)
        self._seen = True

    def get(self) -> float | None:
        """The estimate (``None`` before the first value, as River's)."""
        if not self._seen:
            return None
        value: float | None = self._est.get()
        return value


class ADWIN:
    """ADaptive WINdowing drift detector: ``river.drift.ADWIN``'s ``update`` and ``drift_detected``.

    Parameters
    ----------
    delta, clock, max_buckets, min_window_length, grace_period
        As in ``river.drift.ADWIN``.
    """

    __slots__ = ("_helper", "clock", "delta", "drift_detected", "grace_period", "max_buckets",
                 "min_window_length")

    def __init__(self, delta: float = 0.002, clock: int = 32, max_buckets: int = 5,
                 min_window_length: int = 5, grace_period: int = 10) -> None:
        self.delta = delta
        self.clock = clock
        self.max_buckets = max_buckets
        self.min_window_length = min_window_length
        self.grace_period = grace_period
        self._reset()

    def _reset(self) -> None:
        self.drift_detected = False
        params = {"delta": self.delta, "clock": self.clock, "max_buckets": self.max_buckets,
                  "min_window_length": self.min_window_length, "grace_period": self.grace_period}
        self._helper: Any = _river_adwin(params) if _RS_ADWIN is None else _RS_ADWIN(**params)

    def update(self, x: float) -> None:
        """Add ``x`` to the window; ``drift_detected`` then tells whether it changed regime
        (a detection starts a new window at the next value, as River's)."""
        if self.drift_detected:
            self._reset()
        detected: bool = self._helper.update(x)
        self.drift_detected = bool(detected)

    @property
    def width(self) -> int:
        """The window's length."""
        helper = self._helper
        return int(helper.get_width() if hasattr(helper, "get_width") else helper.width)


class _RiverADWINStep:  # pragma: no cover - only with a River lacking the compiled ADWIN
    """River's public ADWIN behind the compiled estimator's ``update -> detected`` call."""

    __slots__ = ("_adwin",)

    def __init__(self, params: dict[str, Any]) -> None:
        from river.drift import ADWIN as RiverADWIN

        self._adwin: Any = RiverADWIN(**params)  # type: ignore[no-untyped-call]

    def update(self, x: float) -> bool:
        self._adwin.update(x)
        return bool(self._adwin.drift_detected)

    @property
    def width(self) -> int:
        return int(self._adwin.width)


def _river_adwin(params: dict[str, Any]) -> Any:  # pragma: no cover - see _RiverADWINStep
    return _RiverADWINStep(params)


def _river_quantile(q: float) -> Any:  # pragma: no cover - a River without its compiled quantile
    from river.stats import Quantile as RiverQuantile

    return RiverQuantile(q)
