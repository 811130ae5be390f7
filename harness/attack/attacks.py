"""The attacks, as small classes over Foolbox 3.

Each attack runs through Foolbox on a model seen through the :class:`FoolboxModel`
interface (``framework``, ``fmodel``, ``tensors()``, ``to_numpy()``, ``seed()``): the PC
float model, with its own preprocessing (``Normalization.foolbox()``) and bounds (0, 1),
or anything else with that interface (a deployed model queried through its runtime).
Images are NHWC [0, 1]; labels are int64 (Foolbox's TensorFlow path breaks under NumPy 2
when label and prediction dtypes differ). ``run`` returns the raw adversarial images,
still in floating point: rounding to uint8 is the PNG stage's job, and part of the
measurement.

An attack class declares everything the rest of the suite needs: its ``name`` (the
matrix ids' attack part), ``kind`` ("gradient": white-box, generated on the PC model and
transferred; "decision": label-only queries; "score": logit queries), a ``title`` for
the report, and its parameter schema (``params``), which profile validation checks.
Registering it (:mod:`harness.attack.registry`) makes it available to every profile.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from harness.attack.params import Bool, Choice, Eps, Float, Int, Param, ParamError, check_params
from harness.frameworks import import_tensorflow, import_torch
from harness.zoo.base import ZooModel
from harness.zoo.frameworks import ADAPTERS, channels_last_module


class AttackError(ValueError):
    pass


@dataclass
class AttackOutput:
    adversarials: np.ndarray  # float32 NHWC in [0, 1]
    success: np.ndarray  # bool: misclassified by the attacked model, before any rounding
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


KINDS = ("gradient", "decision", "score")


class Attack:
    """Base class: what the registry and profiles need to know, and ``run``.

    ``params`` is the schema a profile's table for this attack is checked against
    (:mod:`harness.attack.params`); an instance holds the checked values, defaults
    filled in (the cache key and the fingerprint use them)."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""  # one of KINDS
    title: ClassVar[str] = ""  # how the report writes it, e.g. "FGSM"
    params: ClassVar[dict[str, Param]] = {}

    def __init__(self, **params):
        try:
            self.params = check_params(self.name, self.params, params)
        except ParamError as exc:
            raise AttackError(str(exc)) from None

    def run(self, model: FoolboxModel, images01: np.ndarray, labels: np.ndarray, seed: int) -> AttackOutput:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v}' for k, v in self.params.items())})"


def _no_failed_init() -> np.ndarray:
    return np.zeros(0, np.int64)


class FGSM(Attack):
    """Fast gradient sign method, L-inf (``foolbox.attacks.LinfFastGradientAttack``)."""

    name, kind, title = "fgsm", "gradient", "FGSM"
    params = {"eps": Eps()}

    def run(self, model, images01, labels, seed):
        import foolbox

        x, y = model.tensors(images01, labels)
        attack = foolbox.attacks.LinfFastGradientAttack(random_start=False)
        _, clipped, success = attack(model.fmodel, x, y, epsilons=float(self.params["eps"]))
        return AttackOutput(model.to_numpy(clipped), np.asarray(success), _no_failed_init())


class BIM(Attack):
    """Basic iterative method, L-inf (``foolbox.attacks.LinfBasicIterativeAttack``)."""

    name, kind, title = "bim", "gradient", "BIM"
    params = {"eps": Eps(),
              "steps": Int("iterations"),
              "rel_stepsize": Float("step size as a fraction of eps (Foolbox's default 0.2)")}

    def run(self, model, images01, labels, seed):
        import foolbox

        x, y = model.tensors(images01, labels)
        attack = foolbox.attacks.LinfBasicIterativeAttack(
            rel_stepsize=float(self.params["rel_stepsize"]), steps=int(self.params["steps"]), random_start=False)
        _, clipped, success = attack(model.fmodel, x, y, epsilons=float(self.params["eps"]))
        return AttackOutput(model.to_numpy(clipped), np.asarray(success), _no_failed_init())


class PGD(Attack):
    """Projected gradient descent, L-inf (``foolbox.attacks.LinfProjectedGradientDescentAttack``).

    BIM with a random start inside the eps ball (Madry et al.); the start is drawn from
    the backend's RNG, seeded through ``model.seed`` so a set's bytes are reproducible.
    Defaults are Foolbox's."""

    name, kind, title = "pgd", "gradient", "PGD"
    params = {"eps": Eps(),
              "steps": Int("iterations (Foolbox's default 40)", default=40),
              "rel_stepsize": Float("step size as a fraction of eps (Foolbox's default 0.01/0.3)", default=0.01 / 0.3),
              "random_start": Bool("start from a uniform draw in the eps ball (else from the clean image)",
                                   default=True)}

    def run(self, model, images01, labels, seed):
        import foolbox

        model.seed(seed)
        x, y = model.tensors(images01, labels)
        attack = foolbox.attacks.LinfProjectedGradientDescentAttack(
            rel_stepsize=float(self.params["rel_stepsize"]), steps=int(self.params["steps"]),
            random_start=bool(self.params["random_start"]))
        _, clipped, success = attack(model.fmodel, x, y, epsilons=float(self.params["eps"]))
        return AttackOutput(model.to_numpy(clipped), np.asarray(success), _no_failed_init())


class DeepFool(Attack):
    """DeepFool, L-inf (``foolbox.attacks.LinfDeepFoolAttack``), bounded by ``eps``.

    L-inf rather than L2: it then shares FGSM/BIM/PGD's budget (eps on the [0, 1] pixel
    scale, a whole number of grey levels, intact through the PNG rounding), so its row
    of the report reads against theirs. DeepFool minimises the perturbation; Foolbox
    clips each result to the eps ball, and success is judged on the clipped image."""

    name, kind, title = "deepfool", "gradient", "DeepFool"
    params = {"eps": Eps(),
              "steps": Int("iterations (Foolbox's default 50)", default=50),
              "candidates": Int("most likely classes considered per step (Foolbox's default 10)", low=2, default=10),
              "overshoot": Float("how far past the linearised boundary each step goes (default 0.02)", low=0,
                                 low_open=False, default=0.02),
              "loss": Choice("what DeepFool linearises", ("logits", "crossentropy"), default="logits")}

    def run(self, model, images01, labels, seed):
        import foolbox

        x, y = model.tensors(images01, labels)
        attack = foolbox.attacks.LinfDeepFoolAttack(
            steps=int(self.params["steps"]), candidates=int(self.params["candidates"]),
            overshoot=float(self.params["overshoot"]), loss=self.params["loss"])
        _, clipped, success = attack(model.fmodel, x, y, epsilons=float(self.params["eps"]))
        return AttackOutput(model.to_numpy(clipped), np.asarray(success), _no_failed_init())


class CarliniWagnerL2(Attack):
    """Carlini-Wagner L2 (``foolbox.attacks.L2CarliniWagnerAttack``), bounded by an L2 ``eps``.

    A minimisation attack: it searches for the smallest L2 perturbation that flips the
    label. The profile gives an L2 budget (on the [0, 1] pixel scale, over all H x W x 3
    values) so its success rate means "fooled within this distance", like the L-inf
    attacks', rather than "fooled at any distance" (which a minimisation attack reaches
    on nearly every sample before rounding). Results beyond the budget are projected onto
    it (Foolbox's epsilons). A sample for which no adversarial was found at all comes back
    as the clean image, not Foolbox's all-zero placeholder (which, projected, would be a
    step towards black the attack never chose)."""

    name, kind, title = "cw", "gradient", "C&W L2"
    params = {"eps": Float("L2 budget on the [0, 1] pixel scale, over all H x W x 3 values",
                           expected="a positive L2 distance on the [0, 1] pixel scale"),
              "binary_search_steps": Int("binary search steps over the constant c (Foolbox's default 9)", default=9),
              "steps": Int("optimisation steps per binary search step (Foolbox's default 10000)", default=10000),
              "stepsize": Float("Adam step size (Foolbox's default 0.01)", default=0.01),
              "confidence": Float("logit margin required to count as adversarial (default 0)", low=0,
                                  low_open=False, default=0.0),
              "initial_const": Float("first value of the constant c (Foolbox's default 0.001)", default=0.001),
              "abort_early": Bool("stop a search step when the loss stops falling (default true)", default=True)}

    def run(self, model, images01, labels, seed):
        import foolbox

        x, y = model.tensors(images01, labels)
        attack = foolbox.attacks.L2CarliniWagnerAttack(
            binary_search_steps=int(self.params["binary_search_steps"]), steps=int(self.params["steps"]),
            stepsize=float(self.params["stepsize"]), confidence=float(self.params["confidence"]),
            initial_const=float(self.params["initial_const"]), abort_early=bool(self.params["abort_early"]))
        raw, clipped, success = attack(model.fmodel, x, y, epsilons=float(self.params["eps"]))
        raw = model.to_numpy(raw)
        found = raw.reshape(len(raw), -1).any(axis=1) | ~images01.reshape(len(images01), -1).any(axis=1)
        out = np.where(found[:, None, None, None], model.to_numpy(clipped), images01.astype(np.float32))
        return AttackOutput(np.ascontiguousarray(out, np.float32), np.asarray(success) & found, _no_failed_init())


def adversarial_starts(model: FoolboxModel, images01: np.ndarray, labels: np.ndarray, seed: int,
                       directions: int, retries: int) -> tuple[np.ndarray, np.ndarray]:
    """Misclassified starting points for a decision-based attack: (starts, rows without one).

    Foolbox's default initialisation (``LinearSearchBlendedUniformNoiseAttack``: blend
    towards uniform noise until misclassified) fails for samples whose class the noise
    never leaves; those are retried up to ``retries`` times with new seeds (``seed + attempt``).
    Rows that still have none keep the clean image in ``starts`` and are returned in the
    second array. Only the FoolboxModel interface is used."""
    import foolbox

    init = foolbox.attacks.LinearSearchBlendedUniformNoiseAttack(
        directions=directions, steps=50)  # steps=50: Foolbox's Boundary and HopSkipJump default
    starts = images01.copy()
    pending = np.arange(len(images01))
    for attempt in range(retries + 1):
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
    return starts, pending


class DecisionAttack(Attack):
    """A decision-based attack that walks from a misclassified starting point towards the
    clean image (:func:`adversarial_starts`, parameters ``init_directions``/``init_retries``).

    Rows without a starting point are reported in ``failed_init`` and returned unchanged;
    success is re-judged on the returned (clipped) images. Subclasses give
    :meth:`foolbox_attack`."""

    def foolbox_attack(self):
        raise NotImplementedError

    def run(self, model, images01, labels, seed):
        import foolbox

        starts, pending = adversarial_starts(model, images01, labels, seed, int(self.params["init_directions"]),
                                             int(self.params["init_retries"]))
        ready = np.setdiff1d(np.arange(len(images01)), pending)
        out = images01.astype(np.float32).copy()
        if len(ready):
            model.seed(seed)
            xs, ys = model.tensors(images01[ready], labels[ready])
            starting, _ = model.tensors(starts[ready], labels[ready])
            advs = self.foolbox_attack().run(model.fmodel, xs, foolbox.criteria.Misclassification(ys),
                                             starting_points=starting)
            out[ready] = model.to_numpy(advs)
        out = np.clip(out, 0.0, 1.0)
        return AttackOutput(out, misclassified(model, out, labels), pending.astype(np.int64))


INIT_PARAMS = {
    "init_directions": Int("noise directions tried per attempt to find a misclassified start "
                           "(Foolbox's default 1000)"),
    "init_retries": Int("further attempts, with new seeds, for samples still without a start", low=0),
}


class Boundary(DecisionAttack):
    """Decision-based Boundary attack (``foolbox.attacks.BoundaryAttack``), from the
    starting points of :func:`adversarial_starts`."""

    name, kind, title = "boundary", "decision", "Boundary"
    params = {"steps": Int("steps of the random walk along the boundary"),
              "spherical_step": Float("size of the orthogonal (spherical) step (Foolbox's default 0.01)"),
              "source_step": Float("size of the step towards the clean image (Foolbox's default 0.01)"),
              **INIT_PARAMS}

    def foolbox_attack(self):
        import foolbox

        return foolbox.attacks.BoundaryAttack(
            steps=int(self.params["steps"]), spherical_step=float(self.params["spherical_step"]),
            source_step=float(self.params["source_step"]))


class HopSkipJump(DecisionAttack):
    """Decision-based HopSkipJump (``foolbox.attacks.HopSkipJumpAttack``), from the
    starting points of :func:`adversarial_starts` (shared with Boundary).

    Each step estimates the boundary's gradient from ``initial_gradient_eval_steps *
    sqrt(step)`` label queries (at most ``max_gradient_eval_steps``), then searches the
    step size geometrically and the boundary by bisection. Unbounded, like Boundary:
    it minimises the distance (``constraint``), and the success measured is what
    survives rounding. Its random directions come from the backend's RNG (seeded)."""

    name, kind, title = "hsj", "decision", "HopSkipJump"
    params = {"steps": Int("iterations (Foolbox's default 64)", default=64),
              "initial_gradient_eval_steps": Int("queries for the first gradient estimate (Foolbox's default 100)",
                                                 default=100),
              "max_gradient_eval_steps": Int("most queries for one gradient estimate (Foolbox's default 10000)",
                                             default=10000),
              "gamma": Float("binary search threshold factor (Foolbox's default 1.0)", default=1.0),
              "constraint": Choice("distance minimised", ("l2", "linf"), default="l2"),
              "stepsize_search": Choice("step size search", ("geometric_progression", "grid_search"),
                                        default="geometric_progression"),
              # Foolbox's own start for HopSkipJump: 1000 directions, no retries
              "init_directions": Int(INIT_PARAMS["init_directions"].doc, default=1000),
              "init_retries": Int(INIT_PARAMS["init_retries"].doc, low=0, default=0)}

    def foolbox_attack(self):
        import foolbox

        return foolbox.attacks.HopSkipJumpAttack(
            steps=int(self.params["steps"]), initial_gradient_eval_steps=int(self.params["initial_gradient_eval_steps"]),
            max_gradient_eval_steps=int(self.params["max_gradient_eval_steps"]), gamma=float(self.params["gamma"]),
            constraint=self.params["constraint"], stepsize_search=self.params["stepsize_search"])


def misclassified(model: FoolboxModel, images01: np.ndarray, labels: np.ndarray) -> np.ndarray:
    x, _ = model.tensors(images01, labels)
    logits = model.fmodel(x)
    logits = logits.numpy() if hasattr(logits, "numpy") else np.asarray(logits)
    return logits.argmax(axis=1) != labels
