"""The detector contract, shipped: check that a detector, yours or a built-in one, keeps it.

:class:`~cryptolab.anomaly.AnomalyScorer` relies on a few promises that the
:class:`~cryptolab.anomaly.Detector` protocol states but cannot enforce.
:func:`check_detector` runs them all on a detector factory, prequentially
(score, flag, then learn) over a feature stream with crashes and a volatility
regime change (:func:`contract_stream`), and raises :class:`AssertionError`
saying which promise broke and where:

================================ =====================================================================
``protocol``                     implements :class:`~cryptolab.anomaly.Detector`, with a name and an
                                 integer seed
``deterministic``                two clones with the same seed give the same scores and flags
``scoring_has_no_side_effect``   scoring twice, or not at all, changes nothing (scores, snapshot)
``score_independent_of_learning`` the score of a sample does not depend on having learnt it
``clone_is_fresh``               a clone is unfitted, equal in ``repr``, and independent of the original
``clone_keeps_parameters``       a clone with another seed keeps every other parameter
``snapshot_round_trip``          ``type(det).restore(det.snapshot())`` continues exactly as ``det``
``flags_are_severities``         scores are floats, never NaN; flags are ``None`` or a severity
``restore_rejects_another_type`` ``restore`` refuses another detector's snapshot (``ValidationError``)
================================ =====================================================================

The last two checks on snapshots need a ``restore`` classmethod (that of
:class:`~cryptolab.anomaly.BaseDetector`, which your detector gets by
subclassing it).

Examples
--------
>>> from cryptolab.anomaly import RuleDetector
>>> check_detector(lambda: RuleDetector(low=0.01))
['protocol', 'deterministic', 'scoring_has_no_side_effect', 'score_independent_of_learning', 'clone_is_fresh', 'clone_keeps_parameters', 'snapshot_round_trip', 'flags_are_severities', 'restore_rejects_another_type']

A detector whose scoring learns breaks the contract:

>>> class Leaky(RuleDetector):
...     def score_one(self, x):
...         self.seen = getattr(self, "seen", 0) + 1  # state changed by scoring
...         return abs(x["body"]) * self.seen
>>> check_detector(Leaky)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
AssertionError: Leaky 'rule' breaks 'scoring_has_no_side_effect': scoring sample 0 twice gave ...
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Final

import numpy as np

from cryptolab.anomaly.base import SEVERITIES, Detector, Severity
from cryptolab.anomaly.features import FeatureExtractor, Features
from cryptolab.anomaly.rule import RuleDetector
from cryptolab.anomaly.zscore import RobustZScoreDetector
from cryptolab.errors import ValidationError
from cryptolab.models import Candle

__all__ = [
    "CHECKS",
    "DetectorFactory",
    "check_clone_is_fresh",
    "check_clone_keeps_parameters",
    "check_detector",
    "check_deterministic",
    "check_flags_are_severities",
    "check_protocol",
    "check_restore_rejects_another_type",
    "check_score_independent_of_learning",
    "check_scoring_has_no_side_effect",
    "check_snapshot_round_trip",
    "contract_stream",
    "prequential",
]

#: A callable returning a fresh detector (a class, a ``lambda``, ``functools.partial``...).
DetectorFactory = Callable[[], Any]

_T0: Final = 1_700_000_040_000
_MIN: Final = 60_000


def contract_stream(n: int = 400, seed: int = 7) -> list[Features]:
    """Features of a random walk with a few crashes and spikes and a volatility regime change.

    Parameters
    ----------
    n
        Candles (1m, ``BTC-USD``); volatility goes from 0.1% to 0.6% half way
        (which exercises drift resets), and candles 60, 157, 254... move 6% or -8%.
    seed
        Seed of the walk.

    Returns
    -------
    list[Features]
        One feature dictionary per candle, from :class:`~cryptolab.anomaly.FeatureExtractor`.

    Examples
    --------
    >>> xs = contract_stream(100)
    >>> len(xs), round(xs[60]["body"], 2)
    (100, 0.06)
    """
    rng = np.random.default_rng(seed)
    fx = FeatureExtractor()
    out = []
    price = 100.0
    for i in range(n):
        vol = 0.001 if i < n // 2 else 0.006
        move = rng.normal(0.0, vol)
        if i % 97 == 60:
            move = -0.08 if i % 2 else 0.06
        o, c = price, price * math.exp(move)
        h = max(o, c) * (1 + abs(rng.normal(0, vol / 2)))
        lo = min(o, c) * (1 - abs(rng.normal(0, vol / 2)))
        ws = _T0 + i * _MIN
        out.append(fx.update(Candle(
            symbol="BTC-USD", interval="1m", window_start=ws, window_end=ws + _MIN, open=o,
            high=h, low=lo, close=c, volume=float(rng.lognormal(0, 0.5)), vwap=(o + c) / 2,
            trades=int(rng.integers(1, 50)), first_ts=ws, last_ts=ws, high_ts=ws, low_ts=ws,
            final=True)))
        price = c
    return out


def prequential(det: Any, xs: Sequence[Features]) -> list[tuple[float, Severity | None]]:
    """Run ``det`` prequentially over ``xs``: score, flag, then learn each; the (score, flag) pairs.

    Examples
    --------
    >>> from cryptolab.anomaly import RuleDetector
    >>> prequential(RuleDetector(), [{"body": 0.01}, {"body": -0.08}])
    [(0.01, None), (0.08, 'MEDIUM')]
    """
    out: list[tuple[float, Severity | None]] = []
    for x in xs:
        s = det.score_one(x)
        out.append((s, det.flag(s)))
        det.learn_one(x)
    return out


class _Check:
    """Raises the contract's :class:`AssertionError`, naming the detector and the check."""

    def __init__(self, check: str, det: Any) -> None:
        self.check = check
        self.who = f"{type(det).__name__} {getattr(det, 'name', '?')!r}"

    def require(self, ok: bool, message: str) -> None:
        if not ok:
            raise AssertionError(f"{self.who} breaks {self.check!r}: {message}")

    def same_runs(self, got: list[tuple[float, Severity | None]],
                  want: list[tuple[float, Severity | None]], what: str) -> None:
        if got == want:
            return
        t = next((i for i, (g, w) in enumerate(zip(got, want, strict=False)) if g != w),
                 min(len(got), len(want)))
        g = got[t] if t < len(got) else "nothing"
        w = want[t] if t < len(want) else "nothing"
        self.require(False, f"{what}: first difference at sample {t}: {g} != {w}")


def _restore(check: _Check, det: Any) -> Callable[[bytes], Any]:
    restore = getattr(type(det), "restore", None)
    check.require(callable(restore), "no restore(blob) classmethod (BaseDetector provides one)")
    return restore  # type: ignore[return-value]


def check_protocol(make: DetectorFactory, stream: Sequence[Features]) -> None:
    """A detector implements :class:`~cryptolab.anomaly.Detector`, with a name and an integer seed."""
    det = make()
    c = _Check("protocol", det)
    missing = [m for m in ("name", "seed", "score_one", "learn_one", "flag", "clone", "snapshot")
               if not hasattr(det, m)]
    c.require(isinstance(det, Detector), f"does not implement the Detector protocol (missing {missing})")
    c.require(isinstance(det.name, str) and bool(det.name), f"name must be a non-empty str, got {det.name!r}")
    c.require(isinstance(det.seed, int), f"seed must be an int, got {det.seed!r}")


def check_deterministic(make: DetectorFactory, stream: Sequence[Features]) -> None:
    """Two clones with the same seed give the same scores and flags."""
    a, b = make().clone(seed=123), make().clone(seed=123)
    _Check("deterministic", a).same_runs(prequential(a, stream), prequential(b, stream),
                                         "two clones seeded 123 disagree")


def check_scoring_has_no_side_effect(make: DetectorFactory, stream: Sequence[Features]) -> None:
    """``score_one`` before ``learn_one``: scoring twice, or not at all, changes nothing."""
    scored, silent = make(), make()
    c = _Check("scoring_has_no_side_effect", scored)
    for t, x in enumerate(stream):
        s1 = scored.score_one(x)
        s2 = scored.score_one(x)
        c.require(s1 == s2 or (math.isnan(s1) and math.isnan(s2)),
                  f"scoring sample {t} twice gave {s1} then {s2}")
        scored.learn_one(x)
        silent.learn_one(x)  # never scored
    probe = stream[:50]
    got = [scored.score_one(x) for x in probe]
    want = [silent.score_one(x) for x in probe]
    c.require(got == want, "a detector that scored every sample scores differently from one that "
              f"only learnt them: {got[:3]}... != {want[:3]}...")
    c.require(scored.snapshot() == silent.snapshot(),
              "scoring changed the snapshot (state) of the detector")


def check_score_independent_of_learning(make: DetectorFactory, stream: Sequence[Features]) -> None:
    """The prequential score of ``x_t`` equals the score of a twin that has not seen ``x_t``."""
    det, twin = make(), make()
    c = _Check("score_independent_of_learning", det)
    for t, x in enumerate(stream):
        s = det.score_one(x)
        other = twin.score_one(x)
        c.require(s == other, f"sample {t} scored {s}, its twin scored {other}")
        det.learn_one(x)
        twin.learn_one(x)


def check_clone_is_fresh(make: DetectorFactory, stream: Sequence[Features]) -> None:
    """A clone is unfitted, shows the same ``repr``, and learning it leaves the original untouched."""
    original = make()
    c = _Check("clone_is_fresh", original)
    k = len(stream) * 5 // 8
    prequential(original, stream[:k])
    probe = stream[k : k + len(stream) // 8]
    before = [original.score_one(x) for x in probe]
    state = original.snapshot()

    clone = original.clone()
    c.require(type(clone) is type(original), f"clone() returned a {type(clone).__name__}")
    c.require(repr(clone) == repr(original), f"clone's repr {clone!r} != {original!r}")
    c.same_runs(prequential(clone, stream), prequential(make(), stream),
                "a clone of a fitted detector is not fresh (differs from a new detector)")
    c.require([original.score_one(x) for x in probe] == before,
              "learning the clone changed the original's scores")
    c.require(original.snapshot() == state, "learning the clone changed the original's state")


def check_clone_keeps_parameters(make: DetectorFactory, stream: Sequence[Features]) -> None:
    """``clone(seed=...)`` changes the seed and nothing else."""
    det = make()
    c = _Check("clone_keeps_parameters", det)
    other = det.clone(seed=det.seed + 1)
    c.require(other.seed == det.seed + 1, f"clone(seed={det.seed + 1}) has seed {other.seed}")
    back = other.clone(seed=det.seed)
    c.require(repr(back) == repr(det), f"reseeded twice, {back!r} != {det!r}")


def check_snapshot_round_trip(make: DetectorFactory, stream: Sequence[Features]) -> None:
    """``type(det).restore(det.snapshot())`` continues exactly as ``det`` does."""
    det = make()
    c = _Check("snapshot_round_trip", det)
    restore = _restore(c, det)
    k = len(stream) * 11 // 20
    prequential(det, stream[:k])
    restored = restore(det.snapshot())
    c.same_runs(prequential(restored, stream[k:]), prequential(det, stream[k:]),
                f"restored after {k} samples, it does not continue as the original")


def check_flags_are_severities(make: DetectorFactory, stream: Sequence[Features]) -> None:
    """Scores are floats and never NaN; flags are ``None`` or one of the severities."""
    det = make()
    c = _Check("flags_are_severities", det)
    for t, (s, sev) in enumerate(prequential(det, stream)):
        c.require(sev is None or sev in SEVERITIES, f"sample {t} flagged {sev!r}, not one of {SEVERITIES}")
        c.require(isinstance(s, float) and not math.isnan(s), f"sample {t} scored {s!r}, not a float")


def check_restore_rejects_another_type(make: DetectorFactory, stream: Sequence[Features]) -> None:
    """``restore`` raises :class:`~cryptolab.errors.ValidationError` on another detector's snapshot."""
    det = make()
    c = _Check("restore_rejects_another_type", det)
    restore = _restore(c, det)
    other = RuleDetector() if not isinstance(det, RuleDetector) else RobustZScoreDetector()
    try:
        restored = restore(other.snapshot())
    except ValidationError:
        return
    except Exception as exc:
        c.require(False, f"restoring a {type(other).__name__} raised {exc!r}, not ValidationError")
    else:
        c.require(False, f"restoring a {type(other).__name__} snapshot gave {restored!r}")


#: The contract, in the order :func:`check_detector` runs it.
CHECKS: Final[dict[str, Callable[[DetectorFactory, Sequence[Features]], None]]] = {
    "protocol": check_protocol,
    "deterministic": check_deterministic,
    "scoring_has_no_side_effect": check_scoring_has_no_side_effect,
    "score_independent_of_learning": check_score_independent_of_learning,
    "clone_is_fresh": check_clone_is_fresh,
    "clone_keeps_parameters": check_clone_keeps_parameters,
    "snapshot_round_trip": check_snapshot_round_trip,
    "flags_are_severities": check_flags_are_severities,
    "restore_rejects_another_type": check_restore_rejects_another_type,
}


def check_detector(make: DetectorFactory, stream: Sequence[Features] | None = None) -> list[str]:
    """Run the whole detector contract on detectors made by ``make``.

    Parameters
    ----------
    make
        Returns a fresh detector each call (a detector class, a ``lambda``...).
    stream
        Features to run on (default :func:`contract_stream`); at least 100
        samples, so warm-ups end and the detector is really exercised.

    Returns
    -------
    list[str]
        The names of the checks passed (every key of :data:`CHECKS`).

    Raises
    ------
    AssertionError
        On the first broken promise, naming the detector, the check and the
        first sample where it broke.
    """
    xs = contract_stream() if stream is None else list(stream)
    if len(xs) < 100:
        raise ValidationError("stream", f"need at least 100 samples, got {len(xs)}")
    for check in CHECKS.values():
        check(make, xs)
    return list(CHECKS)
