"""The executor stage: where an adversarial set's chunks run.

``EXECUTORS`` maps each ``--executor`` value to its factory ``(address, log) -> Executor``;
another engine is one module and one line here.
"""

from __future__ import annotations

from typing import Callable

from harness.executor.base import Chunk, ChunkJob, Executor, ExecutorError


def _local(address: str | None = None, log: Callable[[str], None] = print) -> Executor:
    from harness.executor.local import LocalExecutor

    if address:
        raise ExecutorError("--ray-address is for --executor ray; the local executor takes no address")
    return LocalExecutor(log)


def _ray(address: str | None = None, log: Callable[[str], None] = print) -> Executor:
    from harness.executor.ray_executor import RayExecutor

    return RayExecutor(address, log)


EXECUTORS = {"local": _local, "ray": _ray}
DEFAULT = "local"


def make_executor(name: str = DEFAULT, address: str | None = None, log: Callable[[str], None] = print) -> Executor:
    if name not in EXECUTORS:
        raise ExecutorError(f"unknown executor {name!r}; expected one of {tuple(EXECUTORS)}")
    return EXECUTORS[name](address, log)


__all__ = ["Chunk", "ChunkJob", "Executor", "ExecutorError", "EXECUTORS", "DEFAULT", "make_executor"]
