"""Conversions that run in a child process: the plumbing the PyTorch converters share.

``torch.export`` (``torch._dynamo``) segfaults in a process that has imported TensorFlow,
and the study's processes import both. So the converters that export a PyTorch module
(:mod:`harness.convert.torch_litert`, :mod:`harness.convert.executorch`) convert in a child
(``python -m <converter module> <job as JSON>``) that never imports TensorFlow:

* the parent hands the module over as a ``torch.save`` file (:func:`hand_over_module`) and
  the normalised calibration tensors as ``.npy``, then :func:`run_child` runs the child with
  a timeout;
* the child (:func:`child_main`) runs the converter's ``convert(job) -> facts`` and prints one
  line, ``<PROTOCOL>-OK <facts as JSON>`` or ``<PROTOCOL>-ERROR <{"stage", "error"} as JSON>``;
  a converter names the step that failed with ``with stage("torch.export"): ...``;
* anything but an OK line (the converter's refusal, a crash by a signal, another exit status,
  a timeout) becomes a :class:`ConversionError` in the parent that names the model and the
  quantization (the caller's ``failed`` prefix), the stage where known, and the converter's
  own message or the end of the child's stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from harness.convert.base import ConversionError

TIMEOUT_S = 1800
STDERR_TAIL = 2000
MESSAGE_LINES = 12  # of the converter's own message: its first lines hold the verdict
MESSAGE_CHARS = 1500
REPO_ROOT = Path(__file__).resolve().parents[2]


class StageFailed(Exception):
    """Raised in the child: the conversion step ``stage`` raised ``cause``."""

    def __init__(self, stage: str, cause: BaseException):
        super().__init__(f"{stage}: {describe(cause)}")
        self.stage = stage
        self.cause = cause


@contextlib.contextmanager
def stage(name: str):
    """In the child: an exception inside names the step ``name`` (the innermost one wins)."""
    try:
        yield
    except StageFailed:
        raise
    except Exception as exc:
        raise StageFailed(name, exc) from exc


def describe(exc: BaseException) -> str:
    """``Type: message``, the message's first lines with their whitespace collapsed."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    text = " ".join(" ".join(lines[:MESSAGE_LINES]).split())
    if len(text) > MESSAGE_CHARS:
        text = text[:MESSAGE_CHARS - 3] + "..."
    return f"{type(exc).__name__}: {text or '(no message)'}"


def hand_over_module(module, path: Path, failed: str) -> None:
    """``torch.save`` ``module`` to ``path`` for the child, or a ConversionError saying it cannot go."""
    import torch

    try:
        torch.save(module, path)
    except Exception as exc:
        raise ConversionError(
            f"{failed}: the module cannot be handed to the converting child process "
            f"(torch.save: {type(exc).__name__}: {exc})"
        ) from exc


def run_child(module_name: str, protocol: str, job: dict, failed: str, timeout_s: int = TIMEOUT_S) -> dict:
    """Run ``python -m module_name job`` and return the facts it reports; any failure is a
    :class:`ConversionError` that starts with ``failed`` (e.g. ``"<model id>: executorch int8
    conversion failed"``) and carries ``stage`` (None where the child named none)."""
    cmd = [sys.executable, "-m", module_name, json.dumps(job)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    ok, error = f"{protocol}-OK ", f"{protocol}-ERROR "
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=timeout_s, env=env,
                              cwd=REPO_ROOT)
    except subprocess.TimeoutExpired:
        raise ConversionError(f"{failed}: it did not finish in {timeout_s} s") from None
    for line in reversed(done.stdout.splitlines()):
        if done.returncode == 0 and line.startswith(ok):
            return json.loads(line[len(ok):])
        if line.startswith(error):
            verdict = json.loads(line[len(error):])
            where = f" at stage {verdict['stage']}" if verdict.get("stage") else ""
            exc = ConversionError(f"{failed}{where}: {verdict['error']}")
            exc.stage = verdict.get("stage")
            raise exc
    tail = stderr_tail(done, STDERR_TAIL)
    name = crash_signal(done.returncode)
    if name is not None:
        raise ConversionError(f"{failed}: the converting child process crashed ({name}); its stderr ends: {tail}")
    raise ConversionError(f"{failed}: the converting child exited with status {done.returncode}; "
                          f"its stderr ends: {tail}")


def crash_signal(returncode: int) -> str | None:
    """The signal that killed a child (``SIGSEGV``), from its negative exit status; None if it exited."""
    if returncode >= 0:
        return None
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def stderr_tail(done: subprocess.CompletedProcess, chars: int) -> str:
    """The last ``chars`` characters of a finished child's stderr, for an error message."""
    return done.stderr.strip()[-chars:] or "(no stderr)"


def child_main(argv: list[str], convert, protocol: str) -> int:
    """The child's entry point: ``convert(job) -> facts`` on the JSON job in ``argv[0]``,
    reported on stdout in the protocol :func:`run_child` reads."""
    sys.modules["tensorflow"] = None  # type: ignore[assignment]  # an import of it here fails instead of crashing
    job = json.loads(argv[0])
    try:
        facts = convert(job)
    except Exception as exc:  # the message is the verdict; the parent names the model
        if isinstance(exc, StageFailed):
            verdict = {"stage": exc.stage, "error": describe(exc.cause)}
        else:
            verdict = {"stage": None, "error": describe(exc)}
        print(f"{protocol}-ERROR {json.dumps(verdict)}", flush=True)
        return 3
    print(f"{protocol}-OK {json.dumps(facts)}", flush=True)
    return 0
