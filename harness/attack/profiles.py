"""Run profiles (``profiles.toml`` at the repository root): every number of a run comes from one."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

PROFILES_FILE = Path(__file__).resolve().parents[2] / "profiles.toml"
ATTACKS = ("fgsm", "bim", "boundary")


class ProfileError(ValueError):
    pass


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    samples: int
    calibration: int
    seed: int
    attack_batch_size: int
    attacks: dict = field(default_factory=dict)  # attack name -> its parameters
    # How many of the samples an emulated platform (arm64 under qemu) evaluates: the first
    # N of the drawn samples (the draw is random, so they are a random subset). None: all.
    emulated_samples: int | None = None

    def attack_params(self, attack: str) -> dict:
        if attack not in self.attacks:
            raise ProfileError(f"profile {self.name!r} has no attack {attack!r}; it has {sorted(self.attacks)}")
        return dict(self.attacks[attack])

    def to_dict(self) -> dict:
        return {"name": self.name, "description": self.description, "samples": self.samples,
                "calibration": self.calibration, "seed": self.seed,
                "attack_batch_size": self.attack_batch_size, "attacks": self.attacks,
                "emulated_samples": self.emulated_samples}


_REQUIRED = {
    "fgsm": {"eps"},
    "bim": {"eps", "steps", "rel_stepsize"},
    "boundary": {"steps", "spherical_step", "source_step", "init_directions", "init_retries"},
}


def load_profiles(path: Path = PROFILES_FILE) -> dict[str, Profile]:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ProfileError(f"{path}: profiles file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: not valid TOML ({exc})") from exc
    return {name: _parse(path, name, body) for name, body in raw.items()}


def load_profile(name: str, path: Path = PROFILES_FILE) -> Profile:
    profiles = load_profiles(path)
    if name not in profiles:
        raise ProfileError(f"unknown profile {name!r}; {Path(path).name} defines {sorted(profiles)}")
    return profiles[name]


def _parse(path: Path, name: str, body: dict) -> Profile:
    where = f"{path.name} [{name}]"

    def positive_int(key: str, value) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ProfileError(f"{where}: {key} must be a positive integer, got {value!r}")
        return value

    for key in ("samples", "calibration", "seed", "attack_batch_size", *ATTACKS):
        if key not in body:
            raise ProfileError(f"{where}: missing {key!r}")
    attacks = {}
    for attack in ATTACKS:
        params = dict(body[attack])
        missing = _REQUIRED[attack] - set(params)
        unknown = set(params) - _REQUIRED[attack]
        if missing or unknown:
            raise ProfileError(f"{where}: {attack} needs exactly {sorted(_REQUIRED[attack])}; "
                               f"missing {sorted(missing)}, unknown {sorted(unknown)}")
        if "eps" in params and not (isinstance(params["eps"], (int, float)) and 0 < params["eps"] <= 1):
            raise ProfileError(f"{where}: {attack}.eps must be in (0, 1] on the [0, 1] pixel scale, got {params['eps']!r}")
        for key in ("steps", "init_directions"):
            if key in params:
                positive_int(f"{attack}.{key}", params[key])
        if "init_retries" in params and (not isinstance(params["init_retries"], int) or params["init_retries"] < 0):
            raise ProfileError(f"{where}: {attack}.init_retries must be a non-negative integer")
        for key in ("rel_stepsize", "spherical_step", "source_step"):
            if key in params and not (isinstance(params[key], (int, float)) and params[key] > 0):
                raise ProfileError(f"{where}: {attack}.{key} must be positive, got {params[key]!r}")
        attacks[attack] = params
    seed = body["seed"]
    if not isinstance(seed, int) or seed < 0:
        raise ProfileError(f"{where}: seed must be a non-negative integer, got {seed!r}")
    emulated = body.get("emulated_samples")
    if emulated is not None:
        positive_int("emulated_samples", emulated)
    return Profile(name, str(body.get("description", "")), positive_int("samples", body["samples"]),
                   positive_int("calibration", body["calibration"]), seed,
                   positive_int("attack_batch_size", body["attack_batch_size"]), attacks, emulated)
