"""Sample selection: seeded, machine-independent, and calibration never overlaps evaluation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.data import samples
from harness.data.dataset import DataError, ImageDataset


def test_draw_is_the_same_on_every_machine():
    # PCG64 is specified bit for bit; these ids are what every platform must draw.
    assert samples.draw(np.arange(1000), 5, 0).tolist() == [269, 307, 510, 635, 847]
    assert samples.draw(np.arange(10, 2000, 3), 4, 42).tolist() == [184, 883, 1309, 1546]


@settings(max_examples=60, deadline=None)
@given(st.sets(st.integers(0, 10**6), min_size=1, max_size=300), st.data(), st.integers(0, 2**32 - 1))
def test_draw_is_a_sorted_subset_and_ignores_pool_order(pool, data, seed):
    pool = np.array(sorted(pool))
    n = data.draw(st.integers(1, len(pool)))
    drawn = samples.draw(pool, n, seed)
    assert len(drawn) == n == len(np.unique(drawn))
    assert np.all(np.diff(drawn) > 0) and np.isin(drawn, pool).all()
    np.testing.assert_array_equal(drawn, samples.draw(pool[::-1].copy(), n, seed))


def test_draw_rejects_impossible_counts():
    with pytest.raises(DataError, match="asked for 11 samples but only 10"):
        samples.draw(np.arange(10), 11, 0)
    with pytest.raises(DataError, match="must be positive"):
        samples.draw(np.arange(10), 0, 0)


def _dataset(split: str, n: int = 50) -> ImageDataset:
    rng = np.random.default_rng(1)
    return ImageDataset("toy", split, np.arange(100, 100 + n), rng.integers(0, 255, (n, 4, 4, 3), dtype=np.uint8),
                        rng.integers(0, 3, n).astype(np.int64), ("a", "b", "c"))


class _Oracle:
    """A 'model' that is right exactly on the ids it is given (selection only needs predict)."""

    def __init__(self, dataset: ImageDataset, right_ids, model_id: str):
        self.spec = type("Spec", (), {"id": model_id})()
        self._pred = {bytes(img): (lbl if i in right_ids else (lbl + 1) % 3)
                      for i, img, lbl in zip(dataset.ids, dataset.images, dataset.labels)}

    def predict(self, images):
        return np.array([self._pred[bytes(img)] for img in images])


def test_selection_keeps_only_ids_every_model_gets_right():
    data = _dataset("val")
    a = _Oracle(data, set(range(100, 140)), "a")
    b = _Oracle(data, set(range(120, 150)), "b")
    selection = samples.select_samples(data, [a, b], 10, seed=3)
    assert selection.pool_size == 20 and selection.pool.tolist() == list(range(120, 140))
    assert set(selection.ids) <= set(range(120, 140))
    assert samples.SampleSelection.from_dict(selection.to_dict()).to_dict() == selection.to_dict()
    assert selection.accuracy == {"a": 0.8, "b": 0.6}
    with pytest.raises(DataError, match="asked for 21 evaluation samples but only 20 of 50"):
        samples.select_samples(data, [a, b], 21, seed=3)


def test_calibration_from_the_evaluation_split_excludes_the_samples():
    data = _dataset("val")
    selection = samples.select_samples(data, [_Oracle(data, set(data.ids), "m")], 30, seed=0)
    calibration = samples.calibration_set(data, 20, seed=0, evaluation=selection)
    assert len(calibration) == 20
    assert not set(calibration.ids) & set(selection.ids)
    with pytest.raises(DataError, match="only 20 outside the evaluation samples"):
        samples.calibration_set(data, 21, seed=0, evaluation=selection)
