"""The shape shared by the learning detectors: a River model, a quantile threshold, drift resets.

``zscore`` (:mod:`~cryptolab.anomaly.zscore`) and ``hst``
(:mod:`~cryptolab.anomaly.hst`) differ only in their model. Around it, this
module puts what both need:

* the threshold: a :class:`~cryptolab.anomaly.thresholds.QuantileThreshold`
  (River's ``QuantileFilter``, level ``q``) over fixed levels
  (``threshold``, ``medium``, ``high``); the model learns behind it
  (:func:`~cryptolab.anomaly.thresholds.guarded_learn`): what the quantile
  flags is not learnt, and a model still warming up teaches the quantile nothing;
* the reset after a regime change detected by ``river.drift.ADWIN`` on the
  candle's log range: the model is rebuilt from the last ``3 * warmup``
  candles (mostly from the new regime, since ADWIN notices a change a few
  candles after it happens), so it adapts at once instead of alerting through
  a whole new volatility regime;
* a one-sample memo, so ``learn_one`` of the sample just scored does not
  score it again.
"""

from __future__ import annotations

import logging
import math
from array import array
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from cryptolab.anomaly.base import BaseDetector, Severity
from cryptolab.anomaly.native import ADWIN
from cryptolab.anomaly.thresholds import FixedThreshold, QuantileThreshold, guarded_learn
from cryptolab.errors import ValidationError

__all__: list[str] = []

log = logging.getLogger(__name__)


class _RiverDetector(BaseDetector):
    """A River anomaly model behind a quantile threshold, reset on ADWIN drift.

    Subclasses provide ``_make_model(seed)`` (a River ``AnomalyDetector`` with
    a ``ready`` attribute and a ``warm_start(samples)`` method) and the
    default parameters, and call :meth:`_init_common` from ``__init__``.
    """

    features: tuple[str, ...]
    warmup: int
    drift_delta: float | None
    policy: QuantileThreshold
    _model: Any

    def _init_common(
        self,
        *,
        features: Sequence[str],
        q: float,
        threshold: float,
        medium: float,
        high: float,
        warmup: int,
        drift_delta: float | None,
        name: str,
        seed: int,
    ) -> None:
        if not features:
            raise ValidationError("features", "need at least one feature")
        if not 0 < q < 1:
            raise ValidationError("q", f"must be in (0, 1), got {q}")
        levels = FixedThreshold(threshold, medium, high)
        if warmup < 2:
            raise ValidationError("warmup", f"must be >= 2, got {warmup}")
        if drift_delta is not None and not 0 < drift_delta < 1:
            raise ValidationError("drift_delta", f"must be in (0, 1) or None, got {drift_delta}")
        self.features = tuple(features)
        self.warmup = int(warmup)
        self.drift_delta = drift_delta
        self.name = name
        self.seed = seed
        self.resets = 0
        self.n_learned = 0
        # the features of the last 3 * warmup candles, flat in ``features`` order (a dict per
        # candle would take 10x the memory, for thousands of streams)
        self._recent = array("d")
        self._memo: tuple[dict[str, float], float] | None = None
        self._adwin = ADWIN(delta=drift_delta, clock=1) if drift_delta is not None else None
        self.policy = QuantileThreshold(levels, q=q)
        self._model = self._make_model(seed)

    def _make_model(self, seed: int) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _levels(self) -> FixedThreshold:
        return cast(FixedThreshold, self.policy.levels)

    @property
    def q(self) -> float:
        """Level of the score quantile an alert must reach."""
        return self.policy.q

    @property
    def threshold(self) -> float:
        """Minimum score of a LOW alert."""
        return self._levels().low

    @property
    def medium(self) -> float:
        """Minimum score of a MEDIUM alert."""
        return self._levels().medium

    @property
    def high(self) -> float:
        """Minimum score of a HIGH alert."""
        return self._levels().high

    @property
    def model(self) -> Any:
        """The River model in use (a new one after each drift reset)."""
        return self._model

    def _drift_signal(self, x: Mapping[str, float]) -> float:
        return math.log(max(float(x.get("range", 0.0)), 1e-9))

    @property
    def ready(self) -> bool:
        """Whether the model is past its warm-up (scores are 0 before)."""
        return bool(self._model.ready)

    @property
    def current_threshold(self) -> float:
        """The score an alert needs now: the larger of ``threshold`` and the score quantile."""
        return self.policy.threshold() if self.ready else self.threshold

    def _threshold_now(self) -> float:
        return self.policy.threshold() if self._model.ready else math.inf

    def _x(self, x: Mapping[str, float]) -> dict[str, float]:
        return {f: float(x[f]) for f in self.features}

    def score_one(self, x: Mapping[str, float]) -> float:
        """The model's score of ``x`` (0 while warming up); no side effect.

        The score is remembered (outside the detector's state) so that
        ``learn_one`` of the same sample does not compute it again.
        """
        xs = self._x(x)
        memo = self._memo
        if memo is not None and memo[0] == xs:
            return memo[1]
        score = float(self._model.score_one(xs))
        self._memo = (xs, score)
        return score

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_memo"] = None  # a cache, not state
        return state

    def flag(self, score: float) -> Severity | None:
        """An alert needs the score above both the score quantile and ``threshold``.

        The quantile (level ``q``) caps the alert rate at about ``1 - q`` of
        the candles; ``threshold`` keeps a quiet stream from alerting on its
        own noise. Severity is LOW above that, MEDIUM from ``medium``, HIGH
        from ``high``.
        """
        if not self._model.ready:
            return None
        return self.policy.severity(score)

    def learn_one(self, x: Mapping[str, float]) -> None:
        """Learn ``x`` (anomalous samples are not learnt by the model); reset on drift."""
        xs = self._x(x)
        memo, self._memo = self._memo, None
        guarded_learn(self._model, self.policy, xs, memo[1] if memo is not None and memo[0] == xs else None)
        recent = self._recent
        recent.extend(xs.values())
        if len(recent) > 3 * self.warmup * len(self.features):
            del recent[: len(self.features)]
        self.n_learned += 1
        if self._adwin is None:
            return
        self._adwin.update(self._drift_signal(x))
        if self._adwin.drift_detected and self.ready:
            # Rebuild from the last ``3 * warmup`` candles: ADWIN notices a
            # change a few candles after it happens, so most of them already
            # belong to the new regime.
            nf = len(self.features)
            rows = [self._recent[i : i + nf] for i in range(0, len(self._recent), nf)]
            self._reset([dict(zip(self.features, row, strict=True)) for row in rows])

    def _reset(self, samples: Iterable[dict[str, float]]) -> None:
        """Rebuild the model (same threshold state) from ``samples``."""
        self.resets += 1
        model = self._make_model(self.seed + self.resets)
        model.warm_start(list(samples))
        self._model = model
        log.debug("%s: drift detected after %d samples, model reset (%d)", self.name, self.n_learned, self.resets)
