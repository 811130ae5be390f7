"""Open a model file in a child process before this process does.

A corrupt or hostile ``.tflite``, ``.ptl`` or ``.pte`` can crash the native interpreter (a segfault,
an abort) instead of raising; in-process that takes the whole pytest run down with no
name attached. :func:`verify_model_file` loads the file with the real interpreter in a
short child (``python -m harness.runtime.verify``: LiteRT ``Interpreter`` +
``allocate_tensors`` + one ``invoke`` on zeros; the PyTorch lite interpreter's loader and,
given an input shape, one call on zeros; ExecuTorch's ``load_program`` + ``load_method("forward")``
and, given an input shape, one ``execute`` on zeros) and turns anything but a clean success into a
:class:`ModelFileError` naming the file, the exit status or signal and the end of the
child's stderr.

A success is remembered per file digest and settings, in this process and as an empty
marker file under ``<artefact cache>/.verified/``, so each file costs one child per machine,
not one per run (about 0.3 s for a small ``.tflite``, 2-3 s for a ``.ptl``: importing torch).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import re
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from harness.axes import runtimes
from harness.runtime.base import ModelFileError

OK_LINE = "VERIFY-OK"
TIMEOUT_S = 300
STDERR_TAIL = 1500
NATIVE_LOG = re.compile(r"^\[[\w./-]+\.(?:cpp|cc|h):\d+\] ")  # ExecuTorch's log lines
LOGGED_LINES = 3
_VERIFIED: set[str] = set()  # keys of files verified in this process


def verify_model_file(path, fmt: str | None = None, *, resolver: str = "AUTO", input_shape=None,
                      engine: str | None = None, marker_dir: Path | None = None, wrapper=()) -> bool:
    """Load ``path`` in a child; raise :class:`ModelFileError` unless it loads (and runs) cleanly.

    ``fmt``: ``tflite``, ``ptl`` or ``pte`` (default: the suffix). ``resolver``: the LiteRT
    ``OpResolverType`` member the caller will use. ``input_shape`` and ``engine``: for a
    ``.ptl`` (``.pte``: the shape only), the shape of the zeros to call it on and the quantized engine. ``wrapper``:
    a command prefix for the child (tests use it to run the child under limits). Returns
    True when a child ran, False when the file was already verified.
    """
    path = Path(path)
    fmt = fmt or path.suffix.lstrip(".")
    if fmt not in runtimes.formats():
        raise ModelFileError(f"{path}: cannot verify a {fmt!r} model file; formats: {list(runtimes.formats())}")
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found")
    settings = {"format": fmt, "resolver": resolver, "input_shape": list(input_shape) if input_shape else None,
                "engine": engine}
    key = _verdict_key(path, settings)
    marker = _marker_dir(marker_dir) / key
    if wrapper:  # a child under other conditions: its verdict is not the file's
        _run_child(path, settings, list(wrapper))
        return True
    if key in _VERIFIED or marker.is_file():
        _VERIFIED.add(key)
        return False
    _run_child(path, settings, [])
    _VERIFIED.add(key)
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError:
        pass  # the in-process verdict stands; the next process verifies again
    return True


def _verdict_key(path: Path, settings: dict) -> str:
    """What decides the verdict: the file's bytes, the settings, and the interpreter's version."""
    from harness.cache import file_sha256

    package = runtimes.by_format(settings["format"]).package  # whose version decides a verdict
    try:
        runtime_version = version(package)
    except PackageNotFoundError:
        runtime_version = None
    parts = {"sha256": file_sha256(path), **settings, package: runtime_version, "python": sys.version}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _marker_dir(marker_dir: Path | None) -> Path:
    if marker_dir is not None:
        return Path(marker_dir)
    from harness.cache import default_root

    return default_root() / ".verified"


def _run_child(path: Path, settings: dict, wrapper: list[str]) -> None:
    cmd = [*wrapper, sys.executable, "-m", "harness.runtime.verify", str(path), json.dumps(settings)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=TIMEOUT_S, env=env,
                              cwd=Path(__file__).resolve().parents[2])
    except subprocess.TimeoutExpired:
        raise ModelFileError(f"{path}: loading it did not finish in {TIMEOUT_S} s (in a child process)") from None
    if done.returncode == 0 and done.stdout.strip().endswith(OK_LINE):
        return
    raise ModelFileError(f"{path}: {_describe_failure(done)}")


def _describe_failure(done: subprocess.CompletedProcess) -> str:
    from harness.convert.child import crash_signal, stderr_tail

    tail = stderr_tail(done, STDERR_TAIL)
    name = crash_signal(done.returncode)
    if name is not None:
        return f"the interpreter crashed loading it ({name}, in a child process); its stderr ends: {tail}"
    errors = [line for line in done.stdout.splitlines() if line.startswith("VERIFY-ERROR ")]
    if errors:
        # ExecuTorch raises an error code and logs the reason ("[program.cpp:114] File size is too small...")
        logged = [line.strip() for line in done.stderr.splitlines()
                  if NATIVE_LOG.match(line) and "cpuinfo" not in line]
        said = f"; it logged: {'; '.join(logged[-LOGGED_LINES:])}" if logged else ""
        return errors[-1][len("VERIFY-ERROR "):] + said
    return f"the verifying child exited with status {done.returncode}; its stderr ends: {tail}"


# -- the child: each runtime's own check_load (its RuntimeKind) ---------------------------------------
def _child(argv: list[str]) -> int:
    path, settings = argv[0], json.loads(argv[1])
    kind = runtimes.by_format(settings["format"])
    try:
        kind.check_load(path, settings)
    except Exception as exc:  # the message is the verdict; the parent names the file
        text = str(exc).strip()
        first = " ".join(text.split())[:500] if text else type(exc).__name__
        interpreter = kind.interpreter
        print(f"VERIFY-ERROR {interpreter} cannot load this model ({type(exc).__name__}: {first})", flush=True)
        return 3
    print(OK_LINE, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
