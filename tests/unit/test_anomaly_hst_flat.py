"""The flat HalfSpaceTrees is River's HalfSpaceTrees, bit for bit, in a fraction of the memory."""

from __future__ import annotations

import gc
import random
import tracemalloc

from hypothesis import given, settings
from hypothesis import strategies as st
from river import anomaly

from cryptolab.anomaly.detectors import HalfSpaceTreesDetector, _FlatHalfSpaceTrees

FEATURES = ("body", "range", "ret")


def stream(seed: int, n: int, missing: float) -> list[dict[str, float]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        x = {"ret": rng.random(), "body": rng.random() ** 3, "range": min(1.0, rng.expovariate(4))}
        if rng.random() < missing:
            del x[rng.choice(FEATURES)]
        out.append(x)
    return out


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_trees=st.integers(1, 12),
    height=st.integers(1, 7),
    window=st.integers(2, 40),
    missing=st.sampled_from([0.0, 0.1]),
)
def test_scores_equal_rivers_to_the_last_bit(seed: int, n_trees: int, height: int, window: int,
                                              missing: float) -> None:
    river_hst = anomaly.HalfSpaceTrees(n_trees=n_trees, height=height, window_size=window, seed=seed)
    flat = _FlatHalfSpaceTrees(n_trees, height, window, seed)
    xs = [{"ret": 0.5, "body": 0.5, "range": 0.5}, *stream(seed, 4 * window + 50, missing)]
    for x in xs:  # prequential: score, then learn
        a, b = river_hst.score_one(x), flat.score_one(x)
        assert (a, type(a)) == (b, type(b))
        river_hst.learn_one(x)
        flat.learn_one(x)
    assert flat._first_window is river_hst._first_window is False
    assert flat.counter == river_hst.counter


def test_missing_features_follow_the_heavier_child_as_river_does() -> None:
    river_hst = anomaly.HalfSpaceTrees(n_trees=5, height=3, window_size=5, seed=9)
    flat = _FlatHalfSpaceTrees(5, 3, 5, 9)
    for x in stream(1, 30, 0.0):
        river_hst.learn_one(x)
        flat.learn_one(x)
    for partial in ({}, {"ret": 0.9}, {"body": 0.01, "range": 0.99}):
        assert flat.score_one(partial) == river_hst.score_one(partial)
        river_hst.learn_one(partial)
        flat.learn_one(partial)
    probe = {"ret": 0.2, "body": 0.3, "range": 0.4}
    assert flat.score_one(probe) == river_hst.score_one(probe)


def _traced_kib(make, xs) -> float:  # type: ignore[no-untyped-def]
    gc.collect()
    tracemalloc.start()
    models = [make(i) for i in range(20)]
    for m in models:
        for x in xs:
            m.score_one(x)
            m.learn_one(x)
    gc.collect()
    current, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return current / 20 / 1024


def test_a_warm_model_takes_under_a_fifth_of_rivers_memory() -> None:
    xs = stream(3, 200, 0.0)
    rivers = _traced_kib(lambda i: anomaly.HalfSpaceTrees(n_trees=10, height=4, window_size=10, seed=i), xs)
    flats = _traced_kib(lambda i: _FlatHalfSpaceTrees(10, 4, 10, i), xs)
    assert flats < rivers / 5, (flats, rivers)


def test_detector_still_scales_resets_and_flags_a_crash() -> None:
    det = HalfSpaceTreesDetector(seed=4)
    rng = random.Random(4)
    for _ in range(300):
        m = rng.gauss(0, 0.001)
        f = {"ret": m, "body": m, "range": abs(m) + 0.001}
        det.learn_one(f)
    assert isinstance(det.model.hst, _FlatHalfSpaceTrees)
    crash = {"ret": -0.08, "body": -0.08, "range": 0.09}
    calm = {"ret": 0.0002, "body": 0.0002, "range": 0.0012}
    assert det.score_one(crash) > det.score_one(calm)
    assert det.flag(det.score_one(crash)) is not None
