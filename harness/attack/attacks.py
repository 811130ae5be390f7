"""The attacks, as small classes over Foolbox 3.

Each attack runs on the PC float model through Foolbox, with the model's own
preprocessing (``Normalization.foolbox()``) and bounds (0, 1), on NHWC [0, 1]
images; labels are int64 (Foolbox's TensorFlow path breaks under NumPy 2 when label
and prediction dtypes differ). ``run`` returns the raw adversarial images, still in
floating point: rounding to uint8 is the PNG stage's job, and part of the measurement.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from harness.attack.profiles import ATTACKS, ProfileError
from harness.frameworks import import_tensorflow, import_torch
from harness.zoo.base import ZooModel
from harness.zoo.frameworks import ADAPTERS, channels_last_module


class AttackError(ValueError):
    pass


@dataclass
class AttackOutput:
    adversarials: np.ndarray  # float32 NHWC in [0, 1]
    success: np.ndarray  # bool: misclassified by the PC float model, before any rounding
    failed_init: np.ndarray  # row indices whose attack could not even start (Boundary)


class FoolboxModel:
    """A ZooModel seen through Foolbox: NHWC [0, 1] numpy in, framework tensors inside."""

    def __init__(self, model: ZooModel):
        import foolbox

        self.model = model
        self.framework = model.spec.framework
        preprocessing = model.spec.normalization.foolbox()
        if self.framework == "pytorch":
            self._torch = import_torch()
            self.fmodel = foolbox.PyTorchModel(channels_last_module(model.module.eval()), bounds=(0, 1),
                                               preprocessing=preprocessing, device="cpu")
        else:
            self._tf = import_tensorflow()
            # The traced graph every PC-side caller shares (ADAPTERS["tensorflow"].graph):
            # Boundary makes thousands of small calls, and eager dispatch made it ~3x slower.
            self.fmodel = foolbox.TensorFlowModel(ADAPTERS["tensorflow"].graph(model.module), bounds=(0, 1),
                                                  preprocessing=preprocessing)

    def tensors(self, images01: np.ndarray, labels: np.ndarray):
        images01 = np.ascontiguousarray(images01, dtype=np.float32)
        labels = np.asarray(labels, dtype=np.int64)
        if self.framework == "pytorch":
            return (self._torch.from_numpy(images01.transpose(0, 3, 1, 2).copy()),
                    self._torch.from_numpy(labels))
        return self._tf.constant(images01), self._tf.constant(labels)

    def to_numpy(self, tensor) -> np.ndarray:
        array = tensor.numpy() if hasattr(tensor, "numpy") else np.asarray(tensor)
        if self.framework == "pytorch":
            array = array.transpose(0, 2, 3, 1)
        return np.ascontiguousarray(array, dtype=np.float32)

    def seed(self, seed: int) -> None:
        """Seed the backend RNG that Foolbox's random draws (eagerpy) use."""
        if self.framework == "pytorch":
            self._torch.manual_seed(seed)
        else:
            self._tf.random.set_seed(seed)


class Attack:
    """Base class: a name, its parameters (the cache key uses them), and ``run``."""

    name: str = ""

    def __init__(self, **params):
        self.params = params

    def run(self, model: FoolboxModel, images01: np.ndarray, labels: np.ndarray, seed: int) -> AttackOutput:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v}' for k, v in self.params.items())})"


class FGSM(Attack):
    """Fast gradient sign method, L-inf (``foolbox.attacks.LinfFastGradientAttack``)."""

    name = "fgsm"

    def run(self, model, images01, labels, seed):
        import foolbox

        x, y = model.tensors(images01, labels)
        attack = foolbox.attacks.LinfFastGradientAttack(random_start=False)
        _, clipped, success = attack(model.fmodel, x, y, epsilons=float(self.params["eps"]))
        return AttackOutput(model.to_numpy(clipped), np.asarray(success), np.zeros(0, np.int64))


class BIM(Attack):
    """Basic iterative method, L-inf (``foolbox.attacks.LinfBasicIterativeAttack``)."""

    name = "bim"

    def run(self, model, images01, labels, seed):
        import foolbox

        x, y = model.tensors(images01, labels)
        attack = foolbox.attacks.LinfBasicIterativeAttack(
            rel_stepsize=float(self.params["rel_stepsize"]), steps=int(self.params["steps"]), random_start=False)
        _, clipped, success = attack(model.fmodel, x, y, epsilons=float(self.params["eps"]))
        return AttackOutput(model.to_numpy(clipped), np.asarray(success), np.zeros(0, np.int64))


class Boundary(Attack):
    """Decision-based Boundary attack (``foolbox.attacks.BoundaryAttack``).

    It needs an adversarial starting point. Foolbox's default initialisation (blending
    towards uniform noise until misclassified) fails for samples whose class the
    noise never leaves; those are retried up to ``init_retries`` times with new seeds
    and, if they still fail, reported in ``failed_init`` and returned unchanged.
    """

    name = "boundary"

    def run(self, model, images01, labels, seed):
        import foolbox

        init = foolbox.attacks.LinearSearchBlendedUniformNoiseAttack(
            directions=int(self.params["init_directions"]), steps=50)  # steps=50: Foolbox's Boundary default
        starts = images01.copy()
        pending = np.arange(len(images01))
        for attempt in range(int(self.params["init_retries"]) + 1):
            model.seed(seed + attempt)
            xs, ys = model.tensors(images01[pending], labels[pending])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # failures are counted below, not warned
                found = model.to_numpy(init.run(model.fmodel, xs, foolbox.criteria.Misclassification(ys)))
            ok = misclassified(model, found, labels[pending])
            starts[pending[ok]] = found[ok]
            pending = pending[~ok]
            if not len(pending):
                break
        ready = np.setdiff1d(np.arange(len(images01)), pending)
        out = images01.astype(np.float32).copy()
        if len(ready):
            model.seed(seed)
            xs, ys = model.tensors(images01[ready], labels[ready])
            starting, _ = model.tensors(starts[ready], labels[ready])
            attack = foolbox.attacks.BoundaryAttack(
                steps=int(self.params["steps"]), spherical_step=float(self.params["spherical_step"]),
                source_step=float(self.params["source_step"]))
            advs = attack.run(model.fmodel, xs, foolbox.criteria.Misclassification(ys), starting_points=starting)
            out[ready] = model.to_numpy(advs)
        out = np.clip(out, 0.0, 1.0)
        return AttackOutput(out, misclassified(model, out, labels), pending.astype(np.int64))


def misclassified(model: FoolboxModel, images01: np.ndarray, labels: np.ndarray) -> np.ndarray:
    x, _ = model.tensors(images01, labels)
    logits = model.fmodel(x)
    logits = logits.numpy() if hasattr(logits, "numpy") else np.asarray(logits)
    return logits.argmax(axis=1) != labels


ATTACK_CLASSES = {cls.name: cls for cls in (FGSM, BIM, Boundary)}


def make_attack(name: str, params: dict) -> Attack:
    if name not in ATTACK_CLASSES:
        raise ProfileError(f"unknown attack {name!r}; expected one of {ATTACKS}")
    return ATTACK_CLASSES[name](**params)
