"""The Ray executor (``--executor ray``): a set's chunks as Ray tasks on a cluster.

The model travels through Ray's object store (``ray.put``) as a recipe: its spec and weight
bytes, rebuilt once per worker process (a zoo whose models cannot be rebuilt from their spec
sends the pickled model instead). The samples travel the same way. Each chunk is one task with
``max_retries`` (Ray retries a task whose worker process died); the driver collects results
with ``ray.wait`` as they finish and hands each to ``on_done`` at once, which saves it into the
cache's partial folder, so nothing finished is lost if the driver dies. Workers never write the
artefact cache.

The code is not shipped: every node runs the same checkout and virtual environment (the tasks
get this checkout's root on ``PYTHONPATH``).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness.executor.base import Chunk, ChunkJob, ChunkResult, Executor, ExecutorError, framework_threads, run_chunk

REPO_ROOT = Path(__file__).resolve().parents[2]
MAX_RETRIES = 3
# Zoos whose models are rebuilt from (spec, weights bytes) in the worker.
REBUILDABLE_ZOOS = ("mini",)


@dataclass
class ModelRecipe:
    """What a worker needs to rebuild a model: spec and weight bytes, or the pickled model."""

    spec: object  # ModelSpec
    weights_digest: str
    weights_suffix: str = ""
    weights: bytes | None = None
    model: object | None = None  # a ZooModel, for zoos outside REBUILDABLE_ZOOS

    @classmethod
    def of(cls, model) -> "ModelRecipe":
        from harness.zoo.frameworks import ADAPTERS

        path = model.weights_path
        if model.spec.zoo in REBUILDABLE_ZOOS and path is not None and Path(path).is_file():
            return cls(model.spec, model.weights_digest, ADAPTERS[model.spec.framework].weights_suffix,
                       Path(path).read_bytes())
        return cls(model.spec, model.weights_digest, model=model)

    def build(self):
        if self.model is not None:
            return self.model
        from harness.zoo import registry
        from harness.zoo.base import ZooModel
        from harness.zoo.frameworks import ADAPTERS

        digest = hashlib.sha256(self.weights).hexdigest()
        if digest != self.weights_digest:
            raise ExecutorError(f"{self.spec.id}: weights arrived with SHA-256 {digest[:12]}..., "
                                f"expected {self.weights_digest[:12]}...")
        adapter = ADAPTERS[self.spec.framework]
        module = registry.zoo_module(self.spec.zoo).build(self.spec.framework, self.spec.name)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"weights{self.weights_suffix}"
            path.write_bytes(self.weights)
            adapter.load_weights(module, path)
        return ZooModel(self.spec, module, None, self.weights_digest, adapter.forward(module))


_WORKER_CACHE: dict = {}  # per worker process: (digest, attack, params) -> (attack, FoolboxModel)


def _attack_chunk(recipe: ModelRecipe, attack_name: str, params: dict, images01, labels, chunk: Chunk,
                  threads: dict) -> ChunkResult:
    """The task body, in a Ray worker process."""
    import harness  # noqa: F401  (the framework import guard)
    from harness.frameworks import import_torch

    torch = import_torch()  # torch before TensorFlow, always, in every process that may load both
    if "torch" in threads and torch.get_num_threads() != threads["torch"]:
        torch.set_num_threads(threads["torch"])  # the driver's count: the same float results
    from harness.attack.attacks import FoolboxModel
    from harness.attack.registry import make_attack

    key = (recipe.weights_digest, attack_name, json.dumps(params, sort_keys=True))
    if key not in _WORKER_CACHE:
        _WORKER_CACHE.clear()  # one model at a time per worker: small memory
        _WORKER_CACHE[key] = (make_attack(attack_name, params), FoolboxModel(recipe.build()))
    attack, fmodel = _WORKER_CACHE[key]
    rows = slice(chunk.start, chunk.stop)
    return run_chunk(attack, fmodel, images01[rows], labels[rows], chunk)


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """A clear error, at once, for a HOST:PORT where no Ray head listens."""
    if address in ("auto", "local") or "://" in address:
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ExecutorError(f"--ray-address {address!r}: expected HOST:PORT (the head's GCS address, "
                            f"as `ray start --head` prints it)")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ExecutorError(f"--ray-address {address}: no Ray head reachable there ({exc.strerror or exc}); "
                            f"start one with `ray start --head --port {port}` or omit --ray-address to start "
                            f"a local Ray") from None


class RayExecutor(Executor):
    name = "ray"

    def __init__(self, address: str | None = None, log: Callable[[str], None] = print,
                 max_retries: int = MAX_RETRIES):
        self.address = address or None
        self.log = log
        self.max_retries = max_retries
        self._started = False  # whether this executor called ray.init (and so shuts it down)
        self._connected = False
        self._remote = None

    def connect(self):
        try:
            import ray
        except ImportError as exc:
            raise ExecutorError(f"--executor ray needs the ray package ({exc}); it is in requirements.lock: "
                                f"`make test` installs it") from None
        if self._connected:
            return ray
        if self.address:
            check_reachable(self.address)
        if ray.is_initialized():  # this process already joined a cluster: it must be the one asked for
            joined = ray.get_runtime_context().gcs_address  # the head's IP may read otherwise: compare ports
            if self.address and self.address != "auto" and self.address.rpartition(":")[2] != joined.rpartition(":")[2]:
                raise ExecutorError(f"--ray-address {self.address}: this process already joined Ray at {joined}")
        else:
            env = {"PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p),
                   "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
            try:
                ray.init(address=self.address, runtime_env={"env_vars": env}, logging_level="WARNING",
                         log_to_driver=False, configure_logging=True)
            except Exception as exc:  # ConnectionError, a timeout, a version mismatch
                raise ExecutorError(f"Ray at {self.address or '(a new local instance)'} could not be joined: "
                                    f"{type(exc).__name__}: {exc}") from None
            self._started = True
        self._remote = ray.remote(num_cpus=1, max_retries=self.max_retries, retry_exceptions=False)(_attack_chunk)
        self._connected = True
        return ray

    def describe(self) -> dict:
        ray = self.connect()
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        return {"executor": self.name, "ray_version": ray.__version__,
                "address": ray.get_runtime_context().gcs_address, "nodes": len(nodes),
                "cpus": ray.cluster_resources().get("CPU", 0), "max_retries": self.max_retries}

    def run(self, job: ChunkJob, chunks: list[Chunk], on_done: Callable[[Chunk, ChunkResult], None]) -> None:
        if not chunks:
            return
        ray = self.connect()
        recipe = ray.put(ModelRecipe.of(job.model))
        images, labels = ray.put(job.images01), ray.put(job.labels)
        threads = framework_threads()
        pending = {self._remote.remote(recipe, job.attack, job.params, images, labels, chunk, threads): chunk
                   for chunk in chunks}
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    chunk = pending.pop(ref)
                    on_done(chunk, ray.get(ref))
        finally:
            for ref in pending:  # interrupted: what is still running is not wanted
                ray.cancel(ref, force=True)

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
        self._started = self._connected = False
