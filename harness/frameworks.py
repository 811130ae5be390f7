"""Loading TensorFlow and PyTorch into one process, in either order.

On this machine kind, importing ``triton`` after ``tensorflow`` segfaults (both
bundle conflicting native libraries). Nobody imports triton directly: the CUDA
build of torch pulls it in lazily through ``torch._dynamo`` when torchvision is
imported, which is why the symptom is usually reported as "tensorflow before
torchvision segfaults". The suite never compiles kernels with triton, so the guard
marks it as absent before either framework loads; torch then treats triton as not
installed. If triton was already imported by the caller, it is loaded before
TensorFlow and safe, so the guard leaves it alone.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType

_GUARD_ENV = "HARNESS_ALLOW_TRITON"


def install_import_guard() -> None:
    """Make later ``import triton`` raise ImportError unless it is already loaded.

    Set ``HARNESS_ALLOW_TRITON=1`` to opt out (GPU users who import TensorFlow
    nowhere in the process).
    """
    if os.environ.get(_GUARD_ENV) == "1":
        return
    if "triton" not in sys.modules:
        # A None entry in sys.modules makes `import triton` raise ImportError.
        sys.modules["triton"] = None  # type: ignore[assignment]


def import_torch() -> ModuleType:
    """Import torch (and torchvision) behind the guard."""
    install_import_guard()
    import torch
    import torchvision  # noqa: F401  (loaded here so later imports are cheap and safe)

    return torch


def import_tensorflow() -> ModuleType:
    """Import TensorFlow behind the guard, with its C++ log noise turned down."""
    install_import_guard()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


def import_keras() -> ModuleType:
    import_tensorflow()
    import keras

    return keras
