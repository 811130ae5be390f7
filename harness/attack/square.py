"""A score-based attack: Square (L-inf), from the Adversarial Robustness Toolbox (ART).

Foolbox 3 has no score-based attack; ART's ``SquareAttack`` needs only the model's
scores, through a ``BlackBoxClassifierNeuralNetwork`` over a NumPy predict function, so
it runs against the PC model and against a deployed one (:mod:`harness.attack.direct`)
through the same ``fmodel`` as every other attack. Images are NHWC in [0, 1]; ``eps``
is on that scale, like the transfer attacks'. ART draws from NumPy's and Python's global
RNGs: ``run`` seeds both.

Parameters: ``eps`` (L-inf budget), ``max_iter`` (iterations; each queries every
still-robust image once), ``p_init`` (initial fraction of pixels per square),
``nb_restarts``.
"""

from __future__ import annotations

import random

import numpy as np

from harness.attack.attacks import Attack, AttackOutput
from harness.attack.params import Eps, Float, Int


class Square(Attack):
    """ART's ``SquareAttack`` with the L-inf norm (Andriushchenko et al., 2020)."""

    name, kind, title = "square", "score", "Square"
    params = {"eps": Eps(),
              "max_iter": Int("iterations; each queries every image not yet fooled once"),
              "p_init": Float("initial fraction of the pixels a square covers (ART's default 0.8)", high=1.0, default=0.8),
              "nb_restarts": Int("restarts (ART's default 1)", default=1)}

    def run(self, model, images01, labels, seed):
        from art.attacks.evasion import SquareAttack
        from art.estimators.classification import BlackBoxClassifierNeuralNetwork

        images01 = np.ascontiguousarray(images01, dtype=np.float32)
        labels = np.asarray(labels, dtype=np.int64)

        memo = ScoreMemo(lambda x: _numpy(model.fmodel(model.tensors(x, labels[:0])[0])))
        predict = memo.predict

        num_classes = _num_classes(model, images01[:1], predict)
        classifier = BlackBoxClassifierNeuralNetwork(predict, images01.shape[1:], num_classes, channels_first=False,
                                                     clip_values=(0.0, 1.0))
        attack = SquareAttack(classifier, norm=np.inf, eps=float(self.params["eps"]),
                              max_iter=int(self.params["max_iter"]), p_init=float(self.params["p_init"]),
                              nb_restarts=int(self.params["nb_restarts"]), batch_size=max(1, len(images01)),
                              verbose=False)
        np.random.seed(seed % 2**32)
        random.seed(seed)
        model.seed(seed)
        adversarials = attack.generate(images01, y=np.eye(num_classes, dtype=np.float32)[labels])
        adversarials = np.clip(np.asarray(adversarials, dtype=np.float32), 0.0, 1.0)
        success = predict(adversarials).argmax(axis=1) != labels
        return AttackOutput(adversarials, success, np.zeros(0, np.int64))


class ScoreMemo:
    """Scores of images already queried, by their exact bytes (the most recent ``size``).

    ART's Square asks again for the scores of images it has just queried (the current
    best of each sample, every iteration); an attacker holding those answers does not
    spend queries on them again, so only images never seen reach the model."""

    def __init__(self, query, size: int = 4096):
        self.query = query
        self.size = size
        self.scores: dict[bytes, np.ndarray] = {}

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        keys = [row.tobytes() for row in x]
        missing = [i for i, k in enumerate(keys) if k not in self.scores]
        if missing:
            fresh = self.query(x[missing])
            for i, row in zip(missing, fresh):
                self.scores[keys[i]] = row
            while len(self.scores) > self.size:
                self.scores.pop(next(iter(self.scores)))
        return np.stack([self.scores[k] for k in keys]) if keys else np.zeros((0, 0), np.float32)


def _num_classes(model, probe: np.ndarray, predict) -> int:
    spec = getattr(model, "spec", None) or getattr(getattr(model, "model", None), "spec", None)
    if spec is not None:
        return int(spec.num_classes)
    return int(predict(probe).shape[1])


def _numpy(value) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor from Foolbox's PyTorchModel
        value = value.detach()
    return np.asarray(value.numpy() if hasattr(value, "numpy") else value, dtype=np.float32)
