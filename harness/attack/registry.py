"""The attacks this suite runs: one registry, in one place.

Adding an attack is one class (:class:`harness.attack.attacks.Attack`: name, kind,
title, parameter schema, ``run``), one entry in :data:`BUILTIN` (or a ``register(cls)``
call from elsewhere), and a table for it in the profiles that should run it. The
profiles' validation, the matrix and its case ids, the fingerprint, the baseline and the
report all follow from here. Registry order is the matrix order, so ids stay stable.
"""

from __future__ import annotations

import re

from harness.attack.attacks import (BIM, FGSM, KINDS, PGD, Attack, AttackError, Boundary, CarliniWagnerL2,
                                    DeepFool, HopSkipJump)
from harness.attack.params import Param
from harness.attack.square import Square

# The built-in attacks, in matrix order. The paper's three first: the default profile's ids are these.
BUILTIN = (FGSM, BIM, Boundary, PGD, DeepFool, CarliniWagnerL2, HopSkipJump, Square)

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")  # an id part: no "-" (the ids' separator), no spaces
_ATTACKS: dict[str, type[Attack]] = {}


class UnknownAttack(AttackError):
    pass


def register(cls: type[Attack]) -> type[Attack]:
    """Add an attack class (usable as a decorator); its declaration is checked here, once."""
    where = f"attack class {cls.__module__}.{cls.__qualname__}"
    if not (isinstance(cls, type) and issubclass(cls, Attack)):
        raise TypeError(f"{where}: must subclass harness.attack.attacks.Attack")
    if not isinstance(cls.name, str) or not _NAME.match(cls.name):
        raise TypeError(f"{where}: name must be lowercase letters, digits and '_' (it is part of the matrix "
                        f"ids, whose separator is '-'), got {cls.name!r}")
    if cls.name in _ATTACKS and _ATTACKS[cls.name] is not cls:
        raise TypeError(f"{where}: an attack named {cls.name!r} is already registered ({_ATTACKS[cls.name]!r})")
    if cls.kind not in KINDS:
        raise TypeError(f"{where}: kind must be one of {KINDS}, got {cls.kind!r}")
    if not isinstance(cls.params, dict) or not all(isinstance(k, str) and isinstance(p, Param)
                                                   for k, p in cls.params.items()):
        raise TypeError(f"{where}: params must be a dict of parameter name -> harness.attack.params.Param")
    if cls.run is Attack.run:
        raise TypeError(f"{where}: must implement run(model, images01, labels, seed)")
    _ATTACKS[cls.name] = cls
    return cls


def unregister(name: str) -> None:
    """Remove an attack (tests that register one of their own clean up with this)."""
    _ATTACKS.pop(name, None)


def names() -> tuple[str, ...]:
    """Every registered attack's name, in registry (matrix) order."""
    return tuple(_ATTACKS)


def attack_class(name: str) -> type[Attack]:
    if name not in _ATTACKS:
        raise UnknownAttack(f"unknown attack {name!r}; registered attacks are {list(_ATTACKS)}")
    return _ATTACKS[name]


def make_attack(name: str, params: dict) -> Attack:
    return attack_class(name)(**params)


def title(name: str) -> str:
    """The attack's name as the report writes it (its own name when it is not registered)."""
    cls = _ATTACKS.get(name)
    return cls.title or cls.name if cls is not None else name


for _cls in BUILTIN:
    register(_cls)
