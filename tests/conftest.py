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


# A real two-node Ray cluster on loopback, one per session (tests/executor, tests/bench): one driver
# process cannot join a second Ray after leaving the first.
from tests.ray_cluster import ray_cluster  # noqa: E402,F401
