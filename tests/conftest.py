"""Shared fixtures: the committed data and the trained mini zoo, loaded once per session."""

from __future__ import annotations

import pytest

from harness.data import fashion_mnist
from harness.zoo import registry


@pytest.fixture(scope="session")
def fashion_test():
    return fashion_mnist.load("test", "fixtures")


@pytest.fixture(scope="session")
def fashion_train_subset():
    return fashion_mnist.load("train", "fixtures")


@pytest.fixture(scope="session")
def mini_models():
    """All six trained mini models, keyed by (framework, name)."""
    return {(f, n): registry.load("mini", f, n) for f, n in registry.combinations("mini")}
