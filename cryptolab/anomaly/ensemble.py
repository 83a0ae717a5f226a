"""``ensemble``: flag a candle only when every member detector flags it.

Examples
--------
>>> ens = EnsembleDetector()
>>> [m.name for m in ens.members], ens.policy
(['zscore', 'hst'], FixedThreshold(low=1.0, medium=2.0, high=3.0))
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

from cryptolab.anomaly.base import BaseDetector, Severity
from cryptolab.anomaly.hst import HalfSpaceTreesDetector
from cryptolab.anomaly.thresholds import FixedThreshold
from cryptolab.anomaly.zscore import RobustZScoreDetector
from cryptolab.errors import ValidationError

__all__ = ["EnsembleDetector"]


class EnsembleDetector(BaseDetector):
    """Flag a candle only when every member flags it (a unanimous vote).

    The members learn every candle as they would alone. Each member's score
    is turned into a *level* (:meth:`BaseDetector.level`): 1, 2 or 3 for a
    LOW, MEDIUM or HIGH flag, and the fraction of the member's current
    threshold below that. The ensemble's score is the smallest member level,
    so it flags (at the lowest member severity) exactly when all members do:
    its ``policy`` is ``FixedThreshold(1, 2, 3)`` on that level.

    Parameters
    ----------
    members
        Detectors (default: a :class:`RobustZScoreDetector` and a
        :class:`HalfSpaceTreesDetector` with their default parameters).
    name, seed
        Detector name; seed (each member gets a seed derived from it and its name).

    Examples
    --------
    >>> ens = EnsembleDetector()
    >>> [m.name for m in ens.members]
    ['zscore', 'hst']
    >>> ens.flag(0.97), ens.flag(1.0), ens.flag(3.0)
    (None, 'LOW', 'HIGH')
    """

    _params = ("members", "name")
    #: LOW, MEDIUM, HIGH at member levels 1, 2, 3 (stateless: shared by every ensemble).
    policy: ClassVar[FixedThreshold] = FixedThreshold(1.0, 2.0, 3.0)

    def __init__(
        self,
        *,
        members: Sequence[BaseDetector] | None = None,
        name: str = "ensemble",
        seed: int = 0,
    ) -> None:
        self.name = name
        self.seed = seed
        if members is None:
            members = (RobustZScoreDetector(), HalfSpaceTreesDetector())
        if not members:
            raise ValidationError("members", "need at least one member detector")
        names = [m.name for m in members]
        if len(set(names)) != len(names):
            raise ValidationError("members", f"member names must be unique, got {names}")
        self.members: list[BaseDetector] = [
            m.clone(seed=zlib.crc32(f"{seed}|{m.name}".encode())) for m in members
        ]
        self._shared: set[int] = set()

    def bind(self, siblings: Iterable[BaseDetector]) -> int:
        """Use ``siblings`` as members where they match (same class, name and parameters).

        :class:`~cryptolab.anomaly.AnomalyScorer` runs each detector of a
        stream once per candle: an ensemble over ``zscore`` and ``hst`` next to
        standalone ``zscore`` and ``hst`` detectors reuses their scores
        instead of keeping private copies. A bound member is learnt by its
        owner, not by the ensemble, so every detector must be scored before any
        learns (the scorer does). Returns how many members were bound.
        """
        by_name = {d.name: d for d in siblings if d is not self}
        n = 0
        for i, m in enumerate(self.members):
            s = by_name.get(m.name)
            if (s is not None and type(s) is type(m) and not isinstance(m, EnsembleDetector)
                    and s.params() == m.params()):
                self.members[i] = s
                self._shared.add(i)
                n += 1
        return n

    def params(self) -> dict[str, Any]:
        """The constructor parameters: fresh (unfitted) clones of the members, and the name."""
        return {"members": [m.clone() for m in self.members], "name": self.name}

    def score_one(self, x: Mapping[str, float]) -> float:
        """The smallest member level (>= 1 when every member flags ``x``)."""
        return min(m.level(m.score_one(x)) for m in self.members)

    def flag(self, score: float) -> Severity | None:
        """LOW, MEDIUM or HIGH when the smallest member level is 1, 2 or 3."""
        return self.policy.severity(score)

    def learn_one(self, x: Mapping[str, float]) -> None:
        """Every member learns ``x`` (bound members are learnt by their owner)."""
        for i, m in enumerate(self.members):
            if i not in self._shared:
                m.learn_one(x)
