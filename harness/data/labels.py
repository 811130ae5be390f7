"""Which model output is which class: a user model's label space.

A classifier's outputs are indexed 0..K-1. Some models put non-classes first (the
TensorFlow-slim ImageNet models have 1001 outputs, output 0 being "background"), so a
:class:`LabelSpace` holds the real classes' names in *class-index* order and the
``offset`` of class 0 among the outputs: output index = class index + offset.

The study compares predictions (argmax over all K outputs) with labels, so labels are
kept in output-index space (:meth:`LabelSpace.output_index`); a model that picks the
background output is simply wrong. The offset is recorded (:meth:`LabelSpace.describe`).

Labels file (``--labels FILE`` or the card's ``output.labels``)::

    # comment lines start with '#'; blank lines are ignored
    # offset: 1            <- optional directive: output 0 is not a class
    background             <- with an offset, the file may list the non-classes too
    n01440764 tench        <- "wnid name" (a WordNet id first), or just "name"
    goldfish
    ...

It lists either every output (``offset`` non-classes first, then the classes) or only
the classes. A ``.json`` file is read as Keras' ``imagenet_class_index.json``
(``{"0": [wnid, name], ...}``) or a JSON list of names. Without a labels file, a model
with 1000 classes (after the offset) gets ImageNet's classes from the committed class
index, and one with 1001 outputs and no declared offset gets offset 1 (background first).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from harness.data.dataset import DataError

_WNID_LINE = re.compile(r"^(n\d{8})(?:\s+(.*))?$")
_OFFSET = re.compile(r"^#\s*offset\s*[:=]\s*(-?\d+)\s*$", re.IGNORECASE)
IMAGENET = "imagenet class index"


@dataclass(frozen=True)
class LabelSpace:
    names: tuple[str, ...]  # class index -> name, the real classes only
    offset: int = 0  # output index of class 0; outputs 0..offset-1 are not classes (background)
    wnids: tuple[str, ...] | None = None  # class index -> WordNet id, when known
    source: str = "generic"  # a labels file's path, IMAGENET, or "generic" (class_<k>)
    non_classes: tuple[str, ...] = ()  # names of outputs 0..offset-1, when the file gave them

    def __post_init__(self) -> None:
        if self.offset < 0:
            raise DataError(f"{self.source}: label offset {self.offset} is negative")
        if self.wnids is not None and len(self.wnids) != len(self.names):
            raise DataError(f"{self.source}: {len(self.wnids)} wnids for {len(self.names)} classes")

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @property
    def num_outputs(self) -> int:
        return len(self.names) + self.offset

    def output_index(self, class_index: int) -> int:
        return int(class_index) + self.offset

    def class_name_of_output(self, output: int) -> str:
        output = int(output)
        if 0 <= output < self.offset:
            return self.non_classes[output] if output < len(self.non_classes) else "background"
        return self.names[output - self.offset]

    def lookup(self, token: str, where: object) -> int:
        """The class index named by ``token`` (a class index, a WordNet id or a class name), or a
        :class:`DataError` naming ``where`` (the folder or CSV row) and the valid range."""
        text = str(token).strip()
        if re.fullmatch(r"[+-]?\d+", text):
            index = int(text)
            if not 0 <= index < self.num_classes:
                raise DataError(f"{where}: label {index} is out of range: the model has {self.num_classes} classes "
                                f"(class indices 0..{self.num_classes - 1}, from {self.source})")
            return index
        if self.wnids is not None and _WNID_LINE.match(text) and text in self.wnids:
            return self.wnids.index(text)
        for key in (text, _canonical(text)):
            hits = [i for i, name in enumerate(self.names) if name == key or _canonical(name) == key]
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1:
                raise DataError(f"{where}: class name {text!r} is ambiguous in {self.source} (class indices "
                                f"{hits}); name the class by its index{' or WordNet id' if self.wnids else ''}")
        sample = ", ".join(repr(n) for n in self.names[:5])
        raise DataError(f"{where}: {text!r} is not a class of {self.source}: expected a class index "
                        f"0..{self.num_classes - 1}{', a WordNet id' if self.wnids else ''} or a class name "
                        f"({sample}{', ...' if self.num_classes > 5 else ''})")

    def describe(self) -> dict:
        return {"source": self.source, "classes": self.num_classes, "offset": self.offset,
                "outputs": self.num_outputs, "non_classes": list(self.non_classes),
                "wnids": self.wnids is not None}


def _canonical(name: str) -> str:
    """Folder-safe spelling: case-insensitive, spaces/slashes/hyphens as underscores."""
    return re.sub(r"[\s/\\-]+", "_", name.strip()).lower()


def imagenet(offset: int = 0) -> LabelSpace:
    """ImageNet's 1000 classes in Keras/torchvision order (the committed class index)."""
    from harness.data import imagenet as inet

    return LabelSpace(inet.class_names(), offset, inet.wnids(), IMAGENET,
                      ("background",) * offset if offset else ())


def generic(num_classes: int, offset: int = 0) -> LabelSpace:
    return LabelSpace(tuple(f"class_{k}" for k in range(num_classes)), offset, None, "generic")


def default_for(num_outputs: int, offset: int | None = None) -> LabelSpace:
    """The label space of a model without a labels file (see the module docstring)."""
    if offset is None:
        offset = 1 if num_outputs == 1001 else 0
    if num_outputs - offset == 1000:
        return imagenet(offset)
    if num_outputs - offset < 1:
        raise DataError(f"a model with {num_outputs} outputs cannot have label offset {offset}")
    return generic(num_outputs - offset, offset)


def read_labels(path: Path | str, num_outputs: int | None = None, offset: int | None = None) -> LabelSpace:
    """A labels file -> :class:`LabelSpace`. ``offset`` (e.g. from the model card) wins over the file's
    ``# offset:`` directive only when they agree; ``num_outputs`` (the model's) is checked."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the labels file ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: labels file is not UTF-8 text (byte {exc.start})") from None
    return parse_labels(text, str(path), num_outputs, offset, json_format=path.suffix.lower() == ".json")


# Names a labels file gives output 0 when it is not a class (TensorFlow-slim's "background",
# the "???" of the TFLite Model Maker and hosted-model label files).
BACKGROUND_NAMES = ("background", "???", "__background__")


def parse_labels(text: str, source: str, num_outputs: int | None = None, offset: int | None = None,
                 json_format: bool = False) -> LabelSpace:
    """The text of a labels file (e.g. one embedded in a model's metadata) -> :class:`LabelSpace`;
    ``source`` names it in errors. A list of every output whose first name is a background name
    (:data:`BACKGROUND_NAMES`) and no declared offset is read as offset 1."""
    path = source
    declared = None
    entries: list[tuple[str | None, str]] = []
    if json_format:
        entries = _json_entries(path, text)
    else:
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line:
                continue
            if line.startswith("#"):
                match = _OFFSET.match(line)
                if match:
                    value = int(match.group(1))
                    if declared is not None and declared != value:
                        raise DataError(f"{path}:{number}: a second, different offset directive ({value} after {declared})")
                    declared = value
                continue
            match = _WNID_LINE.match(line)
            entries.append((match.group(1), (match.group(2) or match.group(1)).strip()) if match else (None, line))
    if offset is not None and declared is not None and offset != declared:
        raise DataError(f"{path}: declares label offset {declared}, but the model card says {offset}")
    offset = offset if offset is not None else declared if declared is not None else None
    if not entries:
        raise DataError(f"{path}: labels file lists no classes")
    if offset is None:
        offset = 1 if (num_outputs == 1001 and len(entries) == 1000) or (
            num_outputs is not None and len(entries) == num_outputs > 2
            and entries[0][1].strip().lower() in BACKGROUND_NAMES) else 0
    if offset < 0:
        raise DataError(f"{path}: label offset {offset} is negative")
    non_classes: tuple[str, ...] = ()
    if num_outputs is not None:
        if len(entries) == num_outputs and offset:
            non_classes = tuple(name for _, name in entries[:offset])
            entries = entries[offset:]
        elif len(entries) != num_outputs - offset:
            raise DataError(f"{path}: lists {len(entries)} labels; the model has {num_outputs} outputs with offset "
                            f"{offset}, so expected {num_outputs - offset} (the classes) or {num_outputs} (every output)")
    wnids = tuple(w for w, _ in entries)
    has_wnids = all(w is not None for w in wnids)
    if any(w is not None for w in wnids) and not has_wnids:
        raise DataError(f"{path}: some lines start with a WordNet id and some do not; give one for every class or none")
    return LabelSpace(tuple(name for _, name in entries), offset, wnids if has_wnids else None, source, non_classes)


def _json_entries(path, text: str) -> list[tuple[str | None, str]]:
    try:
        table = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise DataError(f"{path}: not valid JSON ({type(exc).__name__}: {exc})") from None
    if isinstance(table, list) and all(isinstance(x, str) for x in table):
        return [(None, x) for x in table]
    if isinstance(table, dict):
        try:
            rows = [table[str(i)] for i in range(len(table))]
            if all(isinstance(r, list) and len(r) == 2 and all(isinstance(v, str) for v in r) for r in rows):
                return [(str(w), str(n)) for w, n in rows]
        except KeyError:
            pass
    raise DataError(f"{path}: expected a JSON list of class names or {{\"0\": [wnid, name], ...}} with keys 0..N-1")
