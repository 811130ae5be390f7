"""Runtimes that execute in the on-device runner (``android_harness/runner.py``), not in this process.

A :class:`RunnerBackend` owns one *transport* (qemu on this host for ``arm64``; ADB for a
phone) and turns requests "these images through this model file" into runner jobs:

* each job's logits are an artefact of the cache, keyed by everything that decides
  their bits (bundle, runner source, model file, input pixels, threads, resolver,
  engine, batch size, preprocessing, the transport's identity: emulated CPU and qemu
  version, or a phone's build fingerprint), so a warm run re-measures nothing it has
  measured on the same bits; the runner's timings are kept with them and reported as
  recorded;
* misses run as one batch per runtime family (one process imports torch once for all
  its jobs; LiteRT jobs run beside it in a second process);
* a job that fails (a model the runtime cannot load) is recorded with the runner's
  message and raises :class:`RemoteJobError` for that request only.

:class:`RunnerRuntime` puts this behind the usual :class:`Runtime` contract:
``predict_logits(uint8 images)``. ``backend.prefetch(...)`` lets the study hand over a
whole matrix's jobs at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from harness.axes import runtimes
from harness.cache import ArtifactCache, file_sha256
from harness.runtime.base import (
    InputMismatchError,
    ModelFileError,
    Runtime,
    RuntimeFailure,
    RuntimeRequest,
    check_finite,
)

RUNNER_PATH = Path(__file__).resolve().parents[2] / "android_harness" / "runner.py"
KIND = "runner-logits"
# Serve mode's frames (android_harness/serve.py): tag + uint32 length; IMGS: n, h, w, c;
# LOGT: n, classes, pid, batch number, inference seconds.
FRAME = struct.Struct("<4sI")
IMAGE_HEADER = struct.Struct("<IIII")
LOGIT_HEADER = struct.Struct("<IIIId")
# Relative cost per image under qemu (measured on the mini zoo: float convolutions are
# emulated in software, int8 ones are integer code), only to balance runner processes.
# ExecuTorch: float 455 vs int8 57 ms/image (mini mobilenet_v2, XNNPACK, batch 5).
RELATIVE_COST = {("litert", "float"): 14.0, ("litert", "int8"): 1.0, ("torch", "float"): 44.0, ("torch", "int8"): 1.4,
                 ("executorch", "float"): 8.0, ("executorch", "int8"): 1.0}


def runner_formats() -> tuple[str, ...]:
    """The model file formats the runner runs (a runtime with a runner family)."""
    return tuple(k.format for k in runtimes.RUNTIMES if k.runner_family is not None)


def runner_family(fmt: str) -> str | None:
    """The runtime family that runs ``fmt`` files in the runner (None: no runtime runs them there)."""
    kind = runtimes.RUNTIMES.find(lambda k: k.format == fmt)
    return None if kind is None else kind.runner_family


class RemoteJobError(RuntimeFailure):
    """The runner ran the job and it failed (the message is the runner's, with the model file)."""


class RunnerSessionError(RemoteJobError):
    """A streaming runner session that could not start, failed a batch, or whose process died;
    the message names the platform and the model file."""


def pixel_digest(images: np.ndarray) -> str:
    images = np.ascontiguousarray(images, dtype=np.uint8)
    return hashlib.sha256(repr(images.shape).encode() + images.tobytes()).hexdigest()


@dataclass
class JobRequest:
    model_file: Path
    model_sha256: str
    format: str
    quantization: str
    threads: int
    resolver: str | None
    engine: str | None
    preprocess: dict
    num_classes: int
    batch_size: int
    images: np.ndarray = field(repr=False)
    input_sha256: str = ""
    output: str | None = None  # a file with several outputs: the classifier's, by name

    def __post_init__(self):
        if not self.input_sha256:
            self.input_sha256 = pixel_digest(self.images)

    @property
    def family(self) -> str:
        return runtimes.by_format(self.format).runner_family

    def settings(self) -> dict:
        return {"model_sha256": self.model_sha256, "format": self.format, "quantization": self.quantization,
                "threads": self.threads, "resolver": self.resolver, "engine": self.engine,
                "preprocess": self.preprocess, "num_classes": self.num_classes, "batch_size": self.batch_size,
                "input_sha256": self.input_sha256, "n_images": int(len(self.images)),
                **({"output": self.output} if self.output is not None else {})}


@dataclass
class JobResult:
    logits: np.ndarray = field(repr=False)
    job: dict  # the runner's per-job result: load_seconds, seconds_per_image, batch_seconds...
    versions: dict  # runtime versions inside the runner's process
    platform_facts: dict  # what the runner saw of its machine
    transport: dict  # what the host knows of the transport (qemu version, emulated CPU, phone facts)
    cached: bool


class RunnerBackend:
    """One transport, its result cache, and the batching of runner jobs."""

    def __init__(self, platform: str, transport, cache: ArtifactCache, log: Callable[[str], None] = print,
                 processes: int | None = None):
        self.platform = platform
        # Runner processes at once: this process's share of the cores (pytest-xdist workers set
        # OMP_NUM_THREADS to theirs), unless told.
        self.processes = processes or int(os.environ.get("HARNESS_RUNNER_PROCESSES")
                                           or os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)
        self.transport = transport
        self.cache = cache
        self.log = log
        self.runner_sha256 = file_sha256(RUNNER_PATH)
        self._failed: dict[str, str] = {}
        self._lock = threading.Lock()

    def key_parts(self, request: JobRequest) -> dict:
        return {"stage": KIND, "platform": self.platform, "runner_sha256": self.runner_sha256,
                "transport": self.transport.key_facts(), **request.settings()}

    def lookup(self, request: JobRequest) -> JobResult | None:
        artifact = self.cache.lookup(KIND, self.key_parts(request))
        return None if artifact is None else self._load(artifact, cached=True)

    def run(self, requests: list[JobRequest]) -> list[JobResult | RemoteJobError]:
        """Each request's result (from the cache, or from one runner batch per family) or its error."""
        results: list[JobResult | RemoteJobError | None] = [None] * len(requests)
        misses: dict[str, list[int]] = {}
        seen: dict[str, int] = {}
        for i, request in enumerate(requests):
            key = self.cache_key(request)
            if key in self._failed:
                results[i] = RemoteJobError(self._failed[key])
                continue
            hit = self.lookup(request)
            if hit is not None:
                results[i] = hit
            elif key in seen:  # the same job asked twice in one batch runs once
                misses.setdefault("dup", []).append(i)
            else:
                seen[key] = i
                misses.setdefault(request.family, []).append(i)
        duplicates = misses.pop("dup", [])
        if misses:
            with self._lock:
                threads = [threading.Thread(target=self._run_family, args=(family, [requests[i] for i in idx],
                                                                          idx, results))
                           for family, idx in self.plan(misses, requests)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
        for i in duplicates:
            results[i] = results[seen[self.cache_key(requests[i])]]
        return results  # type: ignore[return-value]

    def plan(self, misses: dict[str, list[int]], requests: list[JobRequest]) -> list[tuple[str, list[int]]]:
        """Runner processes for the misses: one per family; a family whose share of the work is
        more than a core's share of the whole gets split over more processes, balanced by
        estimated cost (each process still runs many jobs; a split costs one more import)."""
        def cost(i: int) -> float:
            return len(requests[i].images) * RELATIVE_COST.get((requests[i].family, requests[i].quantization), 1.0)

        total = {family: sum(cost(i) for i in idx) for family, idx in misses.items()}
        per_core = sum(total.values()) / max(1, self.processes)
        chunks = dict.fromkeys(misses, 1)
        while sum(chunks.values()) < 2 * self.processes:
            family = max(chunks, key=lambda f: total[f] / chunks[f])
            if total[family] / chunks[family] <= 1.1 * per_core or chunks[family] >= len(misses[family]):
                break
            chunks[family] += 1
        plan = []
        for family, idx in misses.items():
            bins: list[list[int]] = [[] for _ in range(chunks[family])]
            loads = [0.0] * len(bins)
            for i in sorted(idx, key=cost, reverse=True):  # longest first into the lightest process
                k = loads.index(min(loads))
                bins[k].append(i)
                loads[k] += cost(i)
            plan += [(family, sorted(b)) for b in bins if b]
        return plan

    def cache_key(self, request: JobRequest) -> str:
        from harness.cache import cache_key

        return cache_key(KIND, self.key_parts(request))

    # -- one runner process per family ----------------------------------------------------
    def _run_family(self, family: str, requests: list[JobRequest], slots: list[int], results: list) -> None:
        self.log(f"{self.platform}: {len(requests)} {family} job(s) in one runner process "
                 f"({self.transport.describe()})")
        with tempfile.TemporaryDirectory(prefix=f"runner-{family}-") as tmp:
            work = Path(tmp)
            try:
                jobfile, outdir = self.transport.stage(work, [self._job(r, n, work) for n, r in enumerate(requests)],
                                                       requests)
                self.transport.run(jobfile, outdir, threads=max(r.threads for r in requests))
                local = self.transport.fetch(outdir, work / "results")
                document = json.loads((local / "results.json").read_text())
            except Exception as exc:  # the process died, hung or the transport broke: every job fails
                files = ", ".join(sorted({r.model_file.name for r in requests}))
                message = f"{self.platform} runner for {family} failed on {files}: {exc}"
                for slot in slots:
                    results[slot] = RemoteJobError(message)
                return
            for n, (request, slot) in enumerate(zip(requests, slots)):
                job = next((j for j in document["jobs"] if j["id"] == f"j{n}"), None)
                if job is None or job["status"] != "ok":
                    error = job["error"] if job else "no result for this job"
                    message = f"{request.model_file}: the {self.platform} runner could not run it ({error})"
                    self._failed[self.cache_key(request)] = message
                    results[slot] = RemoteJobError(message)
                    continue
                results[slot] = self._publish(request, job, document, local / job["logits"])

    def _job(self, request: JobRequest, n: int, work: Path) -> dict:
        inputs = work / "inputs"
        inputs.mkdir(exist_ok=True)
        npy = inputs / f"{request.input_sha256[:16]}.npy"
        if not npy.exists():
            np.save(npy, np.ascontiguousarray(request.images, dtype=np.uint8), allow_pickle=False)
        return {"id": f"j{n}", "model": str(request.model_file), "format": request.format,
                "quantization": request.quantization, "threads": request.threads, "resolver": request.resolver,
                "engine": request.engine, "input": {"npy": str(npy)}, "preprocess": request.preprocess,
                "num_classes": request.num_classes, "batch_size": request.batch_size,
                **({"output": request.output} if request.output is not None else {})}

    def _publish(self, request: JobRequest, job: dict, document: dict, logits_file: Path) -> JobResult:
        if file_sha256(logits_file) != job["logits_sha256"]:
            raise RemoteJobError(f"{logits_file}: logits differ from the digest the runner wrote (transfer damaged?)")
        record = {"job": job, "versions": document["versions"], "platform_facts": document["platform"],
                  "transport": self.transport.facts()}

        def build(directory: Path) -> dict:
            shutil.copyfile(logits_file, directory / "logits.npy")
            (directory / "result.json").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
            return {"model_file": str(request.model_file), "seconds_per_image": job["seconds_per_image"]}

        artifact = self.cache.get_or_build(KIND, self.key_parts(request), build,
                                           label=f"{self.platform} logits of {request.model_file.name}")
        return self._load(artifact, cached=not artifact.built)

    @staticmethod
    def _load(artifact, cached: bool) -> JobResult:
        record = json.loads(artifact.file("result.json").read_text())
        logits = np.load(artifact.file("logits.npy"), allow_pickle=False)
        return JobResult(logits, record["job"], record["versions"], record["platform_facts"], record["transport"],
                         cached)


class RunnerRuntime(Runtime):
    """A converted model file run by the runner on a backend's transport."""

    def __init__(self, request: RuntimeRequest, backend: RunnerBackend):
        path = request.model_file()
        super().__init__(request, path)
        if path is None or not Path(path).is_file():
            raise ModelFileError(f"{path}: model file not found")
        self.backend = backend
        self.format = Path(path).suffix.lstrip(".")
        if self.format not in runner_formats():
            raise ModelFileError(f"{path}: the runner runs {sorted(runner_formats())} files, not {self.format!r}")
        if self.format == "tflite":
            from harness.runtime.litert import resolver_name

            self.resolver = resolver_name(request.options.get("resolver"))
        if self.format == "ptl" and request.quantization == "int8":
            from harness.convert.torch_mobile import ENGINE

            self.engine = ENGINE
        artifact = request.artifact
        files = getattr(getattr(artifact, "artifact", None), "manifest", {}).get("files", {})
        self.model_sha256 = files.get(Path(path).name, {}).get("sha256") or file_sha256(Path(path))
        self.last_result: JobResult | None = None
        self.default_batch_size = 64

    def request(self, images: np.ndarray, batch_size: int | None = None) -> JobRequest:
        images = self.check_images(images)
        n = self.spec.normalization
        preprocess = {"scale": n.scale, "mean": list(n.mean), "std": list(n.std), "channel_order": n.channel_order,
                      "layout": n.layout}
        return JobRequest(Path(self.model_path), self.model_sha256, self.format, self.quantization, self.threads,
                          self.resolver, self.engine, preprocess, self.spec.num_classes,
                          batch_size or self.default_batch_size, images, output=self.spec.output)

    def predict_logits(self, images: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        (result,) = self.backend.run([self.request(images, batch_size)])
        if isinstance(result, Exception):
            raise result
        if result.logits.shape != (len(images), self.spec.num_classes):
            raise InputMismatchError(f"{self.model_path}: runner logits {result.logits.shape} for {len(images)} images")
        self.last_result = result
        self.load_seconds = result.job["load_seconds"]
        return check_finite(result.logits, self.where)

    def _infer(self, batch: np.ndarray) -> np.ndarray:  # predict_logits is overridden whole
        raise NotImplementedError

    def batch_mode(self) -> dict | None:
        """The runner's record of the last job's batches (``fixed``/``dynamic``, invokes, padded rows)."""
        return None if self.last_result is None else self.last_result.job.get("batch")

    def describe(self) -> dict:
        return {**super().describe(), "transport": self.backend.transport.facts()}

    def open_session(self, log: Callable[[str], None] | None = None, timeout: float = 600.0) -> "SessionRuntime":
        """A runner process kept alive for many query batches (:class:`SessionRuntime`; close it)."""
        return SessionRuntime(self, log=log, timeout=timeout)


# -- streaming sessions: one runner process answering many query batches --------------------------
class SessionRuntime(Runtime):
    """``runtime``'s model file loaded once in a runner process in serve mode
    (``android_harness/serve.py``), on the runtime's transport; every ``predict_logits``
    streams its batch over the process's stdin/stdout. Not cached: a direct attack's queries
    depend on the answers before them, and the attack's result is what gets cached."""

    def __init__(self, runtime: RunnerRuntime, log: Callable[[str], None] | None = None, timeout: float = 600.0):
        request = RuntimeRequest(runtime.platform, runtime.spec, runtime.quantization, runtime.threads)
        super().__init__(request, runtime.model_path)
        self.runner_runtime = runtime
        self.backend = runtime.backend
        self.resolver, self.engine = runtime.resolver, runtime.engine
        self.model_sha256 = runtime.model_sha256
        self.timeout = timeout
        self.default_batch_size = 1 << 30  # one frame per call unless asked
        job = runtime.request(np.zeros((0, runtime.spec.input_size, runtime.spec.input_size, 3), np.uint8))
        config = {"model": str(job.model_file), "format": job.format, "quantization": job.quantization,
                  "threads": job.threads, "resolver": job.resolver, "engine": job.engine,
                  "preprocess": job.preprocess, "num_classes": job.num_classes,
                  **({"output": job.output} if job.output is not None else {})}
        log = log or self.backend.log
        transport = self.backend.transport
        self.what = f"{self.platform} runner session for {self.model_path}"
        start = time.perf_counter()
        try:
            self.channel = transport.open_stream(config, job, threads=job.threads)
        except RemoteJobError:
            raise
        except Exception as exc:  # noqa: BLE001  (the transport broke: say where)
            raise RunnerSessionError(f"{self.what}: could not start the runner ({exc})") from exc
        self.batches = 0
        self.pids: set[int] = set()
        try:
            self._send(b"CONF", json.dumps(self.channel.config).encode())
            tag, payload = self._receive()
            if tag == b"FAIL":
                raise RunnerSessionError(f"{self.what}: the runner could not load the model "
                                         f"({json.loads(payload)['error']})")
            if tag != b"REDY":
                raise RunnerSessionError(f"{self.what}: expected REDY from the runner, got {tag!r}")
        except BaseException:
            self.channel.close()
            raise
        self.ready = json.loads(payload)
        self.pid = int(self.ready["pid"])
        self.load_seconds = self.ready["load_seconds"]
        log(f"{self.platform}: runner session for {Path(self.model_path).name} ready in "
            f"{time.perf_counter() - start:.1f} s ({transport.describe()}, pid {self.pid})")

    # -- frames ----------------------------------------------------------------------------
    def _dead(self, exc: BaseException | None = None) -> RunnerSessionError:
        detail = self.channel.detail()
        return RunnerSessionError(f"{self.what}: the runner process ended after {self.batches} batch(es)"
                                  + (f" ({type(exc).__name__}: {exc})" if exc else "") + (f"; {detail}" if detail else ""))

    def _send(self, tag: bytes, payload: bytes) -> None:
        try:
            self.channel.write(FRAME.pack(tag, len(payload)) + payload)
        except (OSError, ValueError) as exc:  # broken pipe, closed socket
            raise self._dead(exc) from exc

    def _receive(self) -> tuple[bytes, bytes]:
        try:
            tag, size = FRAME.unpack(self.channel.read(FRAME.size, self.timeout))
            return tag, self.channel.read(size, self.timeout) if size else b""
        except TimeoutError as exc:
            self.channel.close()
            raise RunnerSessionError(f"{self.what}: no answer within {self.timeout:.0f} s; process stopped") from exc
        except (EOFError, OSError) as exc:
            raise self._dead(exc) from exc

    def predict_logits(self, images: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        images = np.ascontiguousarray(self.check_images(images))
        batch_size = batch_size or self.default_batch_size
        outputs = []
        for first in range(0, len(images), batch_size):
            chunk = images[first:first + batch_size]
            self._send(b"IMGS", IMAGE_HEADER.pack(*chunk.shape) + chunk.tobytes())
            tag, payload = self._receive()
            if tag == b"FAIL":
                raise RunnerSessionError(f"{self.what}: batch {self.batches} failed ({json.loads(payload)['error']})")
            if tag != b"LOGT":
                raise RunnerSessionError(f"{self.what}: expected LOGT from the runner, got {tag!r}")
            n, k, pid, _, seconds = LOGIT_HEADER.unpack_from(payload)
            logits = np.frombuffer(payload[LOGIT_HEADER.size:], "<f4").astype(np.float32)
            if n != len(chunk) or k != self.spec.num_classes or logits.size != n * k:
                raise RunnerSessionError(f"{self.what}: runner logits ({n}, {k}) for {len(chunk)} images, expected "
                                         f"{self.spec.num_classes} classes")
            self.pids.add(pid)
            self.batches += 1
            self.inference_seconds = getattr(self, "inference_seconds", 0.0) + seconds
            outputs.append(check_finite(logits.reshape(n, k), self.where))
        if not outputs:
            return np.zeros((0, self.spec.num_classes), np.float32)
        return np.concatenate(outputs)

    def _infer(self, batch: np.ndarray) -> np.ndarray:  # predict_logits is overridden whole
        raise NotImplementedError

    def close(self) -> None:
        channel = getattr(self, "channel", None)
        if channel is None:
            return
        try:
            self.channel.write(FRAME.pack(b"STOP", 0))
        except (OSError, ValueError):
            pass
        channel.close()
        self.channel = None  # type: ignore[assignment]

    def batch_mode(self) -> dict | None:
        """The model's batch mode as the serving runner loaded it (a ``.ptl``'s is known after its first batch)."""
        return self.ready.get("batch")

    def describe(self) -> dict:
        return {**self.runner_runtime.describe(), "session_pid": self.pid, "session_batches": self.batches,
                "batch": self.batch_mode()}


def job_timing(result: JobResult) -> dict:
    """The runner's own timing of a job, for records (recorded when the logits were measured)."""
    job = result.job
    return {"seconds_per_image": job["seconds_per_image"], "inference_seconds": job["inference_seconds"],
            "load_seconds": job["load_seconds"], "recorded": True, "from_cache": result.cached}


__all__ = ["JobRequest", "JobResult", "RemoteJobError", "RunnerBackend", "RunnerRuntime", "RunnerSessionError",
           "SessionRuntime", "job_timing", "pixel_digest"]
