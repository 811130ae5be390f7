"""The ``imagenet`` zoo: the paper's three models with their published ImageNet weights.

TensorFlow: ``keras.applications`` MobileNetV2, ResNet50 and InceptionV3. PyTorch: the
quantizable variants from ``torchvision.models.quantization``, built in float
(``quantize=False``) with torchvision's float ImageNet weights, so that the same module
can later be fused and statically int8-quantized in eager mode.

Weights come from each framework's own download cache and are read by its own loading
code (torch.hub's ``load_state_dict_from_url`` through the torchvision weights enum;
the ``keras.applications`` builder's ``load_weights`` of the legacy HDF5 file), but
nothing is ever downloaded: when a file is absent, :class:`WeightsUnavailable` names the
file, the folder it belongs in and where it is published. Integrity is checked the way
each framework checks a download (torch.hub: the SHA-256 prefix in the file name; Keras:
the MD5 it pins), because neither checks a file that is already cached.

Both frameworks' models return logits: Keras' softmax head is dropped with
``classifier_activation=None`` (the weights are the same), as
:meth:`ZooModel.predict_logits` promises and gradient attacks need.

PyTorch's InceptionV3 is built with ``transform_input=True``. Its weights were ported
from TensorFlow and expect inputs in TF's (x - 0.5) / 0.5 scaling; the flag converts
torchvision's ImageNet-normalised input to that, and torchvision's own builder switches
it on whenever it loads these weights. The paper's code built the model without it, so
its inputs were scaled wrongly (the paper's Table 1 preprocessing, docs/zoos.md).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from harness.data.preprocessing import IMAGENET_GEOMETRY, Geometry, normalization_for
from harness.frameworks import import_keras, import_torch
from harness.zoo.base import (
    FRAMEWORKS, MODELS, ModelSpec, WeightsUnavailable, ZooError, ZooModel, check_choice, file_digest,
)
from harness.zoo.frameworks import ADAPTERS

ZOO = "imagenet"
NUM_CLASSES = 1000
INPUT_SIZES = {"mobilenet_v2": 224, "resnet50": 224, "inception_v3": 299}

KERAS_BUILDERS = {"mobilenet_v2": "MobileNetV2", "resnet50": "ResNet50", "inception_v3": "InceptionV3"}
TORCH_WEIGHTS = {
    "mobilenet_v2": "MobileNet_V2_Weights.IMAGENET1K_V1",
    "resnet50": "ResNet50_Weights.IMAGENET1K_V1",
    "inception_v3": "Inception_V3_Weights.IMAGENET1K_V1",
}
_KERAS_BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"
# (file name, URL folder, MD5) exactly as keras/src/applications/<model>.py passes them to
# file_utils.get_file(..., cache_subdir="models"); Keras pins no hash for MobileNetV2.
KERAS_WEIGHTS = {
    "mobilenet_v2": ("mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5", "mobilenet_v2/", None),
    "resnet50": ("resnet50_weights_tf_dim_ordering_tf_kernels.h5", "resnet/", "2cb95161c43110f7111970584f804107"),
    "inception_v3": ("inception_v3_weights_tf_dim_ordering_tf_kernels.h5", "inception_v3/",
                     "9a0d58056eeedaa3f26cb7ebd46da564"),
}
_TORCH_HASH_IN_NAME = re.compile(r"-([a-f0-9]*)\.")  # torch.hub.HASH_REGEX


@dataclass(frozen=True)
class PretrainedWeights:
    """One published weights file: its name in the cache, where it is published, its check."""

    framework: str
    model: str
    file_name: str
    url: str
    source: str  # what publishes it, for messages
    md5: str | None = None  # Keras' pinned file_hash
    sha256_prefix: str | None = None  # torch.hub's: the hex in the file name


def spec(framework: str, name: str) -> ModelSpec:
    check_choice("framework", framework, FRAMEWORKS)
    check_choice("imagenet zoo model", name, MODELS)
    return ModelSpec(ZOO, framework, name, INPUT_SIZES[name], NUM_CLASSES, normalization_for(framework, name))


def input_geometry(name: str) -> Geometry:
    """The paper's resize and crop for this model (Table 1)."""
    check_choice("imagenet zoo model", name, MODELS)
    return IMAGENET_GEOMETRY[name]


def build(framework: str, name: str):
    """The full architecture with random weights, as :func:`load` builds it."""
    s = spec(framework, name)
    if framework == "pytorch":
        return _build_torch(name)
    keras = import_keras()
    builder = getattr(keras.applications, KERAS_BUILDERS[name])
    return builder(weights=None, input_shape=(s.input_size, s.input_size, 3), classes=NUM_CLASSES,
                   classifier_activation=None)


def _build_torch(name: str):
    import_torch()
    from torchvision.models import quantization

    if name == "inception_v3":
        # init_weights=True says what the default would be and silences torchvision's warning.
        module = quantization.inception_v3(weights=None, quantize=False, transform_input=True,
                                           aux_logits=False, init_weights=True)
    else:
        module = getattr(quantization, name)(weights=None, quantize=False)
    return module.eval()


def torch_cache_dir() -> Path:
    """torch.hub's checkpoint folder: ``$TORCH_HOME/hub/checkpoints`` (default ``~/.cache/torch``)."""
    torch = import_torch()
    return Path(torch.hub.get_dir()) / "checkpoints"


def keras_cache_dir() -> Path:
    """Keras' model cache, ``$KERAS_HOME/models`` else ``~/.keras/models``, resolved now.

    Keras resolves ``KERAS_HOME`` once, when it is imported; this reads it at call time so
    that a caller (or a test) can point it elsewhere later. The rule is Keras' own
    (``keras/src/backend/config.py``): a home that is not writable falls back to /tmp.
    """
    if "KERAS_HOME" in os.environ:
        return Path(os.environ["KERAS_HOME"]) / "models"
    home = os.path.expanduser("~")
    return Path(home if os.access(home, os.W_OK) else "/tmp") / ".keras" / "models"


def cache_dir(framework: str) -> Path:
    check_choice("framework", framework, FRAMEWORKS)
    return torch_cache_dir() if framework == "pytorch" else keras_cache_dir()


def pretrained_weights(framework: str, name: str) -> PretrainedWeights:
    spec(framework, name)
    if framework == "tensorflow":
        file_name, folder, md5 = KERAS_WEIGHTS[name]
        return PretrainedWeights(framework, name, file_name, _KERAS_BASE_URL + folder + file_name,
                                 f"keras.applications.{KERAS_BUILDERS[name]}(weights='imagenet')", md5=md5)
    import_torch()
    from torchvision.models import get_weight

    url = get_weight(TORCH_WEIGHTS[name]).url
    file_name = os.path.basename(url)
    found = _TORCH_HASH_IN_NAME.search(file_name)
    return PretrainedWeights(framework, name, file_name, url, f"torchvision {TORCH_WEIGHTS[name]}",
                             sha256_prefix=found.group(1) if found else None)


def weights_path(framework: str, name: str, directory: Path | None = None) -> Path:
    """Where :func:`load` looks for the weights (``directory`` overrides the framework's cache)."""
    folder = Path(directory) if directory is not None else cache_dir(framework)
    return folder / pretrained_weights(framework, name).file_name


def load(framework: str, name: str, directory: Path | None = None, check_hash: bool = True) -> ZooModel:
    """The model with its ImageNet weights from the local cache; never downloads.

    Raises :class:`WeightsUnavailable` when the file is absent and :class:`ZooError` when
    it fails its integrity check (``check_hash=False`` skips that) or does not load.
    """
    s = spec(framework, name)
    weights = pretrained_weights(framework, name)
    path = weights_path(framework, name, directory)
    if not path.is_file():
        raise WeightsUnavailable(
            f"{s.id}: ImageNet weights not found at {path}. Put {weights.file_name} in {path.parent} "
            f"({_cache_rule(framework) if directory is None else 'the directory given to load()'}); "
            f"it is published at {weights.url}, and {weights.source} downloads it into the cache "
            f"on a machine with internet."
        )
    digest = file_digest(path)
    if check_hash:
        _check_integrity(s, path, weights, digest)
    if framework == "pytorch":
        module = _load_torch(s, path)
    else:
        module = _load_keras(s, path)
    return ZooModel(s, module, path, digest, ADAPTERS[framework].forward(module))


def _cache_rule(framework: str) -> str:
    if framework == "pytorch":
        return "torch.hub's cache: $TORCH_HOME/hub/checkpoints, default ~/.cache/torch/hub/checkpoints"
    return "Keras' cache: $KERAS_HOME/models, default ~/.keras/models"


def _check_integrity(s: ModelSpec, path: Path, weights: PretrainedWeights, sha256: str) -> None:
    if weights.sha256_prefix and not sha256.startswith(weights.sha256_prefix):
        raise ZooError(f"{path}: SHA-256 {sha256[:12]}... does not start with {weights.sha256_prefix}, "
                       f"the hash in its name; the file is corrupt or not {weights.url} (delete it)")
    if weights.md5:
        md5 = hashlib.md5()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                md5.update(block)
        if md5.hexdigest() != weights.md5:
            raise ZooError(f"{path}: MD5 {md5.hexdigest()} differs from {weights.md5}, the hash Keras pins "
                           f"for {s.id}; the file is corrupt or not {weights.url} (delete it)")


def _load_torch(s: ModelSpec, path: Path):
    import_torch()
    from torchvision.models import get_weight

    try:
        state = get_weight(TORCH_WEIGHTS[s.name]).get_state_dict(
            model_dir=str(path.parent), map_location="cpu", progress=False, weights_only=True)
    except Exception as exc:  # torch raises several types for a corrupt archive
        raise ZooError(f"{path}: not a readable PyTorch state dict ({type(exc).__name__}: {exc})") from exc
    module = _build_torch(s.name)
    if s.name == "inception_v3":
        # The file holds the auxiliary classifier used in training; torchvision's builder
        # loads it and then drops it (aux_logits=False). The built module never has it.
        state = {k: v for k, v in state.items() if not k.startswith("AuxLogits.")}
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ZooError(f"{path}: weights do not match {s.id}: {exc}") from exc
    return module.eval()


def _load_keras(s: ModelSpec, path: Path):
    keras = import_keras()
    builder = getattr(keras.applications, KERAS_BUILDERS[s.name])
    try:
        return builder(weights=str(path), input_shape=(s.input_size, s.input_size, 3), classes=NUM_CLASSES,
                       classifier_activation=None)
    except Exception as exc:  # Keras raises ValueError on mismatch, OSError on a bad file
        raise ZooError(f"{path}: weights do not match {s.id}: {type(exc).__name__}: {exc}") from exc
