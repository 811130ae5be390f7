"""One registry for every axis of the matrix: attacks, runtimes, platforms, zoos, executors.

    RUNTIMES = Registry("runtime", group="ondevice_robustness.runtimes",
                        builtins=("harness.runtime.litert", ...))
    RUNTIMES.register(LITERT)            # a call, or @RUNTIMES.register on a class
    RUNTIMES.get("litert")               # UnknownName lists the registered names
    RUNTIMES.names()                     # registration order: the matrix's (and its ids') order

An item is anything with a ``name`` (an id part: lowercase letters, digits, ``_``; ``-`` is
the ids' separator). A registry checks each item once, when it is registered: the name, no
second item under a name, and the kind's own ``validate`` hook. On first use (``get``,
``names``, iteration) it imports its ``builtins`` modules, in order (each registers what it
declares with one line), then loads the installed distributions' entry points of its
``group``: an entry point naming a module registers by importing it, one naming an object
(``pkg.mod:THING``) registers that object.
"""

from __future__ import annotations

import importlib
import re
import threading
import types
from importlib.metadata import entry_points
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")
NAME = re.compile(r"^[a-z][a-z0-9_]*$")  # an id part


class UnknownName(LookupError, ValueError):
    """A name that is not registered; the message lists the registered ones."""


class RegistrationError(TypeError):
    """An item that cannot be registered (bad name, duplicate, or refused by the kind's validate)."""


class Registry(Generic[T]):
    def __init__(self, kind: str, *, group: str | None = None, builtins: tuple[str, ...] = (),
                 validate: Callable[[T, str], None] | None = None, error: type[Exception] = UnknownName,
                 describe: Callable[[T], str] = repr):
        self.kind = kind
        self.group = group
        self.builtins = tuple(builtins)
        self._validate = validate
        self._error = error
        self._describe = describe
        self._items: dict[str, T] = {}
        self._loaded = False
        self._lock = threading.RLock()

    # -- registration -----------------------------------------------------------------------------
    def register(self, item: T) -> T:
        """Add ``item`` (usable as a decorator); re-registering the same object is a no-op."""
        name = getattr(item, "name", None)
        where = f"{self.kind} {self._describe(item)}"
        if not isinstance(name, str) or not NAME.match(name):
            raise RegistrationError(f"{where}: name must be lowercase letters, digits and '_' (it is part of the "
                                    f"matrix ids, whose separator is '-'), got {name!r}")
        with self._lock:
            other = self._items.get(name)
            if other is item:
                return item
            if other is not None:
                article = "an" if self.kind[:1] in "aeiou" else "a"
                raise RegistrationError(f"{where}: {article} {self.kind} named {name!r} is already registered "
                                        f"({self._describe(other)})")
            if self._validate is not None:
                self._validate(item, where)
            self._items[name] = item
        return item

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests that register one of their own clean up with this)."""
        with self._lock:
            self._items.pop(name, None)

    # -- lookups ----------------------------------------------------------------------------------
    def get(self, name: str) -> T:
        self.load()
        try:
            return self._items[name]
        except (KeyError, TypeError):
            raise self._error(f"unknown {self.kind} {name!r}; registered {self.kind}s are "
                              f"{list(self._items)}") from None

    def names(self) -> tuple[str, ...]:
        """Every registered name, in registration order (the matrix order)."""
        self.load()
        return tuple(self._items)

    def items(self) -> tuple[T, ...]:
        self.load()
        return tuple(self._items.values())

    def find(self, predicate: Callable[[T], bool]) -> T | None:
        """The first registered item for which ``predicate`` holds (None if none does)."""
        return next((item for item in self.items() if predicate(item)), None)

    def __contains__(self, name: object) -> bool:
        self.load()
        return name in self._items

    def __iter__(self) -> Iterator[T]:
        return iter(self.items())

    def __len__(self) -> int:
        self.load()
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self._items)})"

    # -- loading ----------------------------------------------------------------------------------
    def load(self) -> None:
        """Import the built-in modules, then the entry points' additions (once per process)."""
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            self._loaded = True  # first: a module being imported may look the registry up
            for module in self.builtins:
                importlib.import_module(module)
            if self.group is not None:
                for point in entry_points(group=self.group):
                    self._load_entry_point(point)

    def _load_entry_point(self, point) -> None:
        try:
            loaded = point.load()
        except Exception as exc:
            raise RegistrationError(f"{self.kind} entry point {point.name} = {point.value} (group {self.group}) "
                                    f"does not load: {type(exc).__name__}: {exc}") from None
        if not isinstance(loaded, types.ModuleType):  # an object: register it (a module registered itself)
            self.register(loaded)
