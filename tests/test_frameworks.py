"""TensorFlow and PyTorch share a process in either import order (harness.frameworks)."""

import importlib.machinery
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Each snippet ends by using both frameworks, so a half-working import fails too.
USE_BOTH = (
    "import numpy as np, torch, torchvision.models, tensorflow as tf;"
    "m = torchvision.models.mobilenet_v3_small(num_classes=3).eval();"
    "assert m(torch.zeros(1, 3, 32, 32)).shape == (1, 3);"
    "assert float(tf.reduce_sum(tf.ones(3))) == 3.0; print('both ok')"
)


ORDERS = {
    "tensorflow-first": "import tensorflow; import harness",
    "harness-then-tensorflow": "import harness; import tensorflow",
    "torchvision-first": "import torchvision; import harness",
    "harness-then-torch": "import harness; import torch",
}
# Is triton installed? Asked of the import path, not importlib.util.find_spec: in this process
# `import harness` (conftest) has already marked triton absent in sys.modules, and find_spec
# would answer None even where it is installed.
HAS_TRITON = importlib.machinery.PathFinder.find_spec("triton") is not None
NO_TRITON = "triton is not installed here (CPU-only or ARM torch): no triton-after-TensorFlow trap to show"

SNIPPETS = {
    **{order: f"{first}; {USE_BOTH}" for order, first in ORDERS.items()},
    "loaders": ("import harness; from harness.frameworks import import_tensorflow, import_torch;"
                "tf = import_tensorflow(); torch = import_torch(); import torchvision.models; print('ok')"),
    **({"bare-trap": "import tensorflow; import triton"} if HAS_TRITON else {}),
}


@pytest.fixture(scope="module")
def runs() -> dict[str, subprocess.CompletedProcess]:
    """Every snippet in its own fresh interpreter, two at a time (each spends ~10 s importing
    both frameworks; more at once would only add memory on two cores)."""
    env = {"PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"}

    def run(code: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)

    with ThreadPoolExecutor(2) as pool:
        return dict(zip(SNIPPETS, pool.map(run, SNIPPETS.values())))


@pytest.mark.parametrize("order", list(ORDERS))
def test_both_frameworks_work_in_either_order(runs, order):
    result = runs[order]
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr[-2000:]}"
    assert "both ok" in result.stdout


def test_harness_loaders_import_in_either_order(runs):
    result = runs["loaders"]
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-2000:]


@pytest.mark.skipif(not HAS_TRITON, reason=NO_TRITON)
def test_the_trap_the_guard_exists_for_is_still_real(runs):
    """Without the guard, triton after TensorFlow segfaults: if this ever stops, the guard can go."""
    result = runs["bare-trap"]
    assert result.returncode == -11, (
        f"`import tensorflow; import triton` exited {result.returncode}, not SIGSEGV: "
        "the trap is gone on this environment and harness.frameworks' guard may be removed"
    )
