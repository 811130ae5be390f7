"""The on-device runner: run model files over input images, write logits and timings.

One program for every transport: the aarch64 bundle's Python runs it under qemu on
the host (platform ``arm64``) and on a phone over ADB (platform ``device``); the host's
own Python can run it too. It needs only the standard library and numpy, plus the
runtime of each job's family (``ai_edge_litert`` for ``.tflite``, ``torch`` for
``.ptl``, ExecuTorch's pybinding and ``torch`` for ``.pte``) and Pillow for PNG sets,
each imported on first use.

    python runner.py JOBS.json OUTDIR

``JOBS.json`` (paths relative to the job file's folder)::

    {"format": 1, "jobs": [{
        "id": "j0", "model": "m/resnet50-int8.tflite", "format": "tflite", "quantization": "int8",
        "threads": 1, "resolver": "default",          # LiteRT: default | builtin | reference
        "engine": "qnnpack",                          # torch int8: the quantized engine
        "input": {"npy": "in/x.npy"}                  # uint8 (N, H, W, 3) RGB
               | {"pngset": "sets/k"},                # a PNG set: sidecar.json + png/<id>.png
        "preprocess": {"scale": 1.0, "mean": [..], "std": [..], "channel_order": "RGB", "layout": "NHWC"},
        "num_classes": 10, "batch_size": 64}]}

``OUTDIR`` receives ``<id>.npy`` (float32 logits, one row per image) per job that
succeeded and ``results.json``: per job its status (``ok`` or ``error`` with the
message), load time, per-batch and per-image times, the logits' SHA-256, how the model
took its batches (``batch``: ``{"mode": "fixed", "size": 1, "invokes": .., "padded_rows": ..}``
for a file with a fixed batch, run in chunks of it with a short last chunk padded and the
padded rows dropped; ``{"mode": "dynamic", "max": ..}`` for one that takes any batch); and the
runner's version, the runtime versions and the platform's facts. Every file is
written whole or not at all (temporary name, then rename). A job that fails is
recorded and the batch goes on. The last line on stdout is the status line::

    RUNNER-STATUS ok jobs=8 failed=0

(``failed`` when any job failed, ``error`` when the job file itself was unusable; the
exit code is then 0, 3 and 2.)
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
import traceback

RUNNER_FORMAT = 1
FAMILIES = {"tflite": "litert", "ptl": "torch", "pte": "executorch"}
STATUS_PREFIX = "RUNNER-STATUS"

import numpy as np  # noqa: E402  (after the constants, so --help-like readers see them first)


class JobError(ValueError):
    """A job that cannot run: the message names the file or field."""


# --- files ------------------------------------------------------------------------------------
def atomic_write(path: str, data: bytes) -> None:
    tmp = f"{os.path.dirname(path) or '.'}/.{os.path.basename(path)}.{os.getpid()}.part"
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_npy(path: str, array: np.ndarray) -> str:
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    atomic_write(path, buffer.getvalue())
    return hashlib.sha256(buffer.getvalue()).hexdigest()


def pixel_digest(image: np.ndarray) -> str:
    image = np.ascontiguousarray(image, dtype=np.uint8)
    return hashlib.sha256(repr(image.shape).encode() + image.tobytes()).hexdigest()


def load_images(spec: dict, base: str) -> np.ndarray:
    """The job's uint8 (N, H, W, 3) images from a ``.npy`` batch or a verified PNG set."""
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in ("npy", "pngset"):
        raise JobError(f"input must be {{'npy': PATH}} or {{'pngset': DIR}}, got {spec!r}")
    kind, rel = next(iter(spec.items()))
    path = os.path.join(base, rel)
    if kind == "npy":
        try:
            images = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise JobError(f"{path}: cannot read the input batch ({exc})") from exc
    else:
        images = read_pngset(path)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise JobError(f"{path}: expected uint8 images (N, H, W, 3), found {images.dtype} {images.shape}")
    return images


def read_pngset(directory: str) -> np.ndarray:
    from PIL import Image

    sidecar_path = os.path.join(directory, "sidecar.json")
    try:
        with open(sidecar_path) as fh:
            sidecar = json.load(fh)
    except (OSError, ValueError) as exc:
        raise JobError(f"{sidecar_path}: unreadable sidecar ({exc})") from exc
    shape = tuple(sidecar["image_shape"])
    images = np.empty((len(sidecar["samples"]), *shape), np.uint8)
    for row, record in enumerate(sidecar["samples"]):
        path = os.path.join(directory, "png", f"{record['id']}.png")
        try:
            with Image.open(path) as img:
                image = np.asarray(img.convert("RGB"), dtype=np.uint8)
        except OSError as exc:
            raise JobError(f"{path}: unreadable PNG ({exc})") from exc
        if pixel_digest(image) != record["pixels_sha256"]:
            raise JobError(f"{path}: pixels differ from the sidecar's digest")
        images[row] = image
    return images


def normalise(images: np.ndarray, p: dict) -> np.ndarray:
    """The host's ``Normalization``, operation for operation (so the tensors are bit-identical)."""
    x = images.astype(np.float32)
    if p.get("channel_order", "RGB") == "BGR":
        x = x[..., ::-1]
    x = (x * np.float32(p["scale"]) - np.asarray(p["mean"], np.float32)) / np.asarray(p["std"], np.float32)
    if p.get("layout", "NHWC") == "NCHW":
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x, dtype=np.float32)


# --- runtimes -----------------------------------------------------------------------------------
def check_scale(path: str, role: str, detail: dict) -> None:
    """A quantized input/output tensor's scale must be a positive finite number: inputs are
    divided by it, and a zero scale would silently make every logit 0."""
    scale = detail["quantization"][0]
    if not (np.isfinite(scale) and scale > 0):
        raise JobError(f"{path}: {role} tensor {detail['name']!r} ({np.dtype(detail['dtype']).name}) has "
                       f"quantization scale {scale!r}; expected a positive finite number")


class Batches:
    """How a model takes its batches (the host's ``harness.runtime.base.BatchPlan``, kept here so
    the runner needs nothing of the harness). ``fixed``: exactly ``size`` rows per call, a short
    last chunk padded by repeating its last row and the padded rows' outputs dropped; ``dynamic``:
    any batch, in calls of at most ``max`` rows where the file plans memory for that many."""

    def __init__(self, mode, size=None, max=None):
        self.mode, self.size, self.max = mode, size, max
        self.invokes = 0
        self.padded_rows = 0

    def run(self, call, x: np.ndarray, path: str) -> np.ndarray:
        step = (self.size if self.mode == "fixed" else self.max) or max(1, len(x))
        outputs = []
        for first in range(0, len(x), step):
            chunk = x[first:first + step]
            n = len(chunk)
            pad = self.size - n if self.mode == "fixed" else 0
            if pad:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, axis=0)])
            out = np.asarray(call(chunk))
            self.invokes += 1
            if out.ndim < 1 or len(out) != len(chunk):
                raise JobError(f"{path}: the model returned {len(out) if out.ndim else 0} output rows for a batch "
                               f"of {len(chunk)}; expected one row per image")
            self.padded_rows += pad
            outputs.append(out[:n])
        return np.concatenate(outputs) if outputs else np.zeros((0,), np.float32)

    def describe(self) -> dict:
        shape = {"size": self.size} if self.mode == "fixed" else {"max": self.max}
        return {"mode": self.mode, **shape, "invokes": self.invokes, "padded_rows": self.padded_rows}


def litert_batches(path: str, detail: dict, output: dict) -> Batches:
    """The input's batch from its ``shape_signature``: -1 is dynamic, a positive number fixed
    (what TensorFlow's converter writes for a model whose input has a fixed batch)."""
    signature = [int(d) for d in detail.get("shape_signature", detail["shape"])]
    batch = signature[0] if signature else 0
    if batch == -1:
        return Batches("dynamic")
    if batch < 1:
        raise JobError(f"{path}: input tensor {detail['name']!r} has batch {batch} (shape signature {signature}); "
                       "expected -1 (any batch) or a fixed positive batch")
    rows = int(output["shape"][0]) if len(output["shape"]) else 0
    if rows != batch:
        raise JobError(f"{path}: output tensor {output['name']!r} has {rows} rows (shape "
                       f"{[int(d) for d in output['shape']]}) for the input's fixed batch of {batch}; "
                       "expected one row per image")
    return Batches("fixed", size=batch)


class LiteRTModel:
    RESOLVERS = {"default": "AUTO", "builtin": "BUILTIN_WITHOUT_DEFAULT_DELEGATES", "reference": "BUILTIN_REF"}

    def __init__(self, path: str, job: dict):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        resolver = job.get("resolver") or "default"
        if resolver not in self.RESOLVERS:
            raise JobError(f"unknown LiteRT resolver {resolver!r}; expected one of {sorted(self.RESOLVERS)}")
        self.interpreter = Interpreter(model_path=path, num_threads=int(job.get("threads", 1)),
                                       experimental_op_resolver_type=getattr(OpResolverType, self.RESOLVERS[resolver]))
        self.interpreter.allocate_tensors()
        inputs, outputs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        wanted = job.get("output")  # a file with several outputs: the classifier's, by tensor name
        if wanted is not None:
            outputs = [d for d in outputs if d["name"] == wanted]
        if len(inputs) != 1 or len(outputs) != 1:
            raise JobError(f"{path}: expected one input and one output{f' named {wanted!r}' if wanted else ''}, "
                           f"found {len(inputs)} and {len(outputs)}")
        self.input, self.output = inputs[0], outputs[0]
        self.input_dtype, self.output_dtype = np.dtype(self.input["dtype"]), np.dtype(self.output["dtype"])
        for role, detail, dtype in (("input", self.input, self.input_dtype), ("output", self.output, self.output_dtype)):
            if dtype != np.float32:
                check_scale(path, role, detail)
        self.path = path
        self.batches = litert_batches(path, self.input, self.output)
        self.batch = int(self.input["shape"][0])  # the batch the interpreter is allocated for

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.batches.run(self.invoke, x, self.path)

    def invoke(self, x: np.ndarray) -> np.ndarray:
        if len(x) != self.batch:  # only for a dynamic batch: a fixed one always gets its size
            self.interpreter.resize_tensor_input(self.input["index"], [len(x), *x.shape[1:]], strict=True)
            self.interpreter.allocate_tensors()
            self.batch = len(x)
        if self.input_dtype != np.float32:
            scale, zero = self.input["quantization"]
            info = np.iinfo(self.input_dtype)
            x = np.clip(np.round(x / scale + zero), info.min, info.max)
        self.interpreter.set_tensor(self.input["index"], np.ascontiguousarray(x, dtype=self.input_dtype))
        try:
            self.interpreter.invoke()
        except RuntimeError as exc:  # an op that fails at run time (e.g. a gather index out of bounds)
            raise JobError(f"{self.path}: LiteRT's invoke failed on a batch of {len(x)} ({_first_line(exc)})") from exc
        out = self.interpreter.get_tensor(self.output["index"])
        if self.output_dtype != np.float32:
            scale, zero = self.output["quantization"]
            out = (out.astype(np.float32) - zero) * scale
        return out


class TorchLiteModel:
    """A ``.ptl`` in the lite interpreter. A file traced with a baked-in batch (``x.reshape(1, -1)``)
    takes one image and fails on two, or gives the wrong rows: the first call probes two copies of
    its first image and, if that fails, the file runs image by image (``fixed``, size 1)."""

    def __init__(self, path: str, job: dict):
        import torch
        from torch.jit.mobile import _load_for_lite_interpreter

        self.torch = torch
        # Float convolutions would otherwise go through oneDNN, which generates machine
        # code at run time; the plain kernels give the same outputs without it.
        torch.backends.mkldnn.enabled = False
        torch.set_num_threads(int(job.get("threads", 1)))
        if job.get("quantization") == "int8":
            engine = job.get("engine") or "qnnpack"
            if engine not in torch.backends.quantized.supported_engines:
                raise JobError(f"quantized engine {engine!r} not in {torch.backends.quantized.supported_engines}")
            torch.backends.quantized.engine = engine
        self.module = _load_for_lite_interpreter(path)
        self.path = path
        self.batches = None  # known after the first call's probe

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.batches is None and len(x):
            try:
                rows = len(self.forward(np.concatenate([x[:1], x[:1]])))
            except Exception:  # noqa: BLE001  (a baked-in batch fails in the module's own ops)
                rows = None
            self.batches = Batches("dynamic") if rows == 2 else Batches("fixed", size=1)
        if self.batches is None:
            return self.forward(x)
        return self.batches.run(self.forward, x, self.path)

    def forward(self, x: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            out = self.module(self.torch.from_numpy(x))
        if hasattr(out, "logits"):
            out = out.logits
        elif isinstance(out, (tuple, list)):  # scripted Inception3 returns (logits, aux)
            out = out[0]
        return out.numpy()


class ExecuTorchModel:
    """A ``.pte`` program in ExecuTorch's runtime (XNNPACK and the portable/optimized kernels).

    Only the runtime's pybinding is imported (after torch, whose libraries it links): the
    public ``executorch.runtime`` and ``portable_lib`` modules import ``executorch.exir``,
    the export side, which the bundle does not carry. The input's leading size is the
    program's batch: fixed, or the upper bound of a dynamic one. Images run in chunks of
    it; a shorter last chunk runs as it is where the batch is dynamic, and padded with
    zeros (their logits dropped) where the program refuses it."""

    def __init__(self, path: str, job: dict):
        import torch

        et = executorch_binding()
        self.torch = torch
        with open(path, "rb") as fh:
            magic = fh.read(8)[4:8]
        if not (magic[:2] == b"ET" and magic[2:].isdigit()):
            raise JobError(f"{path}: not an ExecuTorch program (file identifier {magic!r}, expected ET<nn>)")
        et._unsafe_reset_threadpool(int(job.get("threads", 1)))
        self.module = et._load_for_executorch(path)
        meta = self.module.method_meta("forward")
        if meta.num_inputs() != 1 or meta.num_outputs() != 1:
            raise JobError(f"{path}: expected forward with one input and one output, found "
                           f"{meta.num_inputs()} and {meta.num_outputs()}")
        sizes = [int(d) for d in meta.input_tensor_meta(0).sizes()]
        self.path = path
        self.batch = sizes[0] if sizes else 0
        self.classes = int(meta.output_tensor_meta(0).sizes()[-1])
        if self.batch < 1:
            raise JobError(f"{path}: forward's input {sizes} has batch {self.batch}; expected a positive batch")
        self.batches = Batches("fixed", size=1) if self.batch == 1 else self._probe(sizes)

    def _probe(self, sizes: list) -> Batches:
        try:
            self.forward(np.zeros((1, *sizes[1:]), np.float32))
        except RuntimeError:  # "attempted to resize a static tensor": a static batch
            return Batches("fixed", size=self.batch)
        return Batches("dynamic", max=self.batch)

    def forward(self, chunk: np.ndarray) -> np.ndarray:
        (out,) = self.module.forward((self.torch.from_numpy(np.ascontiguousarray(chunk)),))
        return out.numpy()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if not len(x):
            return np.zeros((0, self.classes), np.float32)
        return self.batches.run(self.forward, x, self.path)


def executorch_binding():
    """ExecuTorch's runtime pybinding: ``_C`` from 1.1 on, ``_portable_lib`` in 1.0 (the bundle's)."""
    import importlib

    import torch  # noqa: F401  (the binding links libtorch, which this loads)

    for name in ("_C", "_portable_lib"):
        try:
            return importlib.import_module(f"executorch.extension.pybindings.{name}")
        except ModuleNotFoundError as exc:  # that module (or executorch) is absent; a broken one raises
            if not f"executorch.extension.pybindings.{name}".startswith(exc.name or "?"):
                raise
    raise JobError("this Python has no ExecuTorch runtime (executorch.extension.pybindings._C or _portable_lib)")


MODELS = {"tflite": LiteRTModel, "ptl": TorchLiteModel, "pte": ExecuTorchModel}


def versions() -> dict:
    out = {"runner_format": RUNNER_FORMAT, "python": platform.python_version(), "numpy": np.__version__}
    for name, module in (("litert", "ai_edge_litert"), ("torch", "torch"), ("pillow", "PIL")):
        loaded = sys.modules.get(module)
        if loaded is not None:
            out[name] = getattr(loaded, "__version__", None)
    for name, module, dist in (("litert", "ai_edge_litert", "ai-edge-litert"),
                               ("executorch", "executorch", "executorch")):
        if module in sys.modules:
            try:
                from importlib.metadata import version

                out[name] = version(dist)
            except Exception:  # noqa: BLE001  (metadata is a nicety)
                pass
    return out


def platform_facts() -> dict:
    facts = {"machine": platform.machine(), "system": platform.system(), "kernel": platform.release(),
             "cpu_count": os.cpu_count(), "python_executable": sys.executable}
    try:
        with open("/proc/cpuinfo") as fh:
            cpuinfo = fh.read()
    except OSError:
        cpuinfo = ""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key in ("model name", "Hardware", "CPU implementer", "CPU part", "Features", "flags") and value:
            facts.setdefault("cpu_" + key.lower().replace(" ", "_"), value)
    return facts


# --- the batch -------------------------------------------------------------------------------------
def run_job(job: dict, base: str, outdir: str) -> dict:
    for field in ("id", "model", "format", "input", "preprocess", "num_classes"):
        if field not in job:
            raise JobError(f"job {job.get('id', '?')!r} lacks {field!r}")
    fmt = job["format"]
    if fmt not in MODELS:
        raise JobError(f"job {job['id']}: format {fmt!r}; the runner knows {sorted(MODELS)}")
    path = os.path.join(base, job["model"])
    if not os.path.isfile(path):
        raise JobError(f"{path}: model file not found")
    images = load_images(job["input"], base)
    start = time.perf_counter()
    try:
        model = MODELS[fmt](path, job)
    except JobError:
        raise
    except Exception as exc:  # each runtime raises its own types with long native messages
        raise JobError(f"{path}: cannot load this {fmt} model ({_first_line(exc)})") from exc
    load_seconds = time.perf_counter() - start
    batch_size = int(job.get("batch_size", 64))
    outputs, batch_seconds = [], []
    for first in range(0, len(images), batch_size):
        x = normalise(images[first:first + batch_size], job["preprocess"])
        t = time.perf_counter()
        logits = np.asarray(model(x), dtype=np.float32)
        batch_seconds.append(time.perf_counter() - t)
        if logits.shape != (len(x), int(job["num_classes"])):
            raise JobError(f"{path}: output shape {logits.shape}, expected ({len(x)}, {job['num_classes']})")
        outputs.append(logits)
    logits = np.concatenate(outputs) if outputs else np.zeros((0, int(job["num_classes"])), np.float32)
    digest = save_npy(os.path.join(outdir, f"{job['id']}.npy"), logits)
    n = len(images)
    return {"id": job["id"], "status": "ok", "n_images": n, "load_seconds": load_seconds,
            "inference_seconds": sum(batch_seconds), "seconds_per_image": sum(batch_seconds) / max(1, n),
            "batch_size": batch_size, "batch_seconds": batch_seconds, "logits": f"{job['id']}.npy",
            "logits_sha256": digest, "batch": batch_mode(model)}


def batch_mode(model) -> dict | None:
    """How ``model`` took its batches so far (:class:`Batches`), None before it knows."""
    batches = getattr(model, "batches", None)
    return None if batches is None else batches.describe()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def run(jobfile: str, outdir: str) -> int:
    started = time.time()
    try:
        with open(jobfile) as fh:
            spec = json.load(fh)
        jobs = spec["jobs"]
        if spec.get("format") != RUNNER_FORMAT or not isinstance(jobs, list):
            raise JobError(f"{jobfile}: expected format {RUNNER_FORMAT} with a list of jobs")
        if len({j.get("id") for j in jobs}) != len(jobs):
            raise JobError(f"{jobfile}: job ids must be unique")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"{STATUS_PREFIX} error job file {jobfile}: {exc}", flush=True)
        return 2
    os.makedirs(outdir, exist_ok=True)
    base = os.path.dirname(os.path.abspath(jobfile))
    results = []
    for number, job in enumerate(jobs, 1):
        try:
            result = run_job(job, base, outdir)
        except Exception as exc:  # noqa: BLE001  (a failing job is reported; the batch goes on)
            result = {"id": job.get("id"), "status": "error", "error": f"{type(exc).__name__}: {_first_line(exc)}",
                      "traceback": traceback.format_exc(limit=4)}
        results.append(result)
        print(f"runner: job {number}/{len(jobs)} {job.get('id')}: {result['status']}"
              + (f" ({result['error']})" if result["status"] != "ok" else
                 f" ({result['n_images']} images, {result['seconds_per_image'] * 1e3:.2f} ms/image)"), flush=True)
    failed = sum(r["status"] != "ok" for r in results)
    document = {"format": RUNNER_FORMAT, "started": started, "seconds": time.time() - started,
                "versions": versions(), "platform": platform_facts(), "jobs": results,
                "mkldnn_enabled": _mkldnn()}
    atomic_write(os.path.join(outdir, "results.json"), (json.dumps(document, indent=1) + "\n").encode())
    print(f"{STATUS_PREFIX} {'ok' if not failed else 'failed'} jobs={len(results)} failed={failed}", flush=True)
    return 0 if not failed else 3


def _mkldnn():
    torch = sys.modules.get("torch")
    return None if torch is None else bool(torch.backends.mkldnn.enabled)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] in ("-h", "--help"):
        print(__doc__)
        print(f"{STATUS_PREFIX} error usage: runner.py JOBS.json OUTDIR", flush=True)
        return 2
    return run(argv[0], argv[1])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
