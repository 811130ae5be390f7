"""The matrix's axes (attack, runtime, platform, zoo, executor): one registry mechanism for all."""

from harness.axes.registry import RegistrationError, Registry, UnknownName

__all__ = ["RegistrationError", "Registry", "UnknownName"]
