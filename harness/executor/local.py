"""The default executor: the chunks one after another, in this process (today's loop)."""

from __future__ import annotations

from typing import Callable

from harness.executor.base import Chunk, ChunkJob, ChunkResult, Executor, run_chunk


class LocalExecutor(Executor):
    name = "local"

    def __init__(self, log: Callable[[str], None] = print):
        self.log = log

    def run(self, job: ChunkJob, chunks: list[Chunk], on_done: Callable[[Chunk, ChunkResult], None]) -> None:
        if not chunks:
            return
        from harness.attack.attacks import FoolboxModel
        from harness.attack.registry import make_attack

        attack = make_attack(job.attack, job.params)
        fmodel = FoolboxModel(job.model)
        for chunk in chunks:
            rows = slice(chunk.start, chunk.stop)
            on_done(chunk, run_chunk(attack, fmodel, job.images01[rows], job.labels[rows], chunk))
