"""Run profiles (``profiles.toml`` at the repository root): every number of a run comes from one."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from harness.attack import registry
from harness.attack.params import ParamError, check_params

PROFILES_FILE = Path(__file__).resolve().parents[2] / "profiles.toml"
# Another profiles file for the whole process (pytest, python -m harness): a team's own
# numbers without editing the committed file, and how the tests feed in a broken one.
PROFILES_ENV = "HARNESS_PROFILES"


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
    # attack name -> its parameters (checked, defaults filled in), for the attacks this profile
    # runs, in registry order: the matrix runs these and no others
    attacks: dict = field(default_factory=dict)
    # How many of the samples an emulated platform (arm64 under qemu) evaluates: the first
    # N of the drawn samples (the draw is random, so they are a random subset). None: all.
    emulated_samples: int | None = None
    # Attacks run against the deployed model itself (each mobile runtime on each platform,
    # queried directly): decision- and score-based attacks only, name -> parameters, in
    # registry order. Their matrix cases are named DIRECT_PREFIX + name.
    direct: dict = field(default_factory=dict)
    # How many of the drawn samples the direct attacks attack (the first N; the draw is
    # random). None: all of them (an emulated platform still stops at emulated_samples).
    direct_samples: int | None = None
    # ... and how many on an emulated platform, where each query costs milliseconds to a second.
    direct_emulated_samples: int | None = None

    @property
    def attack_names(self) -> tuple[str, ...]:
        """The attacks this profile runs, in registry (matrix) order: transfer attacks, then
        the direct ones under their case names (``direct_boundary``)."""
        return tuple(self.attacks) + tuple(DIRECT_PREFIX + name for name in self.direct)

    @property
    def transfer_names(self) -> tuple[str, ...]:
        """The attacks run on the PC model whose PNGs every platform is measured on."""
        return tuple(self.attacks)

    def attack_params(self, attack: str) -> dict:
        if attack.startswith(DIRECT_PREFIX) and attack[len(DIRECT_PREFIX):] in self.direct:
            return dict(self.direct[attack[len(DIRECT_PREFIX):]])
        if attack not in self.attacks:
            raise ProfileError(f"profile {self.name!r} has no attack {attack!r}; it has {sorted(self.attacks)}")
        return dict(self.attacks[attack])

    def to_dict(self) -> dict:
        return {"name": self.name, "description": self.description, "samples": self.samples,
                "calibration": self.calibration, "seed": self.seed,
                "attack_batch_size": self.attack_batch_size, "attacks": self.attacks,
                "emulated_samples": self.emulated_samples,
                **({"direct": self.direct, "direct_samples": self.direct_samples,
                    "direct_emulated_samples": self.direct_emulated_samples} if self.direct else {})}


DIRECT_PREFIX = "direct_"
# The kinds of attack that can query a deployed model: they need its answers, not its gradients.
DIRECT_KINDS = ("decision", "score")
SETTINGS = ("description", "samples", "calibration", "seed", "attack_batch_size", "emulated_samples", "direct")
_REQUIRED_SETTINGS = ("samples", "calibration", "seed", "attack_batch_size")


def profiles_file() -> Path:
    """The profiles file this process reads: ``$HARNESS_PROFILES`` if set, else the committed one."""
    return Path(os.environ[PROFILES_ENV]) if os.environ.get(PROFILES_ENV) else PROFILES_FILE


def load_profiles(path: Path | None = None) -> dict[str, Profile]:
    path = Path(path) if path is not None else profiles_file()
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ProfileError(f"{path}: profiles file not found") from None
    except UnicodeDecodeError as exc:
        raise ProfileError(f"{path}: not UTF-8 text ({exc})") from None
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read the profiles file ({exc})") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: not valid TOML ({exc})") from exc
    return {name: _parse(path, name, body) for name, body in raw.items()}


def load_profile(name: str, path: Path | None = None) -> Profile:
    path = Path(path) if path is not None else profiles_file()
    profiles = load_profiles(path)
    if name not in profiles:
        raise ProfileError(f"unknown profile {name!r}; {path.name} defines {sorted(profiles)}")
    return profiles[name]


class _Checker:
    """Checks one profile's values; every error names the file, the profile and the key."""

    def __init__(self, path: Path, name: str):
        self.where = f"{path} [{name}]"

    def fail(self, key: str, expected: str, value) -> ProfileError:
        return ProfileError(f"{self.where}: {key} must be {expected}, got {value!r}")

    def integer(self, key: str, value, minimum: int) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise self.fail(key, "a positive integer" if minimum == 1 else "a non-negative integer", value)
        return value

    def table(self, key: str, value) -> dict:
        if not isinstance(value, dict):
            raise self.fail(key, "a table (e.g. `key = { ... }` or a [section])", value)
        return value


def _attack_params(check: _Checker, attack: str, value, name: str | None = None) -> dict:
    """One attack's table, checked against its class's schema (harness.attack.params)."""
    params = dict(check.table(attack, value))
    try:
        return check_params(attack, registry.attack_class(name or attack).params, params)
    except ParamError as exc:
        raise ProfileError(f"{check.where}: {exc}") from None


def _parse(path: Path, name: str, body) -> Profile:
    check = _Checker(path, name)
    if not isinstance(body, dict):
        raise ProfileError(f"{path}: {name!r} must be a profile table ([{name}] with its keys), got {body!r}")
    missing = [key for key in _REQUIRED_SETTINGS if key not in body]
    if missing:
        raise ProfileError(f"{check.where}: missing {missing[0]!r}" + (f" (and {missing[1:]})" if missing[1:] else ""))
    known = registry.names()
    unknown = sorted(set(body) - set(SETTINGS) - set(known))
    tables = [key for key in unknown if isinstance(body[key], dict)]
    if tables:  # a table that is not a registered attack: most likely a typo or an unregistered one
        raise ProfileError(f"{check.where}: unknown attack {tables[0]!r}; registered attacks are {list(known)}")
    if unknown:
        raise ProfileError(f"{check.where}: unknown keys {unknown}; a profile has {sorted(SETTINGS)} "
                           f"and a table per attack it runs, from {list(known)}")
    runs = [attack for attack in known if attack in body]  # registry order: the matrix's order
    direct, direct_samples, direct_emulated = _direct(check, body.get("direct"), known)
    if not runs and not direct:
        raise ProfileError(f"{check.where}: runs no attack; give a table (e.g. `fgsm = {{ eps = 0.01 }}`) "
                           f"for at least one of {list(known)}")
    description = body.get("description", "")
    if not isinstance(description, str):
        raise check.fail("description", "a string", description)
    emulated = body.get("emulated_samples")
    return Profile(name, description, check.integer("samples", body["samples"], 1),
                   check.integer("calibration", body["calibration"], 1), check.integer("seed", body["seed"], 0),
                   check.integer("attack_batch_size", body["attack_batch_size"], 1),
                   {attack: _attack_params(check, attack, body[attack]) for attack in runs},
                   None if emulated is None else check.integer("emulated_samples", emulated, 1),
                   direct, direct_samples, direct_emulated)


def _direct(check: _Checker, value, known) -> tuple[dict, int | None, int | None]:
    """The ``direct`` table: ``samples``, ``emulated_samples`` and a table per attack to run
    against the deployed models, each a decision- or score-based attack checked against its schema."""
    if value is None:
        return {}, None, None
    body = dict(check.table("direct", value))
    samples, emulated = body.pop("samples", None), body.pop("emulated_samples", None)
    if samples is not None:
        samples = check.integer("direct.samples", samples, 1)
    if emulated is not None:
        emulated = check.integer("direct.emulated_samples", emulated, 1)
    unknown = sorted(set(body) - set(known))
    if unknown:
        raise ProfileError(f"{check.where}: direct.{unknown[0]} is not a registered attack; registered attacks "
                           f"are {list(known)} (and direct.samples, direct.emulated_samples)")
    wrong = [a for a in known if a in body and registry.attack_class(a).kind not in DIRECT_KINDS]
    if wrong:
        raise ProfileError(f"{check.where}: direct.{wrong[0]} is a {registry.attack_class(wrong[0]).kind} attack; "
                           f"an attack on a deployed model can only query it, so direct attacks must be "
                           f"{' or '.join(DIRECT_KINDS)}-based: "
                           f"{[a for a in known if registry.attack_class(a).kind in DIRECT_KINDS]}")
    attacks = {a: _attack_params(check, f"direct.{a}", body[a], a) for a in known if a in body}
    if not attacks:
        raise ProfileError(f"{check.where}: direct runs no attack; give a table for at least one of "
                           f"{[a for a in known if registry.attack_class(a).kind in DIRECT_KINDS]}")
    return attacks, samples, emulated
