"""An attack's parameter schema: what a profile may set for it, checked before anything runs.

Each attack class declares ``params = {key: Param, ...}``; :func:`check_params` checks a
profile's table against it (every key known, every required key present, every value of
the right type and in range) and fills in the defaults, so the parameters a run records
(cache keys, fingerprints, the report) are always the complete set it ran with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

PARAM_TYPES = ("int", "float", "bool", "choice")


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


class ParamError(ValueError):
    """A parameter that does not fit its schema; the message names the attack and the key."""


@dataclass(frozen=True)
class Param:
    """One parameter: its type, allowed values, default (or REQUIRED) and a one-line doc.

    ``low``/``high`` bound an int or float (``low_open``: low itself is excluded);
    ``choices`` lists a ``choice`` parameter's strings; ``expected`` overrides the
    generated "must be ..." text where the domain has a better word for it."""

    type: str
    doc: str
    default: Any = REQUIRED
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple[str, ...] = field(default_factory=tuple)
    expected: str | None = None

    def __post_init__(self):
        if self.type not in PARAM_TYPES:
            raise TypeError(f"Param type must be one of {PARAM_TYPES}, got {self.type!r}")
        if self.type == "choice" and not self.choices:
            raise TypeError("a choice Param needs its choices")
        if not self.required:
            self.check(self.default)  # a default outside its own schema is a programming error

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def describe(self) -> str:
        """What a valid value is, e.g. "a positive integer", "one of ['l2', 'linf']"."""
        if self.expected:
            return self.expected
        if self.type == "bool":
            return "true or false"
        if self.type == "choice":
            return f"one of {list(self.choices)}"
        noun = "integer" if self.type == "int" else "number"
        low, high = self.low, self.high
        if high is None and low == 0 and self.low_open:
            return f"a positive {noun}"
        if high is None and low == 1 and self.type == "int":
            return "a positive integer"
        if high is None and low == 0:
            return f"a non-negative {noun}"
        if low is None and high is None:
            return f"a finite {noun}" if noun == "number" else "an integer"
        article = "an" if noun == "integer" else "a"
        if high is None:
            return f"{article} {noun} {'>' if self.low_open else '>='} {low}"
        if low is None:
            return f"{article} {noun} <= {high}"
        return f"{article} {noun} in {'(' if self.low_open else '['}{low}, {high}]"

    def check(self, value: Any) -> Any:
        """``value`` if it fits, else :class:`ValueError` (the caller names the key)."""
        ok: bool
        if self.type == "bool":
            ok = isinstance(value, bool)
        elif self.type == "choice":
            ok = isinstance(value, str) and value in self.choices
        else:
            kinds = (int,) if self.type == "int" else (int, float)
            ok = isinstance(value, kinds) and not isinstance(value, bool) and math.isfinite(value)
            if ok and self.low is not None:
                ok = value > self.low if self.low_open else value >= self.low
            if ok and self.high is not None:
                ok = value <= self.high
        if not ok:
            raise ValueError(self.describe())
        return value


def Int(doc: str, *, low: int | None = 1, high: int | None = None, default: Any = REQUIRED) -> Param:
    return Param("int", doc, default, low, high)


def Float(doc: str, *, low: float | None = 0, high: float | None = None, low_open: bool = True,
          default: Any = REQUIRED, expected: str | None = None) -> Param:
    return Param("float", doc, default, low, high, low_open, expected=expected)


def Bool(doc: str, *, default: Any = REQUIRED) -> Param:
    return Param("bool", doc, default)


def Choice(doc: str, choices: tuple[str, ...], *, default: Any = REQUIRED) -> Param:
    return Param("choice", doc, default, choices=tuple(choices))


def Eps(doc: str = "L-inf budget on the [0, 1] pixel scale (4/255 = 4 grey levels)") -> Param:
    """The L-inf budget every bounded L-inf attack shares: (0, 1] on the [0, 1] pixel scale."""
    return Float(doc, low=0, high=1, expected="in (0, 1] on the [0, 1] pixel scale")


def check_params(attack: str, schema: Mapping[str, Param], params: Mapping[str, Any]) -> dict:
    """The parameters with defaults filled in, or :class:`ParamError` saying what was expected.

    Order: the given keys as given, then the defaulted ones in schema order."""
    unknown = sorted(set(params) - set(schema))
    if unknown:
        raise ParamError(f"{attack} has unknown keys {unknown}; it takes {_keys(schema)}")
    missing = [key for key, p in schema.items() if p.required and key not in params]
    if missing:
        raise ParamError(f"{attack} is missing {missing}: "
                         + "; ".join(f"{key}: {schema[key].describe()} ({schema[key].doc})" for key in missing))
    for key, value in params.items():
        try:
            schema[key].check(value)
        except ValueError as exc:
            raise ParamError(f"{attack}.{key} must be {exc}, got {value!r}") from None
    return {**params, **{key: p.default for key, p in schema.items() if key not in params}}


def _keys(schema: Mapping[str, Param]) -> str:
    return "[" + ", ".join(f"{k!r}" + ("" if p.required else f" (default {p.default!r})")
                           for k, p in schema.items()) + "]"


def schema_doc(schema: Mapping[str, Param]) -> list[str]:
    """One line per parameter: key, what it must be, default or required, doc."""
    return [f"{key}: {p.describe()}, {'required' if p.required else f'default {p.default!r}'} - {p.doc}"
            for key, p in schema.items()]
