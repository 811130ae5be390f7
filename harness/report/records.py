"""Result records: the plain dicts the report stage consumes, their ids, order and validation.

One record per configuration (framework x model x attack x quantization x platform, and
the mobile runtime where it is not the framework's native one: a record's optional
``runtime``). :func:`validate_records` checks every record and returns normalised copies,
each with ``config_id`` (``tensorflow-mobilenet_v2-bim-int8-mobile``, or
``pytorch-mobilenet_v2-bim-int8-litert-mobile`` for PyTorch weights on LiteRT) and ``success_rate_ci``
(the Wilson 95% interval) added. Anything wrong raises :class:`RecordError` (a
``ValueError``) naming the configuration and the field.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Iterable, Iterator, Mapping

from harness.attack import registry as attack_registry
from harness.stats import wilson_interval

from harness.axes import runtimes as runtime_axis_registry
from harness.axes.runtimes import NATIVE_RUNTIMES

IDENTITY_FIELDS = ("framework", "model", "attack", "quantization", "platform")

# Fields every record must carry. Those in NULLABLE_FIELDS may hold None (not measured; for
# ``passed``: not gated, as in the records of ``python -m harness``). A record may also carry
# ``verdicts``, the gate checks' own sentences (a list of strings), shown as they are.
REQUIRED_FIELDS = IDENTITY_FIELDS + (
    "n_samples",
    "success_rate",
    "success_rate_before_rounding",
    "clean_accuracy",
    "agreement_with_pc",
    "adversarial_agreement_with_pc",
    "model_bytes",
    "inference_seconds",
    "generation_seconds",
    "gate",
    "passed",
    "sample_ids",
    "per_sample_success",
)
NULLABLE_FIELDS = frozenset({
    "passed", "success_rate_before_rounding", "clean_accuracy", "agreement_with_pc",
    "adversarial_agreement_with_pc", "model_bytes", "inference_seconds", "generation_seconds",
})
PROPORTION_FIELDS = ("success_rate", "success_rate_before_rounding", "clean_accuracy",
                     "agreement_with_pc", "adversarial_agreement_with_pc")
NON_NEGATIVE_FIELDS = ("model_bytes", "inference_seconds", "generation_seconds")

# success_rate must equal mean(per_sample_success) to this tolerance: loose enough for a
# rate rounded to 4 decimals, tight enough to catch one sample out of 3,000.
RATE_TOLERANCE = 1e-4

# Display order of the axes; values outside these lists sort after them, alphabetically.
ORDER = {
    "framework": ("tensorflow", "pytorch"),
    "model": ("mobilenet_v2", "resnet50", "inception_v3"),
    "quantization": ("float", "int8"),
    "platform": ("pc", "mobile", "arm64", "device"),
}

FRAMEWORK_NAMES = {"tensorflow": "TensorFlow", "pytorch": "PyTorch"}
MOBILE_FRAMEWORK_NAMES = {"tensorflow": "TFLite", "pytorch": "PyTorch Mobile"}
MODEL_NAMES = {"mobilenet_v2": "MobileNetV2", "resnet50": "ResNet50", "inception_v3": "InceptionV3"}


class _AttackTitles(Mapping):
    """Attack name -> how the report writes it, read from the attack registry (each class's
    ``title``), so a newly registered attack is named without editing the report."""

    def __getitem__(self, name: str) -> str:
        if name not in attack_registry.names():
            raise KeyError(name)
        return attack_registry.title(name)

    def __iter__(self) -> Iterator[str]:
        return iter(attack_registry.names())

    def __len__(self) -> int:
        return len(attack_registry.names())


ATTACK_NAMES: Mapping[str, str] = _AttackTitles()
PLATFORM_NAMES = {"pc": "PC", "mobile": "mobile (host runtime)", "arm64": "arm64 (ARM build, emulated)",
                  "device": "device"}


class RecordError(ValueError):
    """An invalid result record; the message names the configuration and the field."""


def runtime_axis(record: Mapping[str, Any]) -> str | None:
    """The record's runtime when it is not its framework's native one (None: native, or the PC)."""
    runtime = record.get("runtime")
    if runtime is None or record.get("platform") == "pc" or runtime == NATIVE_RUNTIMES.get(record.get("framework")):
        return None
    return runtime


def identity(record: Mapping[str, Any]) -> tuple:
    """What tells configurations apart: the identity fields and the non-native runtime (or None)."""
    return (*(record[k] for k in IDENTITY_FIELDS), runtime_axis(record))


def config_id(record: Mapping[str, Any]) -> str:
    """``framework-model-attack-quantization-platform`` for the native runtime, else
    ``framework-model-attack-quantization-runtime-platform``; '?' for a missing part."""
    parts = [str(record.get(k, "?")) for k in IDENTITY_FIELDS]
    runtime = runtime_axis(record)
    if runtime is not None:
        parts.insert(4, str(runtime))
    return "-".join(parts)


def framework_name(framework: str, platform: str) -> str:
    names = FRAMEWORK_NAMES if platform == "pc" else MOBILE_FRAMEWORK_NAMES
    return names.get(framework, framework)


def axis_values(records: Iterable[Mapping[str, Any]], axis: str) -> list[str]:
    """The values of ``axis`` present in ``records``, in display order."""
    return sorted({r[axis] for r in records}, key=lambda v: _order_key(axis, v))


def _order_key(axis: str, value: str) -> tuple:
    known = attack_registry.names() if axis == "attack" else ORDER.get(axis, ())  # attacks: registry order
    return (known.index(value), "") if value in known else (len(known), str(value))


def sort_key(record: Mapping[str, Any]) -> tuple:
    """Platform, framework, model, attack, quantization, then runtime (native first): the paper's grouping."""
    return (*(_order_key(axis, record[axis]) for axis in ("platform", "framework", "model", "attack", "quantization")),
            (runtime_axis(record) is not None, str(runtime_axis(record) or "")))


def _fail(cid: str, field: str, problem: str) -> RecordError:
    return RecordError(f"configuration {cid}: field {field!r}: {problem}")


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))


def _as_bool(value: Any) -> bool | None:
    """True/False for a bool, numpy bool or 0/1 integer; None for anything else."""
    if isinstance(value, bool):
        return value
    if getattr(getattr(value, "dtype", None), "kind", None) == "b":  # numpy bool scalar
        return bool(value)
    if isinstance(value, numbers.Integral) and int(value) in (0, 1):
        return bool(int(value))
    return None


def validate_record(record: Mapping[str, Any], index: int = 0) -> dict:
    """Check one record; return a normalised shallow copy (with ``config_id``)."""
    if not isinstance(record, Mapping):
        raise RecordError(f"record #{index}: expected a mapping, found {type(record).__name__}")
    cid = config_id(record)
    for field in REQUIRED_FIELDS:
        if field not in record:
            raise _fail(cid, field, "missing")
        if record[field] is None and field not in NULLABLE_FIELDS:
            raise _fail(cid, field, "is None")
    for field in IDENTITY_FIELDS:
        value = record[field]
        if not isinstance(value, str) or not value or "-" in value:
            raise _fail(cid, field, f"must be a non-empty string without '-', found {value!r}")
    runtime = record.get("runtime")
    if runtime is not None and (not isinstance(runtime, str) or not runtime or "-" in runtime):
        raise _fail(cid, "runtime", f"must be None or a non-empty string without '-', found {runtime!r}")
    if "configuration" in record and record["configuration"] not in (None, cid):
        raise _fail(cid, "configuration", f"says {record['configuration']!r} but the fields give {cid!r}")

    n = record["n_samples"]
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise _fail(cid, "n_samples", f"must be an integer, found {n!r}")
    if int(n) <= 0:
        raise _fail(cid, "n_samples", f"must be positive, found {n}")
    n = int(n)

    for field in PROPORTION_FIELDS:
        value = record[field]
        if value is None:
            continue
        if not _is_real(value) or not 0.0 <= float(value) <= 1.0:
            raise _fail(cid, field, f"must be a number in [0, 1], found {value!r}")
    for field in NON_NEGATIVE_FIELDS:
        value = record[field]
        if value is not None and (not _is_real(value) or float(value) < 0):
            raise _fail(cid, field, f"must be a non-negative number or None, found {value!r}")

    if not isinstance(record["gate"], Mapping):
        raise _fail(cid, "gate", f"must be a dict of thresholds, found {type(record['gate']).__name__}")
    for name, limit in record["gate"].items():
        if not _is_real(limit):
            raise _fail(cid, "gate", f"threshold {name!r} must be a number, found {limit!r}")
    passed = None if record["passed"] is None else _as_bool(record["passed"])
    if passed is None and record["passed"] is not None:
        raise _fail(cid, "passed", f"must be a bool or None (not gated), found {record['passed']!r}")
    verdicts = record.get("verdicts", [])
    if isinstance(verdicts, (str, bytes)) or not isinstance(verdicts, (list, tuple)) \
            or not all(isinstance(v, str) for v in verdicts):
        raise _fail(cid, "verdicts", f"must be a list of strings, found {verdicts!r}")

    ids, outcomes = record["sample_ids"], record["per_sample_success"]
    for field, value in (("sample_ids", ids), ("per_sample_success", outcomes)):
        if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__len__"):
            raise _fail(cid, field, f"must be a list, found {type(value).__name__}")
    if len(outcomes) != len(ids):
        raise _fail(cid, "per_sample_success",
                    f"has {len(outcomes)} entries but sample_ids has {len(ids)}")
    if len(outcomes) != n:
        raise _fail(cid, "per_sample_success", f"has {len(outcomes)} entries but n_samples is {n}")
    flags = []
    for i, value in enumerate(outcomes):
        flag = _as_bool(value)
        if flag is None:
            raise _fail(cid, "per_sample_success", f"entry {i} must be a bool, found {value!r}")
        flags.append(flag)
    ids = [i.item() if hasattr(i, "item") else i for i in ids]  # numpy scalars -> Python
    try:
        distinct = len(set(ids))
    except TypeError:
        raise _fail(cid, "sample_ids", "entries must be scalars (ints or strings)") from None
    if distinct != len(ids):
        raise _fail(cid, "sample_ids", f"has {len(ids) - distinct} duplicate ids")
    k = sum(flags)
    if abs(float(record["success_rate"]) - k / n) > RATE_TOLERANCE:
        raise _fail(cid, "success_rate",
                    f"is {float(record['success_rate']):.6f} but per_sample_success gives {k}/{n} = {k / n:.6f}")

    out = dict(record)
    out.update(n_samples=n, passed=passed, sample_ids=ids, per_sample_success=flags,
               gate=dict(record["gate"]), config_id=cid)
    return out


def validate_records(records: Iterable[Mapping[str, Any]]) -> list[dict]:
    """Validate every record; return normalised copies in display order.

    Adds ``config_id``, ``n_success`` and ``success_rate_ci`` ([low, high], Wilson 95%).
    Raises :class:`RecordError` (a ValueError) on the first invalid record or a duplicate id.
    """
    if isinstance(records, Mapping):
        raise RecordError("expected a list of records, found a single mapping")
    out, seen = [], {}
    for index, record in enumerate(records):
        rec = validate_record(record, index)
        cid = rec["config_id"]
        if cid in seen:
            raise _fail(cid, "config_id", f"duplicate configuration (records #{seen[cid]} and #{index})")
        seen[cid] = index
        k = sum(rec["per_sample_success"])
        rec["n_success"] = k
        rec["success_rate_ci"] = list(wilson_interval(k, rec["n_samples"]))
        out.append(rec)
    if not out:
        raise RecordError("no records to report")
    return sorted(out, key=sort_key)


def success_rate(record: Mapping[str, Any]) -> float:
    """The rate the statistics use: exactly k/n from the per-sample outcomes."""
    outcomes = record["per_sample_success"]
    return sum(bool(x) for x in outcomes) / len(outcomes)


def deployed_runtime(record: Mapping[str, Any]) -> str | None:
    """The runtime that ran the record's model: its ``runtime``, else its framework's native one
    (records written before the runtime axis carry none); None on the PC (the framework itself)."""
    if record.get("platform") == "pc":
        return None
    return record.get("runtime") or NATIVE_RUNTIMES.get(record.get("framework"))


RUNTIME_NAMES = runtime_axis_registry.view(lambda: {k.name: k.title for k in runtime_axis_registry.RUNTIMES})  # each runtime's title


def runtime_order(framework: str, runtimes: Iterable[str]) -> list[str]:
    """The framework's native runtime first, then the registered runtimes in registry order, then the rest."""
    known = list(runtime_axis_registry.RUNTIMES.names())
    native = NATIVE_RUNTIMES.get(framework)
    return sorted(set(runtimes), key=lambda r: (r != native, known.index(r) if r in known else len(known), r))
