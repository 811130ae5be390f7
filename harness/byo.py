"""Bring your own model and images: the command-line options, checked early, and what they load.

The options, shared by ``pytest`` (``conftest.py``) and ``python -m harness``::

    --model PATH          a .tflite, .ptl or .pte file (repeatable: e.g. the float and the int8 file)
    --source-model PATH   the PC model it came from (.keras/.h5, TorchScript, .pt2): one for every
                          --model, or one per --model in the same order
    --card PATH           the model card (default: <model>.card.toml next to each model): one for
                          every --model, or one per --model in the same order
    --images DIR          a folder of photos: class sub-folders, a labels.csv, or unlabelled
                          (or the path of a .csv file of rows file,label)
    --labels FILE         class names per output index, with an optional "# offset: N" line
    --output NAME         the classifier's output of a .tflite with several (tensor or signature name)

:meth:`UserInputs.from_options` reads them from pytest's ``config.option`` or an argparse
namespace; :meth:`UserInputs.problems` lists what is wrong without loading anything (missing
files, wrong suffixes, counts that do not pair up, image options without a model), and
:meth:`UserInputs.load` validates the model files, cards, labels and images for real and
returns :class:`UserStudyInputs` (the models and the image source) for the study. Both
raise :class:`InputError`, whose message names the file; the callers turn it into a usage
error (pytest exit 4, argparse's error).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.data.dataset import DataError
from harness.zoo.base import ZooError

MODEL_SUFFIXES = (".tflite", ".ptl", ".pte")

# (flag, attribute, help): each takes a value; the repeatable ones collect a list.
OPTIONS = (
    ("--model", "model", True,
     "your own mobile model file, .tflite (float, float16, dynamic-range or full int8/uint8, fixed or dynamic "
     "batch, with or without Model Metadata), .ptl or .pte; repeatable"),
    ("--source-model", "source_model", True,
     "the PC model --model came from (Keras .keras/.h5, TorchScript, exported program .pt2), for transfer "
     "attacks: once for every --model, or once per --model in order"),
    ("--card", "card", True,
     "model card (TOML; default <model>.card.toml beside the model; format in harness/zoo/card.py): once for "
     "every --model, or once per --model in order"),
    ("--images", "images", False,
     "folder of your photos: class sub-folders (index, WordNet id or name), a labels.csv (file,label), or "
     "unlabelled (the reference model's clean predictions become the labels); or a .csv file"),
    ("--labels", "labels", False,
     "class names, one per output index (a '# offset: N' line declares N non-class outputs first)"),
    ("--output", "output", False,
     "the classifier's output, by tensor or signature output name, for a .tflite with several outputs "
     "(wins over the card's output.name)"),
)


class InputError(ValueError):
    """Bring-your-own options or files that cannot be used; the message names the file and the option."""


def add_options(add) -> None:
    """Register the options with ``add`` = ``parser.add_argument`` or pytest's ``group.addoption``."""
    for flag, dest, repeatable, text in OPTIONS:
        if repeatable:
            add(flag, dest=dest, action="append", default=None, metavar="PATH", help=text)
        else:
            add(flag, dest=dest, default=None, metavar="NAME" if dest == "output" else "PATH", help=text)


@dataclass(frozen=True)
class UserInputs:
    models: tuple[Path, ...] = ()
    source_models: tuple[Path, ...] = ()
    cards: tuple[Path, ...] = ()
    images: Path | None = None
    labels: Path | None = None
    output: str | None = None

    @classmethod
    def from_options(cls, options) -> "UserInputs":
        def paths(name):
            return tuple(Path(p).expanduser() for p in (getattr(options, name, None) or ()))

        def path(name):
            value = getattr(options, name, None)
            return Path(value).expanduser() if value else None

        output = getattr(options, "output", None)
        return cls(paths("model"), paths("source_model"), paths("card"), path("images"), path("labels"),
                   output if output else None)

    @property
    def given(self) -> bool:
        return bool(self.models or self.source_models or self.cards or self.images or self.labels or self.output)

    def problems(self) -> list[str]:
        """What is wrong, without loading anything (empty: go on to :meth:`load`)."""
        out = []
        if not self.models:
            for flag, value in (("--source-model", self.source_models), ("--card", self.cards),
                                ("--images", self.images), ("--labels", self.labels), ("--output", self.output)):
                if value:
                    out.append(f"{flag} needs --model PATH (the mobile model file it belongs to)")
            return out
        for model in self.models:
            if model.suffix.lower() not in MODEL_SUFFIXES:
                out.append(f"--model {model}: expected a .tflite, .ptl or .pte file")
            elif not model.is_file():
                out.append(f"--model {model}: file not found")
        if len(set(m.resolve() for m in self.models)) != len(self.models):
            out.append(f"--model: the same file is given twice ({', '.join(map(str, self.models))})")
        for flag, values in (("--source-model", self.source_models), ("--card", self.cards)):
            if len(values) not in (0, 1, len(self.models)):
                out.append(f"{flag} is given {len(values)} times for {len(self.models)} --model files: give it once "
                           f"(for every model) or once per --model, in the same order")
            out += [f"{flag} {p}: file not found" for p in values if not p.is_file()]
        if self.images is not None and not (self.images.is_dir() or
                                            (self.images.is_file() and self.images.suffix.lower() == ".csv")):
            out.append(f"--images {self.images}: " + ("not a folder or a .csv file" if self.images.exists()
                                                      else "folder not found"))
        if self.labels is not None and not self.labels.is_file():
            out.append(f"--labels {self.labels}: file not found")
        return out

    def check(self) -> None:
        problems = self.problems()
        if problems:
            raise InputError("\n".join(problems))

    def pairs(self) -> list[tuple[Path, Path | None, Path | None]]:
        """(model, card or None, source model or None) per --model."""
        def nth(values, k):
            return None if not values else values[0] if len(values) == 1 else values[k]

        return [(m, nth(self.cards, k), nth(self.source_models, k)) for k, m in enumerate(self.models)]

    def load(self, progress=lambda message: None) -> "UserStudyInputs":
        """Validate and load everything (model files in a child process first); :class:`InputError` on any problem."""
        from harness.data.folder import folder_source
        from harness.runtime.base import RuntimeFailure
        from harness.zoo.user import load_user_model

        self.check()
        if any(s.suffix.lower() in (".keras", ".h5", ".hdf5") for s in self.source_models):
            from harness.frameworks import import_torch

            import_torch()  # Keras loads TensorFlow: torch first, in a process that may use both
        models = []
        try:
            sources: dict[Path, object] = {}  # one source model, loaded once, serves several files
            for model, card, source in self.pairs():
                progress(f"bring your own: checking {model}")
                given = sources.get(source.resolve(), source) if source is not None else None
                loaded = load_user_model(model, card, given, self.labels, self.output)
                if source is not None:
                    sources.setdefault(source.resolve(), loaded.source)
                models.append(loaded)
            _check_together(models)
            images = folder_source(self.images, models) if self.images is not None else None
        except (ZooError, DataError, RuntimeFailure) as exc:
            raise InputError(str(exc)) from exc
        return UserStudyInputs(self, models, images)


def _check_together(models) -> None:
    """Models studied together share the images' labels: the same outputs, and distinct names."""
    first = models[0]
    for other in models[1:]:
        if other.spec.num_classes != first.spec.num_classes or other.labels.offset != first.labels.offset:
            raise InputError(f"{other.path} has {other.spec.num_classes} outputs (label offset {other.labels.offset}), "
                             f"{first.path} {first.spec.num_classes} (offset {first.labels.offset}): models studied "
                             "together must share one label space")
    # A float and an int8 file of one model may share a name (the study's quantization axis tells them
    # apart), two files of the same quantization and runtime may not.
    keys = [(m.spec.id, m.quantization, m.runtime) for m in models]
    for k, key in enumerate(keys):
        if key in keys[:k]:
            raise InputError(f"{models[k].path} and {models[keys.index(key)].path} would both be {key[0]} "
                             f"({key[1]}, {key[2]}): give one a different `name` in its card")


@dataclass
class UserStudyInputs:
    """What the study runs on: the validated models and the image source (None without --images)."""

    options: UserInputs
    models: list  # [harness.zoo.user.UserModel]
    images: object | None  # harness.data.folder.FolderSource
    notes: list[str] = field(default_factory=list)

    @property
    def reference(self):
        """The model whose clean predictions label an unlabelled folder: the first --model's source model
        when given (the PC model), else the first --model itself."""
        first = self.models[0]
        return first.source if first.source is not None else first

    def label_images(self) -> None:
        """Label an unlabelled image folder with the reference model's clean predictions (no-op otherwise)."""
        if self.images is None or self.images.labelled:
            return
        reference = self.reference
        if reference is self.models[0]:
            with reference.open("mobile") as runtime:
                self.images.label_with(runtime, f"{reference.spec.id} ({reference.path.name})")
        else:
            self.images.label_with(reference, f"{reference.spec.id} (source model {reference.weights_path.name})")
        self.notes.append(f"images labelled by {self.images.labels_from}")

    def describe(self) -> dict:
        return {"models": [m.describe() for m in self.models],
                "images": None if self.images is None else self.images.describe(), "notes": list(self.notes)}

    def activate(self) -> str:
        """Register these models as this process's ``user`` zoo (harness.zoo.user_zoo) and return
        its name; the study then runs them like any zoo."""
        from harness.zoo import registry
        from harness.zoo.user_zoo import ZOO, UserZoo

        if self.images is None:
            raise InputError("--model needs --images DIR: the photos to attack (class sub-folders, a labels.csv, "
                             "or an unlabelled folder that the reference model labels)")
        registry.register_run_zoo(ZOO, UserZoo(self))
        return ZOO

    def command_options(self) -> str:
        """The options that name these inputs again, for the commands a run suggests: ``--flag=VALUE``,
        which pytest and ``python -m harness`` both take (pytest would read a bare path after an option it
        has not registered yet, ``--model /elsewhere/m.tflite``, as a test path outside the repository)."""
        o = self.options
        parts = [f"--model={m}" for m in o.models] + [f"--source-model={m}" for m in o.source_models]
        parts += [f"--card={c}" for c in o.cards]
        parts += [f"--images={o.images}"] if o.images else []
        parts += [f"--labels={o.labels}"] if o.labels else []
        parts += [f"--output={o.output}"] if o.output else []
        return " ".join(parts)
