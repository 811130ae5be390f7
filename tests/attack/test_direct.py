"""Direct attacks against the deployed model: Boundary and Square querying the host's LiteRT
int8 runtime (the mini zoo's converted file), success verified by the runtime itself, every
query counted, distances right, results cached, bad input refused."""

from __future__ import annotations

import numpy as np
import pytest

from harness.attack.attacks import Boundary
from harness.attack.direct import DirectAttackError, RuntimeModel, direct_attack, run_direct
from harness.attack.profiles import load_profile
from harness.attack.square import ScoreMemo, Square
from harness.cache import ArtifactCache
from harness.runtime import Runtime, RuntimeRequest, open_runtime
from tests.convert import support

N = 3
BOUNDARY = load_profile("smoke").attack_params("boundary")
SQUARE = {"eps": 0.1, "max_iter": 60, "p_init": 0.1, "nb_restarts": 1}


class Counting:
    """Mixed into a real runtime's own class: counts the images and calls that reach it."""

    images = calls = 0

    def predict_logits(self, images, batch_size=None):
        self.images += len(images)
        self.calls += 1
        return super().predict_logits(images, batch_size)


def CountingRuntime(inner: Runtime) -> Runtime:
    """A runtime of ``inner``'s own class (same name: the same platform identity) on the same
    file, loaded anew (an interpreter's state is not shared), with a counter."""
    cls = type(type(inner).__name__, (Counting, type(inner)), {})
    return cls(RuntimeRequest("mobile", inner.spec, inner.quantization, inner.threads, artifact=inner.model_path))


@pytest.fixture(scope="module")
def runtime():
    art = support.artifact("tensorflow", "mobilenet_v2", "int8")
    with open_runtime("mobile", artifact=art, quantization="int8") as rt:
        yield rt


@pytest.fixture(scope="module")
def samples():
    ev = support.evaluation()
    return ev.select(ev.ids[:N])


def check_verified(result, runtime, samples):
    """Success is the runtime's verdict on the stored uint8 adversarials, not the attack's flag."""
    predictions = runtime.predict_logits(result.adversarials).argmax(axis=1)
    assert np.array_equal(predictions, result.predictions)
    assert np.array_equal(result.success, predictions != samples.labels)
    diff = (result.adversarials.astype(np.float64) - samples.images) / 255.0
    flat = diff.reshape(len(diff), -1)
    assert np.allclose(result.linf, np.abs(flat).max(axis=1))
    assert np.allclose(result.l2, np.sqrt((flat ** 2).sum(axis=1)))


def test_boundary_fools_the_deployed_int8_model_and_counts_every_query(runtime, samples):
    counting = CountingRuntime(runtime)
    result = run_direct(Boundary(**BOUNDARY), counting, samples.images, samples.labels, seed=0, ids=samples.ids,
                        log=lambda m: None)
    check_verified(result, runtime, samples)
    assert result.success.all(), result.records()
    assert (result.clean_predictions == samples.labels).all()  # really fooled, not already wrong
    # the attack's queries plus two verification queries per sample (clean, final) are all that reached the runtime
    assert counting.images == result.queries.sum() + 2 * N
    assert counting.calls == result.calls.sum() + 2 * N
    assert (result.queries > 0).all() and result.totals["queries"] == result.queries.sum()
    assert result.totals["success_rate"] == 1.0 and list(result.ids) == list(samples.ids)
    assert (result.seconds > 0).all() and (result.query_seconds <= result.seconds).all()
    assert (result.linf > 0).all() and (result.l2 >= result.linf).all()


def test_square_stays_in_its_budget_and_its_success_is_the_runtimes(runtime, samples):
    counting = CountingRuntime(runtime)
    result = run_direct(Square(**SQUARE), counting, samples.images, samples.labels, seed=1, log=lambda m: None)
    check_verified(result, runtime, samples)
    assert result.kind == "score" and result.success.any(), result.records()
    assert (result.linf <= SQUARE["eps"] + 0.5 / 255 + 1e-12).all()  # the budget, plus the rounding to uint8
    assert counting.images == result.queries.sum() + 2 * N
    assert (result.queries <= SQUARE["max_iter"] + 2).all()  # memoised: about one query per iteration


def test_the_score_memo_asks_only_for_unseen_images():
    asked = []

    def query(x):
        asked.append(len(x))
        return x.reshape(len(x), -1)[:, :2] * 2

    memo = ScoreMemo(query)
    x = np.random.default_rng(0).random((4, 2, 2, 3), dtype=np.float32)
    first = memo.predict(x)
    again = memo.predict(np.concatenate([x[2:], x[:1]]))
    assert asked == [4] and np.array_equal(again, first[[2, 3, 0]])


def test_a_warm_run_reads_the_cache_and_queries_nothing(runtime, samples, tmp_path):
    cache = ArtifactCache(tmp_path, log=lambda m: None)
    first = run_direct(Boundary(**BOUNDARY), runtime, samples.images[:1], samples.labels[:1], 0, cache=cache,
                       log=lambda m: None)
    counting = CountingRuntime(runtime)
    again = run_direct(Boundary(**BOUNDARY), counting, samples.images[:1], samples.labels[:1], 0, cache=cache,
                       log=lambda m: None)
    assert again.cached and not first.cached and counting.images == 0
    assert np.array_equal(again.adversarials, first.adversarials) and again.totals == first.totals
    other_seed = run_direct(Boundary(**BOUNDARY), counting, samples.images[:1], samples.labels[:1], 5, cache=cache,
                            log=lambda m: None)
    assert not other_seed.cached and counting.images > 0


def test_the_studys_entry_point_takes_samples_and_a_profiles_parameters(runtime, samples, tmp_path):
    messages = []
    result = direct_attack(runtime, samples.select(samples.ids[:2]), "boundary", BOUNDARY, 0,
                           ArtifactCache(tmp_path, log=lambda m: None), log=messages.append)
    assert list(result.ids) == list(samples.ids[:2]) and result.attack == "boundary"
    assert any("2/2 samples" in m for m in messages)


def test_labels_out_of_range_are_refused_naming_the_label_and_the_classes(runtime, samples):
    labels = samples.labels.copy()
    labels[1] = 10
    with pytest.raises(DirectAttackError, match=r"label 10 \(row 1\) is out of range; the model has 10 classes"):
        run_direct(Boundary(**BOUNDARY), runtime, samples.images, labels, 0)
    with pytest.raises(DirectAttackError, match="out of range"):
        run_direct(Boundary(**BOUNDARY), runtime, samples.images, -samples.labels - 1, 0)
    with pytest.raises(DirectAttackError, match=r"one label per image \(3\)"):
        run_direct(Boundary(**BOUNDARY), runtime, samples.images, samples.labels[:2], 0)


def test_images_of_the_wrong_shape_or_type_are_refused_naming_the_model_file(runtime, samples):
    with pytest.raises(DirectAttackError, match=r"uint8 \(N, 32, 32, 3\).*\(3, 28, 28, 3\)") as info:
        run_direct(Boundary(**BOUNDARY), runtime, samples.images[:, :28, :28], samples.labels, 0)
    assert str(runtime.model_path) in str(info.value)
    with pytest.raises(DirectAttackError, match="float32"):
        run_direct(Boundary(**BOUNDARY), runtime, samples.images.astype(np.float32), samples.labels, 0)


def test_queries_reach_the_runtime_rounded_to_whole_grey_levels(runtime, samples):
    seen = []

    def query(images, *args):
        seen.append(images)
        return runtime.predict_logits(images)

    model = RuntimeModel(runtime, query=query)
    x = samples.images[:2].astype(np.float32) / 255.0 + 0.4 / 255  # rounds back to the clean pixels
    model.fmodel(x)
    assert seen[0].dtype == np.uint8 and np.array_equal(seen[0], samples.images[:2])
    assert model.counter.queries == 2 and model.counter.calls == 1
