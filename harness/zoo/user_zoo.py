"""The ``user`` zoo: a run's own model files (``--model``) as a zoo the study runs like the others.

The files are not converted: each *is* a deployment (framework, model, quantization,
runtime), read off the file by :mod:`harness.zoo.user`. What the matrix holds follows
from what was given (:meth:`UserZoo.keeps`):

* every file runs the profile's **direct** attacks on every mobile platform: attacks that
  query the file's own runtime (``direct_<attack>`` cases);
* with ``--source-model``, the PC model also runs the profile's **transfer** attacks: the
  PNGs it yields are measured on the ``pc`` platform and on every file, as for the zoos.

The reference the agreement gates compare with is the source model on the PC when there
is one, and otherwise the file itself in this host's runtime (platform ``mobile``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.zoo.base import NATIVE_RUNTIMES, ZooError

ZOO = "user"


class DeployedReference:
    """A model file without a source model, in the role of the study's reference model: the
    file in this host's runtime, with the ``ZooModel`` interface the sample selection uses."""

    def __init__(self, user_model):
        self.user_model = user_model
        self.spec = user_model.spec
        self.weights_path = user_model.path
        self.weights_digest = user_model.digest
        self.module = None
        self._runtime = None

    def predict_logits(self, images: np.ndarray, batch_size: int = 250) -> np.ndarray:
        if self._runtime is None:
            self._runtime = self.user_model.open("mobile")
        return self._runtime.predict_logits(images)

    def predict(self, images: np.ndarray, batch_size: int = 250) -> np.ndarray:
        return self.predict_logits(images, batch_size).argmax(axis=1)


@dataclass(frozen=True)
class UserArtifact:
    """A user's model file where the study expects a converted artefact: the same fields the
    runtimes, records and fingerprints read from :class:`harness.convert.MobileArtifact`."""

    spec: object
    quantization: str
    format: str
    path: Path
    key: str  # the file's SHA-256: what the runner caches and the fingerprint compare by
    size_bytes: int
    metadata: dict = field(default_factory=dict)

    @property
    def artifact(self):  # MobileArtifact.artifact.metadata, read for the converter versions
        return self

    @property
    def built(self) -> bool:
        return False


class UserZoo:
    """The models of one run's ``--model`` files, behind the zoo interface of
    :mod:`harness.zoo.registry` (``COMBINATIONS``, ``DEPLOYMENTS``, ``spec``, ``load``,
    ``weights_path``) plus what only this zoo has (``keeps``, ``artifact``)."""

    def __init__(self, inputs):
        self.inputs = inputs
        self.models = list(inputs.models)
        if not self.models:
            raise ZooError("the user zoo needs at least one --model file")

    # -- the zoo interface --------------------------------------------------------------------
    @property
    def COMBINATIONS(self) -> list[tuple[str, str]]:  # noqa: N802  (the zoo modules' constant)
        return list(dict.fromkeys((m.spec.framework, m.spec.name) for m in self.models))

    @property
    def DEPLOYMENTS(self) -> list[tuple[str, str, tuple[str, ...]]]:  # noqa: N802
        out = []
        for framework, name in self.COMBINATIONS:
            runtimes = tuple(dict.fromkeys(m.runtime for m in self._named(framework, name)))
            native = NATIVE_RUNTIMES[framework]
            out.append((framework, name, tuple(sorted(runtimes, key=lambda r: r != native))))
        return out

    def _named(self, framework: str, name: str) -> list:
        found = [m for m in self.models if (m.spec.framework, m.spec.name) == (framework, name)]
        if not found:
            raise ZooError(f"no --model file is {ZOO}/{framework}/{name}; the files given are "
                           f"{[str(m.path) for m in self.models]}")
        return found

    def deployed_files(self, framework: str, name: str) -> list:
        """The files of this name, in the order given."""
        return self._named(framework, name)

    def source(self, framework: str, name: str):
        """The PC model the files of this name came from (``--source-model``), or None."""
        return next((m.source for m in self._named(framework, name) if m.source is not None), None)

    def spec(self, framework: str, name: str):
        source = self.source(framework, name)
        return source.spec if source is not None else self._named(framework, name)[0].spec

    def load(self, framework: str, name: str):
        """The reference model: the source model when given, else the first file on this host."""
        source = self.source(framework, name)
        return source if source is not None else DeployedReference(self._named(framework, name)[0])

    def weights_path(self, framework: str, name: str) -> Path:
        source = self.source(framework, name)
        return Path(source.weights_path) if source is not None else self._named(framework, name)[0].path

    # -- what only this zoo has -----------------------------------------------------------------
    def deployed(self, framework: str, name: str, quantization: str, runtime: str | None):
        """The file that is this deployment, or None (a file holds one quantization and one runtime)."""
        runtime = runtime or NATIVE_RUNTIMES[framework]
        return next((m for m in self._named(framework, name) if (m.quantization, m.runtime) == (quantization, runtime)),
                    None)

    def keeps(self, framework: str, name: str, direct: bool, quantization: str, platform: str,
              runtime: str | None) -> bool:
        """Whether the matrix holds this case: pc cases need a source model and run transfer
        attacks only; a mobile case needs a file of that quantization and runtime, and a
        transfer attack needs the source model that makes its PNGs."""
        has_source = self.source(framework, name) is not None
        if platform == "pc":
            return has_source and not direct and quantization == "float"
        return self.deployed(framework, name, quantization, runtime) is not None and (direct or has_source)

    def artifact(self, framework: str, name: str, quantization: str, runtime: str | None) -> UserArtifact:
        model = self.deployed(framework, name, quantization, runtime)
        if model is None:
            raise ZooError(f"no --model file is the {quantization} {runtime or NATIVE_RUNTIMES[framework]} "
                           f"deployment of {ZOO}/{framework}/{name}")
        return UserArtifact(model.spec, model.quantization, model.format, Path(model.path), model.digest,
                            Path(model.path).stat().st_size, {"versions": {}, "user_model": model.describe()})

    def describe(self) -> dict:
        return self.inputs.describe()
