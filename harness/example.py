"""The README's "your own model" example, written from the real zoo with nothing downloaded.

    python -m harness.example OUT_DIR [--cache-dir DIR] [--no-ptl]

writes into ``OUT_DIR`` (which must not exist, or be empty) what a user of the bring-your-own
options would have: mobile model files, the PC model they came from, their model cards and
a folder of labelled photos. Everything comes from the ``real`` zoo (EfficientNet-Lite0 with
the ImageNet weights of an installed package) and the photos that ship inside installed
packages (:mod:`harness.data.photos`):

=================================== ==========================================================
``efficientnet_lite0.tflite``       float LiteRT file (litert-torch), input float32 NHWC
``efficientnet_lite0_int8.tflite``  int8 LiteRT file (PT2E, calibrated on the real zoo's
                                    calibration crops, never an evaluation photo); int8 input
``efficientnet_lite0.ptl``          float PyTorch lite interpreter file, input float32 NCHW
``efficientnet_lite0.pt``           the PC source model: TorchScript (``torch.jit.trace`` of
                                    the zoo's module), NCHW float input, ``(pixel - 127) / 128``
``efficientnet_lite0.card.toml``    the float .tflite's model card (what it cannot say: the
                                    normalisation ``(pixel - 127) / 128``)
``efficientnet_lite0.ptl.card.toml`` the .ptl's (the same, and its input size and layout)
``efficientnet_lite0_int8.card.toml`` the int8 file's card (same normalisation; the same
                                    ``name``, so the study treats it as the int8 version)
``photos/<wnid>/<name>.<ext>``      the real zoo's evaluation photos, one class folder each
``photos-LICENSES.json``            each photo's package, SHA-256, licence and attribution
=================================== ==========================================================

The model files are the converted artefacts the study itself uses (the same converter,
options and calibration, so a warm cache is reused and a cold one built once), copied out
of the cache. The TorchScript source model takes what the zoo's module takes; the user
loader feeds it the card's normalisation in NCHW (:func:`harness.zoo.user.load_source_model`).

Everything is written into a temporary folder beside ``OUT_DIR`` and renamed into place
at the end, so an interrupted or failed run leaves nothing half-written. At the end it
prints the ``python -m harness`` command to run next.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable

import harness  # noqa: F401  (import guard first)

ZOO, FRAMEWORK, MODEL = "real", "pytorch", "efficientnet_lite0"
FLOAT_TFLITE = f"{MODEL}.tflite"
INT8_TFLITE = f"{MODEL}_int8.tflite"
FLOAT_PTL = f"{MODEL}.ptl"
SOURCE = f"{MODEL}.pt"
FLOAT_CARD = f"{MODEL}.card.toml"  # efficientnet_lite0.tflite's (the card of the stem)
PTL_CARD = f"{FLOAT_PTL}.card.toml"  # the .ptl's own (a <file>.card.toml wins over <stem>.card.toml)
INT8_CARD = f"{MODEL}_int8.card.toml"
PHOTOS = "photos"
LICENSES = "photos-LICENSES.json"  # beside the folder: a loose file inside it is not a photo


class ExampleError(RuntimeError):
    """The example cannot be written (the folder is in the way, a conversion failed...)."""


def check_target(out: Path) -> None:
    """Refuse an output path that exists and is not an empty folder."""
    if out.exists() or out.is_symlink():
        if not out.is_dir():
            raise ExampleError(f"{out}: exists and is not a folder; name a new folder for the example")
        if any(out.iterdir()):
            raise ExampleError(f"{out}: folder exists and is not empty; name a new or empty folder "
                               "(nothing was written)")


def _card(name: str, lines: list[str]) -> str:
    return "\n".join([f'name = "{name}"', *lines]) + "\n"


def float_card(ptl: bool = False) -> str:
    from harness.zoo import real

    if ptl:
        about = ["# The model card of efficientnet_lite0.ptl (its own: efficientnet_lite0.card.toml is the .tflite's).",
                 "# A .ptl does not record its input size or layout, so the card gives them. The format is",
                 "# described in harness/zoo/card.py."]
    else:
        about = ["# The model card of efficientnet_lite0.tflite (the format is described in harness/zoo/card.py).",
                 "# A .tflite says its input size, layout and dtype itself; given here, they are checked against it."]
    return _card(MODEL, [
        "", *about,
        "[input]",
        f"size = {real.INPUT_SIZE}",
        f"layout = \"{'NCHW' if ptl else 'NHWC'}\"",
        "channel_order = \"RGB\"",
        "# EfficientNet-Lite's preprocessing: input = (pixel - 127) / 128, after resizing the shorter side to",
        "# 224 and centre-cropping 224 x 224 (the default when input.resize is not given).",
        f"mean = {real.LITE_NORMALIZATION.mean[0]:g}",
        f"std = {real.LITE_NORMALIZATION.std[0]:g}",
        "",
        "[output]",
        f"classes = {real.NUM_CLASSES}            # ImageNet's 1000 classes, no background output",
        "quantization = \"float\"",
    ])


def int8_card(scale: float, zero_point: int) -> str:
    from harness.zoo import real

    return _card(MODEL, [
        "",
        "# The int8 LiteRT file's card. Its name is the float files' name: the study's quantization axis",
        "# tells the two apart. Its input tensor is int8, quantized from the same float input the float",
        "# files take, so the card gives that float transform and the runtime quantizes it with the file's",
        "# scale and zero point (given below too, and checked against the file).",
        "[input]",
        "dtype = \"int8\"",
        f"mean = {real.LITE_NORMALIZATION.mean[0]:g}",
        f"std = {real.LITE_NORMALIZATION.std[0]:g}",
        f"quantization = {{ scale = {scale!r}, zero_point = {zero_point} }}",
        "",
        "[output]",
        f"classes = {real.NUM_CLASSES}",
        "quantization = \"int8\"",
    ])


def tflite_input_quantization(path: Path) -> tuple[float, int]:
    from ai_edge_litert.interpreter import Interpreter

    details = Interpreter(model_path=str(path)).get_input_details()
    if len(details) != 1:
        raise ExampleError(f"{path}: {len(details)} inputs; the converter writes one")
    scale, zero = details[0]["quantization"]
    if not scale:
        raise ExampleError(f"{path}: the int8 file's input is not quantized ({details[0]['dtype']})")
    return float(scale), int(zero)


def trace_source(module, size: int, path: Path) -> None:
    """The zoo's module as TorchScript (NCHW float input), checked against the module on one input."""
    from harness.frameworks import import_torch

    torch = import_torch()
    module = module.eval()
    probe = torch.linspace(-1, 1, 3 * size * size, dtype=torch.float32).reshape(1, 3, size, size)
    import warnings

    with torch.no_grad(), warnings.catch_warnings():
        # torch.jit is deprecated in favour of torch.export; the user loader reads both.
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(module, probe)
        expected, got = module(probe), traced(probe)
    if not torch.allclose(expected, got, atol=1e-5, rtol=0):
        raise ExampleError(f"{path}: the traced module's logits differ from the module's by "
                           f"{float((expected - got).abs().max()):.3g}")
    traced.save(str(path))


def copy_photos(directory: Path) -> list[dict]:
    """The real zoo's evaluation photos as ``photos/<wnid>/<name><suffix>``, digests checked; their manifest entries."""
    from harness.data.dataset import DataError
    from harness.data.photos import MANIFEST, photo_file, read_manifest

    manifest = {entry["id"]: entry for entry in json.loads(MANIFEST.read_text())["photos"]}
    entries = []
    for photo in read_manifest():
        if photo.role != "evaluation":
            continue
        source = photo_file(photo)
        data = source.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != photo.sha256:
            raise DataError(f"{source}: SHA-256 {digest[:12]}... differs from the manifest's {photo.sha256[:12]}... "
                            f"({MANIFEST.name})")
        relative = Path(PHOTOS) / photo.wnid / Path(photo.path).name
        (directory / relative).parent.mkdir(parents=True, exist_ok=True)
        (directory / relative).write_bytes(data)
        facts = {k: v for k, v in manifest[photo.id].items() if k not in ("id", "role")}
        entries.append({"file": relative.as_posix(), **facts})
    return entries


def write_example(directory: Path, cache=None, ptl: bool = True, log: Callable[[str], None] = print) -> dict:
    """Write the example's files into ``directory`` (an existing empty folder); returns what was written."""
    from harness.attack.profiles import load_profile
    from harness.cache import ArtifactCache
    from harness.convert import convert
    from harness.data.photos import PhotoSource
    from harness.zoo import registry

    directory = Path(directory)
    cache = cache if cache is not None else ArtifactCache()
    model = registry.load(ZOO, FRAMEWORK, MODEL)
    size = model.spec.input_size

    log(f"example: tracing the PC model as TorchScript ({SOURCE})")
    trace_source(model.module, size, directory / SOURCE)

    log("example: the float .tflite (litert-torch; cached after the first time)")
    files = {"source_model": SOURCE}
    shutil.copyfile(convert(model, "float", None, cache, format="tflite").path, directory / FLOAT_TFLITE)
    files["float_tflite"] = FLOAT_TFLITE

    # The calibration the study gives the real zoo's int8 conversions (Study.calibration): the
    # real profile's count and seed, augmented crops of the calibration photos only.
    profile = load_profile(ZOO)
    calibration = PhotoSource().calibration(model.spec, profile.calibration, profile.seed, None)
    log(f"example: the int8 .tflite ({len(calibration)} calibration crops; cached after the first time)")
    shutil.copyfile(convert(model, "int8", calibration, cache, format="tflite").path, directory / INT8_TFLITE)
    files["int8_tflite"] = INT8_TFLITE

    if ptl:
        log("example: the float .ptl (lite interpreter; cached after the first time)")
        shutil.copyfile(convert(model, "float", None, cache, format="ptl").path, directory / FLOAT_PTL)
        files["float_ptl"] = FLOAT_PTL

    (directory / FLOAT_CARD).write_text(float_card())
    if ptl:
        (directory / PTL_CARD).write_text(float_card(ptl=True))
    (directory / INT8_CARD).write_text(int8_card(*tflite_input_quantization(directory / INT8_TFLITE)))
    files["cards"] = [FLOAT_CARD, INT8_CARD] + ([PTL_CARD] if ptl else [])

    log("example: copying the evaluation photos from their packages")
    entries = copy_photos(directory)
    (directory / LICENSES).write_text(json.dumps({
        "description": "The photos in photos/, copied from the installed packages named here (see "
                       "fixtures/photos/manifest.json in the suite's repository); folder names are WordNet ids.",
        "photos": entries}, indent=1) + "\n")
    files["photos"] = [e["file"] for e in entries]
    files["licenses"] = LICENSES
    return files


def next_command(out: Path) -> list[str]:
    """The study on the example's .tflite files with their source model (and the photos)."""
    exe = os.path.relpath(sys.executable) if not os.path.relpath(sys.executable).startswith("..") else sys.executable
    return [exe, "-m", "harness",
            "--model", str(out / FLOAT_TFLITE), "--model", str(out / INT8_TFLITE),
            "--source-model", str(out / SOURCE), "--images", str(out / PHOTOS)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.example", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", metavar="OUT_DIR", type=Path, help="a new (or empty) folder for the example")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="artefact cache (default $HARNESS_CACHE_DIR or .cache/artifacts)")
    parser.add_argument("--no-ptl", action="store_true", help="leave out the float .ptl")
    args = parser.parse_args(argv)
    out = args.out.expanduser()
    try:
        check_target(out)
    except ExampleError as exc:
        parser.error(str(exc))
    from harness.cache import ArtifactCache

    from harness.cache import CacheError
    from harness.convert import ConversionError
    from harness.data.dataset import DataError
    from harness.zoo.base import ZooError

    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        files = write_example(work, ArtifactCache(args.cache_dir) if args.cache_dir else None, not args.no_ptl)
        check_target(out)  # nobody filled it meanwhile
        if out.is_dir():
            out.rmdir()
        os.rename(work, out)
    except BaseException as exc:
        shutil.rmtree(work, ignore_errors=True)
        # What the user can act on (a package to install, a cache folder that is a file...): one line.
        if isinstance(exc, (ExampleError, ZooError, DataError, ConversionError, CacheError, OSError)):
            print(f"error: {exc}\nnothing was written to {out}", file=sys.stderr)
            return 1
        raise
    print(f"\nWrote {out}:")
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        print(f"  {path.relative_to(out)}  ({path.stat().st_size:,} bytes)")
    command = " ".join(shlex.quote(part) for part in next_command(out))
    print("\nNext, the study on your own model (direct attacks on each .tflite, transfer attacks from the "
          "PC source model):")
    print(f"  {command}")
    if "float_ptl" in files:
        print(f"  (add --model {shlex.quote(str(out / FLOAT_PTL))} to study the lite interpreter's file as well)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
