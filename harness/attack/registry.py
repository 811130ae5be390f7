"""The attacks this suite runs: one registry, in one place.

Adding an attack is one class (:class:`harness.attack.attacks.Attack`: name, kind,
title, parameter schema, ``run``), one entry in :data:`BUILTIN` (or a ``register(cls)``
call from elsewhere), and a table for it in the profiles that should run it. The
profiles' validation, the matrix and its case ids, the fingerprint, the baseline and the
report all follow from here. Registry order is the matrix order, so ids stay stable.
"""

from __future__ import annotations

from harness.attack.attacks import (BIM, FGSM, KINDS, PGD, Attack, AttackError, Boundary, CarliniWagnerL2,
                                    DeepFool, HopSkipJump)
from harness.attack.params import Param
from harness.attack.square import Square
from harness.axes.registry import RegistrationError, Registry

# The built-in attacks, in matrix order. The paper's three first: the default profile's ids are these.
BUILTIN = (FGSM, BIM, Boundary, PGD, DeepFool, CarliniWagnerL2, HopSkipJump, Square)


class UnknownAttack(AttackError):
    pass


def _validate(cls, where: str) -> None:
    """An attack class's declaration, checked once, when it is registered."""
    where = f"attack class {cls.__module__}.{cls.__qualname__}"
    if not (isinstance(cls, type) and issubclass(cls, Attack)):
        raise RegistrationError(f"{where}: must subclass harness.attack.attacks.Attack")
    if cls.kind not in KINDS:
        raise RegistrationError(f"{where}: kind must be one of {KINDS}, got {cls.kind!r}")
    if not isinstance(cls.params, dict) or not all(isinstance(k, str) and isinstance(p, Param)
                                                   for k, p in cls.params.items()):
        raise RegistrationError(f"{where}: params must be a dict of parameter name -> harness.attack.params.Param")
    if cls.run is Attack.run:
        raise RegistrationError(f"{where}: must implement run(model, images01, labels, seed)")


def _describe(cls) -> str:
    return f"class {getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', cls)!s}"


ATTACKS: Registry[type[Attack]] = Registry("attack", group="ondevice_robustness.attacks", validate=_validate,
                                           error=UnknownAttack, describe=_describe)


def register(cls: type[Attack]) -> type[Attack]:
    """Add an attack class (usable as a decorator); its declaration is checked here, once."""
    if not (isinstance(cls, type) and issubclass(cls, Attack)):
        raise RegistrationError(f"attack class {cls!r}: must subclass harness.attack.attacks.Attack")
    return ATTACKS.register(cls)


def unregister(name: str) -> None:
    """Remove an attack (tests that register one of their own clean up with this)."""
    ATTACKS.unregister(name)


def names() -> tuple[str, ...]:
    """Every registered attack's name, in registry (matrix) order."""
    return ATTACKS.names()


def attack_class(name: str) -> type[Attack]:
    return ATTACKS.get(name)


def make_attack(name: str, params: dict) -> Attack:
    return attack_class(name)(**params)


def title(name: str) -> str:
    """The attack's name as the report writes it (its own name when it is not registered)."""
    cls = ATTACKS.get(name) if name in ATTACKS else None
    return cls.title or cls.name if cls is not None else name


for _cls in BUILTIN:
    register(_cls)
