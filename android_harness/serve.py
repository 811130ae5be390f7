"""The runner's serve mode: one model loaded once, query batches streamed over stdin/stdout.

A direct attack queries the deployed model thousands of times with a few images each;
a runner process per query would spend its time starting Python and loading the
runtime. ``serve.py`` runs beside ``runner.py`` (same folder; it reuses the runner's
model loaders and normalisation, so a served batch's logits are bit-identical to a
batch job's) and answers batches until told to stop::

    python serve.py            # the bundle's Python, under qemu or on a phone

Frames, both ways: a 4-byte tag, a little-endian uint32 payload length, the payload.

* host -> serve ``CONF``: a JSON job without ``input`` (model, format, quantization,
  threads, resolver, engine, preprocess, num_classes); serve answers ``REDY`` (JSON:
  pid, load_seconds, versions, platform facts, the model's batch mode as loaded: see
  ``runner.py``; None for a ``.ptl`` until its first batch) or ``FAIL``.
* host -> serve ``IMGS``: uint32 n, h, w, c, then n*h*w*c uint8 RGB pixels; serve
  answers ``LOGT``: uint32 n, k, pid, batch number, float64 inference seconds, then
  n*k float32 logits (little-endian) - or ``FAIL`` (UTF-8 JSON with the message; the
  session goes on).
* host -> serve ``STOP`` (or end of input): serve exits 0.

stdout carries only frames: at start serve moves the process's file descriptor 1 to 2,
so anything a runtime prints natively lands on stderr.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import time

import numpy as np

import runner

HEADER = struct.Struct("<4sI")
IMAGES = struct.Struct("<IIII")
LOGITS = struct.Struct("<IIIId")
MAX_PAYLOAD = 1 << 31


class ProtocolError(ValueError):
    pass


def read_exact(stream, n: int) -> bytes | None:
    chunks, got = [], 0
    while got < n:
        chunk = stream.read(n - got)
        if not chunk:
            if got == 0:
                return None
            raise ProtocolError(f"input ended inside a frame ({got} of {n} bytes)")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_frame(stream) -> tuple[bytes, bytes] | None:
    header = read_exact(stream, HEADER.size)
    if header is None:
        return None
    tag, size = HEADER.unpack(header)
    if size > MAX_PAYLOAD:
        raise ProtocolError(f"frame {tag!r} of {size} bytes")
    payload = read_exact(stream, size) if size else b""
    if payload is None:
        raise ProtocolError(f"input ended after the header of frame {tag!r}")
    return tag, payload


def write_frame(stream, tag: bytes, payload: bytes) -> None:
    stream.write(HEADER.pack(tag, len(payload)))
    stream.write(payload)
    stream.flush()


def fail(stream, message: str) -> None:
    write_frame(stream, b"FAIL", json.dumps({"error": message}).encode())


def serve(inp, out) -> int:
    pid = os.getpid()
    frame = read_frame(inp)
    if frame is None:
        return 0
    tag, payload = frame
    if tag != b"CONF":
        fail(out, f"expected a CONF frame first, got {tag!r}")
        return 2
    try:
        job = json.loads(payload)
        for key in ("model", "format", "preprocess", "num_classes"):
            if key not in job:
                raise runner.JobError(f"configuration lacks {key!r}")
        if job["format"] not in runner.MODELS:
            raise runner.JobError(f"format {job['format']!r}; the runner knows {sorted(runner.MODELS)}")
        if not os.path.isfile(job["model"]):
            raise runner.JobError(f"{job['model']}: model file not found")
        start = time.perf_counter()
        try:
            model = runner.MODELS[job["format"]](job["model"], job)
        except runner.JobError:
            raise
        except Exception as exc:  # noqa: BLE001  (each runtime raises its own types)
            raise runner.JobError(f"{job['model']}: cannot load this {job['format']} model "
                                  f"({runner._first_line(exc)})") from exc
        load_seconds = time.perf_counter() - start
    except Exception as exc:  # noqa: BLE001  (reported to the host, which names the platform)
        fail(out, f"{type(exc).__name__}: {exc}")
        return 2
    classes = int(job["num_classes"])
    write_frame(out, b"REDY", json.dumps({"pid": pid, "load_seconds": load_seconds, "versions": runner.versions(),
                                          "platform": runner.platform_facts(),
                                          "batch": runner.batch_mode(model)}).encode())
    batch = 0
    while True:
        frame = read_frame(inp)
        if frame is None or frame[0] == b"STOP":
            return 0
        tag, payload = frame
        if tag != b"IMGS" or len(payload) < IMAGES.size:
            fail(out, f"expected IMGS or STOP, got {tag!r} ({len(payload)} bytes)")
            continue
        n, h, w, c = IMAGES.unpack_from(payload)
        pixels = payload[IMAGES.size:]
        if len(pixels) != n * h * w * c or c != 3:
            fail(out, f"IMGS frame: {len(pixels)} pixel bytes for ({n}, {h}, {w}, {c}) uint8 RGB")
            continue
        images = np.frombuffer(pixels, np.uint8).reshape(n, h, w, c)
        try:
            x = runner.normalise(images, job["preprocess"])
            t = time.perf_counter()
            logits = np.asarray(model(x), dtype=np.float32)
            seconds = time.perf_counter() - t
            if logits.shape != (n, classes):
                raise runner.JobError(f"{job['model']}: output shape {logits.shape}, expected ({n}, {classes})")
        except Exception as exc:  # noqa: BLE001
            fail(out, f"{type(exc).__name__}: {runner._first_line(exc)}")
            continue
        write_frame(out, b"LOGT", LOGITS.pack(n, classes, pid, batch, seconds)
                    + np.ascontiguousarray(logits, dtype="<f4").tobytes())
        batch += 1


def main() -> int:
    out = os.fdopen(os.dup(1), "wb")  # the frames' channel
    os.dup2(2, 1)  # whatever else writes to stdout (native runtime logs) goes to stderr
    sys.stdout = sys.stderr
    try:
        return serve(sys.stdin.buffer, out)
    except ProtocolError as exc:
        print(f"serve: {exc}", file=sys.stderr, flush=True)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
