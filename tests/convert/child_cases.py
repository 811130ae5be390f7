"""A converting child for the shared plumbing's tests (``python -m tests.convert.child_cases``).

Its job's ``case`` says how it ends: with facts, with a refusal in a named stage, with an
exception outside any stage, with an exit status and no report, killed by a signal, or never.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from harness.convert.child import child_main, stage

PROTOCOL = "CHILD-CASES"


def _convert(job: dict) -> dict:
    case = job["case"]
    if case == "ok":
        return {"echo": job["value"], "tensorflow_importable": _tensorflow_importable()}
    if case == "stage":
        with stage("torch.export"):
            pass
        with stage("quantize"):
            raise ValueError("first line of the refusal\n  second line\n\nthird line")
    if case == "no-stage":
        raise KeyError("unnamed")
    if case == "exit":
        print("some output that is not a report", flush=True)
        print("what went wrong, on stderr", file=sys.stderr, flush=True)
        os._exit(7)
    if case == "segfault":
        os.kill(os.getpid(), signal.SIGSEGV)
    if case == "hang":
        time.sleep(60)
    raise AssertionError(f"unknown case {case!r}")


def _tensorflow_importable() -> bool:
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:], _convert, PROTOCOL))
