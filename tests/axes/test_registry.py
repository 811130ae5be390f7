"""The generic registry: order, one-line unknown-name message, duplicates, validation, entry points."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import pytest

from harness.axes.registry import RegistrationError, Registry, UnknownName


@dataclass(frozen=True)
class Item:
    name: str
    size: int = 1


def test_names_keep_registration_order_and_register_is_a_decorator_or_a_call():
    reg = Registry("thing")
    reg.register(Item("b"))

    @reg.register
    @dataclass(frozen=True)
    class A:
        name = "a"

    assert reg.names() == ("b", "a") and reg.get("a") is A and "b" in reg and len(reg) == 2


def test_unknown_name_is_one_line_listing_the_valid_ones():
    reg = Registry("thing")
    reg.register(Item("x"))
    with pytest.raises(UnknownName) as caught:
        reg.get("y")
    assert str(caught.value) == "unknown thing 'y'; registered things are ['x']"


def test_duplicates_bad_names_and_the_validation_hook_are_refused():
    def validate(item, where):
        if item.size < 1:
            raise RegistrationError(f"{where}: size must be positive")

    reg = Registry("thing", validate=validate)
    first = reg.register(Item("x"))
    assert reg.register(first) is first  # the same object again: no-op
    with pytest.raises(RegistrationError, match="a thing named 'x' is already registered"):
        reg.register(Item("x", 2))
    with pytest.raises(RegistrationError, match="name must be lowercase"):
        reg.register(Item("bad-name"))
    with pytest.raises(RegistrationError, match="size must be positive"):
        reg.register(Item("y", 0))
    assert reg.names() == ("x",)


def test_builtins_and_entry_points_load_lazily_on_first_use(tmp_path, monkeypatch):
    (tmp_path / "reg_builtin_mod.py").write_text(
        "from tests.axes.test_registry import Item\nimport reg_holder\nreg_holder.REG.register(Item('builtin'))\n")
    (tmp_path / "reg_plugin_mod.py").write_text("from tests.axes.test_registry import Item\nTHING = Item('plugin')\n")
    dist = tmp_path / "reg_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: reg-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[test.registry.things]\nplugin = reg_plugin_mod:THING\n")
    holder = type(sys)("reg_holder")
    holder.REG = Registry("thing", group="test.registry.things", builtins=("reg_builtin_mod",))
    monkeypatch.setitem(sys.modules, "reg_holder", holder)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert holder.REG._items == {}  # nothing imported before the first lookup
    assert holder.REG.names() == ("builtin", "plugin")
    assert holder.REG.get("plugin").name == "plugin"
