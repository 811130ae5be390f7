"""Threshold files: the committed gates a run is judged against.

One JSON file per zoo and profile (``thresholds/<zoo>-<profile>.json``)::

    {"zoo": "mini", "profile": "default", "written_from": {...},
     "gates": {"tensorflow-mobilenet_v2-bim-int8-mobile": {
         "max_success_rate": 0.62, "min_clean_accuracy": 0.86,
         "max_pc_gap": 0.05, "min_pc_agreement": 0.9}, ...}}

Every configuration a run produces must have an entry with every gate its platform
needs (a missing gate is an error, not a skipped check); an entry the run cannot
produce is an error too. ``write_thresholds`` derives the gates from a run's
measurements with a stated margin.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from harness.cache import atomic_write

REPO_ROOT = Path(__file__).resolve().parents[2]
THRESHOLD_DIR = REPO_ROOT / "thresholds"

# gate name -> (measured field, direction): "max" gates fail above, "min" gates below.
GATES = {
    "max_success_rate": ("success_rate", "max"),
    "min_clean_accuracy": ("clean_accuracy", "min"),
    "max_pc_gap": ("pc_gap", "max"),
    "min_pc_agreement": ("adversarial_agreement_with_pc", "min"),
}
PC_GATES = ("max_success_rate", "min_clean_accuracy")
OTHER_PLATFORM_GATES = tuple(GATES)


class ThresholdError(ValueError):
    """A malformed threshold file, an unknown configuration, or a missing gate."""


def required_gates(platform: str) -> tuple[str, ...]:
    """The PC float model is the reference, so PC cases have no PC-vs-mobile gates."""
    return PC_GATES if platform == "pc" else OTHER_PLATFORM_GATES


def default_path(zoo: str, profile: str) -> Path:
    return THRESHOLD_DIR / f"{zoo}-{profile}.json"


@dataclass(frozen=True)
class Verdict:
    gate: str
    field: str
    measured: float
    limit: float
    passed: bool

    @property
    def margin(self) -> float:
        """How far inside (positive) or outside (negative) the gate the measurement is."""
        return self.limit - self.measured if GATES[self.gate][1] == "max" else self.measured - self.limit

    def describe(self, config_id: str) -> str:
        word = "at most" if GATES[self.gate][1] == "max" else "at least"
        state = "passes" if self.passed else "FAILS"
        return (f"{config_id}: {self.field} = {self.measured:.4f}, gate {self.gate} wants {word} "
                f"{self.limit:.4f}: {state} by {abs(self.margin):.4f}")


def load_thresholds(path: Path, valid_ids: Iterable[str], zoo: str, profile: str) -> dict[str, dict]:
    """Read and validate a threshold file against the configurations this run can produce."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ThresholdError(f"{path}: threshold file not found; write one with --write-thresholds") from None
    except json.JSONDecodeError as exc:
        raise ThresholdError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("gates"), dict):
        raise ThresholdError(f"{path}: expected an object with a 'gates' object")
    for key, expected in (("zoo", zoo), ("profile", profile)):
        if raw.get(key) != expected:
            raise ThresholdError(f"{path}: written for {key} {raw.get(key)!r}, this run uses {expected!r}")
    valid = set(valid_ids)
    unknown = sorted(set(raw["gates"]) - valid)
    if unknown:
        raise ThresholdError(f"{path}: configurations this run cannot produce: {unknown[:5]}"
                             f"{' ...' if len(unknown) > 5 else ''}; valid ids look like {sorted(valid)[:3]}")
    gates = {}
    for config_id, entry in raw["gates"].items():
        platform = config_id.rsplit("-", 1)[-1]
        if not isinstance(entry, dict):
            raise ThresholdError(f"{path}: {config_id}: expected an object of gates, found {entry!r}")
        extra = sorted(set(entry) - set(GATES))
        if extra:
            raise ThresholdError(f"{path}: {config_id}: unknown gates {extra}; known {sorted(GATES)}")
        for gate in required_gates(platform):
            if gate not in entry:
                raise ThresholdError(f"{path}: {config_id}: missing gate {gate!r}")
        for gate, value in entry.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ThresholdError(f"{path}: {config_id}: {gate} must be a number in [0, 1], found {value!r}")
        gates[config_id] = {k: float(v) for k, v in entry.items()}
    return gates


def check(gates: Mapping[str, float], measured: Mapping[str, float]) -> list[Verdict]:
    verdicts = []
    for gate, limit in sorted(gates.items()):
        field, direction = GATES[gate]
        value = float(measured[field])
        passed = value <= limit + 1e-12 if direction == "max" else value >= limit - 1e-12
        verdicts.append(Verdict(gate, field, value, float(limit), passed))
    return verdicts


def gates_from_measurement(platform: str, measured: Mapping[str, float], margin: float) -> dict[str, float]:
    """Gates that the measured run passes with ``margin`` to spare (clamped to [0, 1])."""
    if not 0.0 <= margin <= 1.0:
        raise ThresholdError(f"threshold margin must be in [0, 1], got {margin}")
    out = {}
    for gate in required_gates(platform):
        field, direction = GATES[gate]
        value = float(measured[field])
        out[gate] = round(min(1.0, value + margin) if direction == "max" else max(0.0, value - margin), 4)
    return out


def write_thresholds(path: Path, zoo: str, profile: str, gates: Mapping[str, Mapping[str, float]],
                     margin: float, run: str) -> None:
    document = {
        "zoo": zoo,
        "profile": profile,
        "written_from": {"run": run, "margin": margin,
                         "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")},
        "gates": {k: dict(sorted(v.items())) for k, v in sorted(gates.items())},
    }
    atomic_write(path, json.dumps(document, indent=1) + "\n")
