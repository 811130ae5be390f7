"""Progress of long builds: chunks done / total, samples per second and the time left.

Each update is printed (through the run's log) and, when a path is given, written atomically
to a JSON file a CI job can show (``reports/<run>/progress.json`` for a run): the build in
progress and every build finished in this process.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from harness.cache import atomic_write


class ProgressFile:
    """One JSON file shared by a run's builds."""

    def __init__(self, path: Path | None):
        self.path = Path(path) if path else None
        self.finished: list[dict] = []
        self.current: dict | None = None

    def write(self) -> None:
        if self.path is None:
            return
        state = {"updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "current": self.current,
                 "finished": self.finished}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps(state, indent=1))


class BuildProgress:
    """The progress of one set's build; ``samples/s`` counts only the samples attacked now
    (chunks kept from an interrupted run are done but took no time)."""

    def __init__(self, label: str, chunks_total: int, samples_total: int, executor: str,
                 file: ProgressFile | None = None):
        self.label, self.executor = label, executor
        self.chunks_total, self.samples_total = chunks_total, samples_total
        self.chunks_done = self.samples_done = self.samples_resumed = 0
        self.file = file or ProgressFile(None)
        self.start = time.perf_counter()

    def resumed(self, samples: int) -> None:
        self.chunks_done += 1
        self.samples_done += samples
        self.samples_resumed += samples

    def done(self, samples: int) -> None:
        self.chunks_done += 1
        self.samples_done += samples

    def state(self) -> dict:
        elapsed = time.perf_counter() - self.start
        fresh = self.samples_done - self.samples_resumed
        rate = fresh / elapsed if elapsed > 0 and fresh else None
        left = self.samples_total - self.samples_done
        eta = (left / rate if rate else None) if left else 0.0
        return {"build": self.label, "executor": self.executor, "chunks_done": self.chunks_done,
                "chunks_total": self.chunks_total, "samples_done": self.samples_done,
                "samples_total": self.samples_total, "samples_resumed": self.samples_resumed,
                "elapsed_seconds": round(elapsed, 3), "samples_per_second": None if rate is None else round(rate, 3),
                "eta_seconds": None if eta is None else round(eta, 1)}

    def line(self) -> str:
        s = self.state()
        rate = "-" if s["samples_per_second"] is None else f"{s['samples_per_second']:.2f}"
        eta = "-" if s["eta_seconds"] is None else f"{s['eta_seconds']:.0f} s"
        return (f"{s['chunks_done']}/{s['chunks_total']} chunks, {s['samples_done']}/{s['samples_total']} samples, "
                f"{rate} samples/s, ETA {eta}")

    def publish(self, finished: bool = False) -> None:
        state = self.state()
        if finished:
            self.file.finished.append(state)
            self.file.current = None
        else:
            self.file.current = state
        self.file.write()
