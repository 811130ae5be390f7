"""The model card: what a user's model file cannot say about itself, in a small TOML file.

A ``.tflite`` file says its input shape, dtype and quantization, and its output shape;
a ``.ptl`` says what a call on a probe tensor returns. The card says the rest: how to
turn a photo into the input tensor (resize and crop, channel order, normalisation) and
what the outputs mean (label offset, labels file). Fields the file also states are
optional; when given they must agree with the file (a clear error otherwise).

The card sits next to the model as ``<model>.card.toml`` (``mobilenet.card.toml`` for
``mobilenet.tflite``, or ``mobilenet.tflite.card.toml``, which wins when both exist, so a
``.tflite`` and a ``.ptl`` of the same stem can each have their own) or is named with
``--card``. Every field is optional; unknown fields are an error (a typo must not be
ignored).

A ``.tflite`` that carries TFLite Model Metadata (Model Maker, the metadata writers) needs no
card: its normalisation options and embedded label file are read from the metadata, and a card
field that contradicts them is an error naming both.

A complete example::

    name = "mobilenet_v2_int8"    # the model's name in case ids (letters, digits, _); default: the file's stem

    [input]
    size = 224                    # height = width; read off a .tflite; required for a .ptl
    layout = "NHWC"               # NHWC | NCHW; read off a .tflite; a .ptl defaults to NCHW
    dtype = "uint8"               # float32 | uint8 | int8; checked against a .tflite
    channel_order = "RGB"         # RGB | BGR: the channel order the model expects (default RGB)
    resize = 256                  # resize the shorter side to this, then center-crop size x size
                                  # (default: resize to size, then center-crop: no margin)
    # How pixels become the input tensor. Either the float transform, per channel:
    #   input = (pixel * scale - mean) / std      (pixel in 0..255, RGB or BGR as above)
    scale = 1.0                   # default 1.0
    mean = [127.5, 127.5, 127.5]  # a number or three (in the model's channel order)
    std = 127.5                   # a number or three
    # or, for a uint8 or int8 input tensor, the raw pixels as the app feeds them:
    #   normalization = "raw"     # uint8: the tensor gets the pixel values 0..255 themselves;
    #                             # int8: pixel - 128. The file's quantization (scale s, zero point z)
    #                             # says what they mean: (q - z) * s, which is also what the
    #                             # source model (--source-model) is fed.
    # A uint8 or int8 input with neither is read as "raw".
    quantization = { scale = 0.0078125, zero_point = 128 }   # the input tensor's; checked against the file

    [output]
    classes = 1001                # outputs; checked against the file
    label_offset = 1              # output index of class 0: outputs below it are not classes (background)
    labels = "labels.txt"         # relative to the card (see harness.data.labels for the format); default:
                                  # ImageNet's 1000 classes when classes - label_offset == 1000
    quantization = "int8"         # float | int8: what a .ptl holds (a .tflite says); default: read off the file
    name = "probabilities"        # the classifier's output, by tensor or signature output name, for a file
                                  # with several outputs (--output NAME wins); checked against the file
    kind = "probabilities"        # logits | probabilities (a softmax inside the model); a .tflite's is read
                                  # off the file (a SOFTMAX op, or a uint8/int8 output of scale 1/256) and
                                  # checked; a .ptl's or .pte's is read off probe calls unless given
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from harness.zoo.base import ZooError

CARD_SUFFIX = ".card.toml"
LAYOUTS = ("NHWC", "NCHW")
DTYPES = ("float32", "uint8", "int8")
CHANNEL_ORDERS = ("RGB", "BGR")
QUANTIZATIONS = ("float", "int8")
OUTPUT_KINDS = ("logits", "probabilities")
NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")

_TOP = {"name", "input", "output"}
_INPUT = {"size", "layout", "dtype", "channel_order", "resize", "scale", "mean", "std", "normalization",
          "quantization"}
_OUTPUT = {"classes", "label_offset", "labels", "quantization", "name", "kind"}


class CardError(ZooError):
    """A model card that cannot be read, or that contradicts its model file."""


@dataclass(frozen=True)
class Card:
    path: Path | None = None
    name: str | None = None
    size: int | None = None
    layout: str | None = None
    dtype: str | None = None
    channel_order: str = "RGB"
    resize: int | None = None
    raw: bool = False
    scale: float | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    input_quantization: tuple[float, int] | None = None
    classes: int | None = None
    label_offset: int | None = None
    labels: Path | None = None
    quantization: str | None = None
    output_name: str | None = None
    output_kind: str | None = None
    given: frozenset = field(default_factory=frozenset)  # the dotted keys the card set

    @property
    def has_float_normalization(self) -> bool:
        return self.mean is not None or self.std is not None or self.scale is not None


def card_path_for(model: Path) -> Path | None:
    """The card next to ``model``: ``<name>.card.toml`` (``m.tflite.card.toml``, the more specific), else
    ``<stem>.card.toml`` (``m.card.toml``); None when neither exists."""
    model = Path(model)
    for candidate in (model.with_name(model.name + CARD_SUFFIX), model.with_name(model.stem + CARD_SUFFIX)):
        if candidate.is_file():
            return candidate
    return None


def read_card(path: Path | str) -> Card:
    """Parse and check a card file; any problem is a :class:`CardError` naming the file and the field."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CardError(f"{path}: cannot read the model card ({exc.strerror or exc})") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise CardError(f"{path}: model card is not UTF-8 text (byte {exc.start})") from None
    except (tomllib.TOMLDecodeError, RecursionError) as exc:  # RecursionError: arrays nested too deep
        raise CardError(f"{path}: not valid TOML ({exc})") from None
    return parse_card(data, path)


def parse_card(data: dict, path: Path | None = None) -> Card:
    where = str(path) if path is not None else "model card"
    _unknown(data, _TOP, where, "")
    section_in = _section(data, "input", where)
    section_out = _section(data, "output", where)
    _unknown(section_in, _INPUT, where, "input.")
    _unknown(section_out, _OUTPUT, where, "output.")
    given = frozenset({*(k for k in data if k not in ("input", "output")),
                       *(f"input.{k}" for k in section_in), *(f"output.{k}" for k in section_out)})

    name = data.get("name")
    if name is not None and not (isinstance(name, str) and NAME.match(name)):
        raise CardError(f"{where}: name = {name!r}: expected 1-64 letters, digits or underscores (no '-')")
    size = _int(section_in, "size", where, minimum=1, prefix="input.")
    resize = _int(section_in, "resize", where, minimum=1, prefix="input.")
    layout = _choice(section_in, "layout", LAYOUTS, where)
    dtype = _choice(section_in, "dtype", DTYPES, where)
    order = _choice(section_in, "channel_order", CHANNEL_ORDERS, where) or "RGB"
    normalization = section_in.get("normalization")
    if normalization is not None and normalization != "raw":
        raise CardError(f"{where}: input.normalization = {normalization!r}: the only value is \"raw\" "
                        "(otherwise give input.scale, input.mean and input.std)")
    raw = normalization == "raw"
    scale = _float(section_in, "scale", where, positive=True)
    mean = _triple(section_in, "mean", where, positive=False)
    std = _triple(section_in, "std", where, positive=True)
    if raw and (scale is not None or mean is not None or std is not None):
        raise CardError(f"{where}: input.normalization = \"raw\" and input.scale/mean/std both given; choose one")
    if raw and dtype == "float32":
        raise CardError(f"{where}: input.normalization = \"raw\" needs a uint8 or int8 input, the card says float32")
    quant = section_in.get("quantization")
    input_quantization = None
    if quant is not None:
        if not isinstance(quant, dict) or set(quant) != {"scale", "zero_point"}:
            raise CardError(f"{where}: input.quantization = {quant!r}: expected {{ scale = S, zero_point = Z }}")
        q_scale = _float(quant, "scale", where, positive=True, prefix="input.quantization.")
        q_zero = _int(quant, "zero_point", where, minimum=-128, maximum=255, prefix="input.quantization.")
        input_quantization = (q_scale, q_zero)
    classes = _int(section_out, "classes", where, minimum=1, prefix="output.")
    offset = _int(section_out, "label_offset", where, minimum=0, prefix="output.")
    if classes is not None and offset is not None and offset >= classes:
        raise CardError(f"{where}: output.label_offset = {offset} leaves no class among {classes} outputs")
    labels = section_out.get("labels")
    if labels is not None:
        if not isinstance(labels, str) or not labels.strip() or "\0" in labels:
            raise CardError(f"{where}: output.labels = {labels!r}: expected a file path")
        labels = Path(labels)
        if not labels.is_absolute() and path is not None:
            labels = Path(path).parent / labels
    quantization = _choice(section_out, "quantization", QUANTIZATIONS, where, "output.")
    output_name = section_out.get("name")
    if output_name is not None and not (isinstance(output_name, str) and output_name.strip()
                                        and "\0" not in output_name):
        raise CardError(f"{where}: output.name = {output_name!r}: expected the name of one of the model's outputs")
    output_kind = _choice(section_out, "kind", OUTPUT_KINDS, where, "output.")
    return Card(Path(path) if path is not None else None, name, size, layout, dtype, order, resize, raw, scale,
                mean, std, input_quantization, classes, offset, labels, quantization, output_name, output_kind,
                given)


def _section(data: dict, key: str, where: str) -> dict:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise CardError(f"{where}: [{key}] must be a table, found {type(value).__name__}")
    return value


def _unknown(table: dict, valid: set, where: str, prefix: str) -> None:
    unknown = sorted(str(k) for k in table if k not in valid)
    if unknown:
        raise CardError(f"{where}: unknown field(s) {', '.join(prefix + k for k in unknown)}; "
                        f"valid: {', '.join(prefix + k for k in sorted(valid))}")


def _int(table: dict, key: str, where: str, minimum: int | None = None, maximum: int | None = None,
         prefix: str = "") -> int | None:
    name = prefix + key
    value = table.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise CardError(f"{where}: {name} = {value!r}: expected an integer")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = f"at least {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        raise CardError(f"{where}: {name} = {value}: expected an integer {bounds}")
    return value


def _float(table: dict, key: str, where: str, positive: bool, prefix: str = "input.") -> float | None:
    value = table.get(key)
    if value is None:
        return None
    return _number(value, f"{prefix}{key}", where, positive)


def _number(value, name: str, where: str, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CardError(f"{where}: {name} = {value!r}: expected a finite number")
    if positive and value <= 0:
        raise CardError(f"{where}: {name} = {value!r}: expected a positive number")
    return float(value)


def _triple(table: dict, key: str, where: str, positive: bool) -> tuple[float, float, float] | None:
    value = table.get(key)
    if value is None:
        return None
    if isinstance(value, list):
        if len(value) != 3:
            raise CardError(f"{where}: input.{key} = {value!r}: expected one number or three (one per channel)")
        return tuple(_number(v, f"input.{key}", where, positive) for v in value)  # type: ignore[return-value]
    number = _number(value, f"input.{key}", where, positive)
    return (number, number, number)


def _choice(table: dict, key: str, valid: tuple, where: str, prefix: str = "input.") -> str | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or value not in valid:
        raise CardError(f"{where}: {prefix}{key} = {value!r}: expected one of {', '.join(valid)}")
    return value
