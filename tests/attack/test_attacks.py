"""The registry's newer attacks run for real on a mini model: PGD, DeepFool, C&W L2, HopSkipJump.

Each runs on a handful of samples the model classifies correctly (a few seconds on one core).
What they report is checked against the model itself, evaluated without Foolbox: the float
adversarials through the zoo model's own normalisation and forward pass.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.attack.attacks import FoolboxModel, adversarial_starts
from harness.attack.registry import make_attack
from harness.zoo import registry

EPS = 4 / 255
N = 8


def float_predict(model, images01: np.ndarray) -> np.ndarray:
    """The model's labels for float [0, 1] images: its normalisation applied by hand, then its
    own forward pass (the path ZooModel.predict takes for uint8 images, without the rounding)."""
    norm = model.spec.normalization
    x = images01.astype(np.float32) * np.float32(255.0)
    if norm.channel_order == "BGR":
        x = x[..., ::-1]
    x = (x * np.float32(norm.scale) - np.asarray(norm.mean, np.float32)) / np.asarray(norm.std, np.float32)
    if norm.layout == "NCHW":
        x = x.transpose(0, 3, 1, 2)
    return model._forward(np.ascontiguousarray(x, np.float32)).argmax(axis=1)


def correctly_classified(model, fashion_test, n=N, offset=0):
    images, labels = fashion_test.images[:300], fashion_test.labels[:300]
    ok = np.flatnonzero(model.predict(images) == labels)[offset:offset + n]
    return images[ok].astype(np.float32) / 255.0, labels[ok].astype(np.int64)


@pytest.fixture(scope="module")
def torch_case(fashion_test):
    model = registry.load("mini", "pytorch", "mobilenet_v2")
    return model, FoolboxModel(model), *correctly_classified(model, fashion_test)


@pytest.fixture(scope="module")
def tf_case(fashion_test):
    model = registry.load("mini", "tensorflow", "mobilenet_v2")
    return model, FoolboxModel(model), *correctly_classified(model, fashion_test)


def linf(a, b):
    return np.abs(a - b).reshape(len(a), -1).max(axis=1)


def l2(a, b):
    return np.linalg.norm((a - b).reshape(len(a), -1), axis=1)


def check_output(out, images01, model, budget=None, norm=linf):
    """Adversarials in bounds, within the budget, and reported successes really misclassified."""
    adv = out.adversarials
    assert adv.shape == images01.shape and adv.dtype == np.float32
    assert adv.min() >= 0.0 and adv.max() <= 1.0
    if budget is not None:
        assert norm(adv, images01).max() <= budget + 1e-5, norm(adv, images01)
    labels_now = float_predict(model, adv)
    return labels_now


def test_pgd_stays_in_its_ball_fools_some_and_its_random_start_is_seeded(torch_case):
    model, fmodel, images, labels = torch_case
    pgd = make_attack("pgd", {"eps": EPS, "steps": 10, "rel_stepsize": 0.25})
    assert pgd.params["random_start"] is True  # the schema's default, recorded with the parameters
    out = pgd.run(fmodel, images, labels, seed=3)
    predicted = check_output(out, images, model, EPS)
    np.testing.assert_array_equal(out.success, predicted != labels)
    assert 0 < out.success.sum(), "PGD at 4/255 fooled nothing: is eps wired in?"
    again = pgd.run(fmodel, images, labels, seed=3)
    other = pgd.run(fmodel, images, labels, seed=4)
    assert again.adversarials.tobytes() == out.adversarials.tobytes()  # seeded through model.seed
    assert other.adversarials.tobytes() != out.adversarials.tobytes()  # the start is random


def test_pgd_without_random_start_is_exactly_bim(torch_case):
    model, fmodel, images, labels = torch_case
    params = {"eps": EPS, "steps": 5, "rel_stepsize": 0.2}
    pgd = make_attack("pgd", {**params, "random_start": False}).run(fmodel, images, labels, seed=0)
    bim = make_attack("bim", params).run(fmodel, images, labels, seed=0)
    assert pgd.adversarials.tobytes() == bim.adversarials.tobytes()


def test_deepfool_is_bounded_by_eps_and_its_successes_are_real(tf_case):
    model, fmodel, images, labels = tf_case
    out = make_attack("deepfool", {"eps": EPS, "steps": 20}).run(fmodel, images, labels, seed=0)
    predicted = check_output(out, images, model, EPS)
    np.testing.assert_array_equal(out.success, predicted != labels)
    assert out.success.any()
    tiny = make_attack("deepfool", {"eps": 0.5 / 255, "steps": 20}).run(fmodel, images, labels, seed=0)
    assert tiny.success.sum() <= out.success.sum() and linf(tiny.adversarials, images).max() <= 0.5 / 255 + 1e-6


def test_carlini_wagner_stays_in_its_l2_budget_and_fools_some(torch_case):
    model, fmodel, images, labels = torch_case
    out = make_attack("cw", {"eps": 1.0, "binary_search_steps": 3, "steps": 30}).run(fmodel, images, labels, seed=0)
    predicted = check_output(out, images, model, 1.0, norm=l2)
    np.testing.assert_array_equal(out.success, predicted != labels)
    assert out.success.any()
    assert np.median(l2(out.adversarials, images)[out.success]) < 1.0  # it minimises: not all at the budget


def test_carlini_wagner_that_finds_nothing_returns_the_clean_images(torch_case):
    """Foolbox's C&W leaves an all-zero placeholder where it found nothing; projected onto the
    budget that would be a step towards black the attack never chose."""
    model, fmodel, images, labels = torch_case
    cw = make_attack("cw", {"eps": 1.0, "binary_search_steps": 1, "steps": 2, "initial_const": 1e-6,
                            "abort_early": False})
    out = cw.run(fmodel, images, labels, seed=0)
    assert not out.success.any()
    assert out.adversarials.tobytes() == images.tobytes()


def test_hopskipjump_reports_only_real_successes(torch_case):
    model, fmodel, images, labels = torch_case
    hsj = make_attack("hsj", {"steps": 3, "initial_gradient_eval_steps": 10, "max_gradient_eval_steps": 20,
                              "init_directions": 20, "init_retries": 2})
    out = hsj.run(fmodel, images, labels, seed=0)
    predicted = check_output(out, images, model)
    assert out.success.any()
    assert np.all(predicted[out.success] != labels[out.success])
    np.testing.assert_array_equal(out.success, predicted != labels)
    started = np.setdiff1d(np.arange(len(images)), out.failed_init)
    # HopSkipJump walks from its adversarial start towards the clean image and stays adversarial
    assert np.all(out.success[started])


def test_a_sample_without_a_starting_point_is_reported_and_returned_unchanged(torch_case, fashion_test):
    """The start search Boundary and HopSkipJump share: samples of the class uniform noise lands in
    get no start from one noise direction; they are retried, then reported in failed_init."""
    model, fmodel, _, _ = torch_case
    noise_class = np.bincount(float_predict(model, np.random.default_rng(0).random((64, 32, 32, 3),
                                                                                   np.float32))).argmax()
    images = fashion_test.images[:300]
    rows = np.flatnonzero((fashion_test.labels[:300] == noise_class) & (model.predict(images) == noise_class))[:4]
    assert len(rows) >= 2, "no correctly classified samples of the noise's class"
    images01, labels = images[rows].astype(np.float32) / 255.0, fashion_test.labels[:300][rows].astype(np.int64)
    starts, pending = adversarial_starts(fmodel, images01, labels, seed=0, directions=1, retries=0)
    assert len(pending), "one noise direction found a start for every sample of the noise's own class"
    assert starts[pending].tobytes() == images01[pending].tobytes()
    hsj = make_attack("hsj", {"steps": 1, "initial_gradient_eval_steps": 5, "max_gradient_eval_steps": 5,
                              "init_directions": 1, "init_retries": 0})
    out = hsj.run(fmodel, images01, labels, seed=0)
    np.testing.assert_array_equal(out.failed_init, pending)
    assert out.adversarials[pending].tobytes() == images01[pending].tobytes()
    assert not out.success[pending].any()
    more, still = adversarial_starts(fmodel, images01, labels, seed=0, directions=20, retries=3)
    assert len(still) < len(pending)  # more directions and retries find starts the single one did not
    assert np.all(float_predict(model, more[np.setdiff1d(np.arange(len(rows)), still)])
                  != labels[np.setdiff1d(np.arange(len(rows)), still)])


class NumPyInterfaceModel:
    """The FoolboxModel interface over plain NumPy (Foolbox's NumPyModel around the zoo model's own
    forward pass): no framework tensors anywhere, as a model queried through a runtime would be."""

    framework = "numpy"

    def __init__(self, model):
        import foolbox

        self.fmodel = foolbox.models.NumPyModel(lambda x: self._logits(model, x), bounds=(0, 1))

    @staticmethod
    def _logits(model, x):
        norm = model.spec.normalization
        z = (np.asarray(x, np.float32) * np.float32(255 * norm.scale) - np.asarray(norm.mean, np.float32)) \
            / np.asarray(norm.std, np.float32)
        return model._forward(np.ascontiguousarray(z.transpose(0, 3, 1, 2) if norm.layout == "NCHW" else z))

    def tensors(self, images01, labels):
        return np.ascontiguousarray(images01, np.float32), np.asarray(labels, np.int64)

    def to_numpy(self, tensor):
        return np.ascontiguousarray(np.asarray(tensor), np.float32)

    def seed(self, seed):
        np.random.seed(seed)  # eagerpy's NumPy backend draws from NumPy's global generator


@pytest.mark.parametrize("attack, params", [
    ("hsj", {"steps": 2, "initial_gradient_eval_steps": 10, "max_gradient_eval_steps": 10, "init_directions": 20,
             "init_retries": 1}),
    ("boundary", {"steps": 20, "spherical_step": 0.01, "source_step": 0.01, "init_directions": 20, "init_retries": 1}),
])
def test_decision_attacks_need_only_the_foolbox_model_interface(torch_case, attack, params):
    model, _, images, labels = torch_case
    out = make_attack(attack, params).run(NumPyInterfaceModel(model), images[:4], labels[:4], seed=0)
    predicted = check_output(out, images[:4], model)
    np.testing.assert_array_equal(out.success, predicted != labels[:4])
    assert out.success.any()
