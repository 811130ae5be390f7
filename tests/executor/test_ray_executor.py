"""The Ray executor on a real two-node cluster (tests/executor/conftest.py): the same sets, byte
for byte and under the same key, as the local executor; a killed worker and a killed driver
are survived with the same result."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from harness.attack.generate import KIND, generate_set, set_key_parts
from harness.attack.profiles import load_profile
from harness.cache import ArtifactCache, cache_key
from harness.executor import ExecutorError, make_executor
from harness.executor.progress import ProgressFile

REPO = Path(__file__).resolve().parents[2]
# 12 samples in chunks of 4: three chunks, two nodes of one CPU each. Boundary with 200 steps: a
# chunk takes seconds, long enough to be killed mid-run.
SMOKE = load_profile("smoke")
PROFILE = dataclasses.replace(SMOKE, attack_batch_size=4,
                              attacks={**SMOKE.attacks, "boundary": {**SMOKE.attacks["boundary"], "steps": 200}})
N = 12


@pytest.fixture(scope="module")
def samples(fashion_test, mini_models):
    ok = np.ones(200, bool)
    for model in mini_models.values():
        ok &= model.predict(fashion_test.images[:200]) == fashion_test.labels[:200]
    return fashion_test.select(fashion_test.ids[:200][ok][:N])


def quiet(message):
    pass


def png_bytes(adv) -> dict:
    return {p.name: p.read_bytes() for p in sorted((adv.path / "png").iterdir())}


def assert_same_set(a, b):
    assert a.path.name == b.path.name, "the executor entered the cache key"
    np.testing.assert_array_equal(a.images, b.images)
    assert png_bytes(a) == png_bytes(b)
    for column in ("success_before_rounding", "success_after_rounding", "linf", "l2", "init_failed"):
        np.testing.assert_array_equal(a.column(column), b.column(column))


@pytest.fixture(scope="module")
def local_sets(mini_models, samples, tmp_path_factory):
    cache = ArtifactCache(tmp_path_factory.mktemp("local"), log=quiet)
    return {(f, attack): generate_set(mini_models[(f, "mobilenet_v2")], attack, PROFILE, samples, cache, log=quiet)
            for f, attack in (("pytorch", "fgsm"), ("tensorflow", "bim"), ("pytorch", "boundary"))}


@pytest.mark.parametrize("framework,attack", [("pytorch", "fgsm"), ("tensorflow", "bim"), ("pytorch", "boundary")])
def test_ray_builds_the_local_set_byte_for_byte(ray_cluster, mini_models, samples, local_sets, tmp_path,
                                                framework, attack):
    executor = make_executor("ray", ray_cluster.address, log=quiet)
    progress = ProgressFile(tmp_path / "progress.json")
    adv = generate_set(mini_models[(framework, "mobilenet_v2")], attack, PROFILE, samples,
                       ArtifactCache(tmp_path / "c", log=quiet), log=quiet, executor=executor, progress_file=progress)
    assert_same_set(adv, local_sets[(framework, attack)])
    assert adv.sidecar["batches"] == 3 and adv.sidecar["batches_resumed"] == 0
    state = json.loads((tmp_path / "progress.json").read_text())
    assert state["current"] is None and state["finished"][-1]["chunks_done"] == 3
    assert state["finished"][-1]["executor"] == "ray" and state["finished"][-1]["samples_per_second"] > 0
    described = executor.describe()
    assert described["nodes"] == 2 and described["ray_version"]


def test_a_worker_killed_mid_build_is_survived(ray_cluster, mini_models, samples, local_sets, tmp_path):
    from ray.util.state import list_tasks

    killed: list[int] = []

    def kill_a_running_chunk(message):
        if killed or "batch" not in message:
            return
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # task events reach the state API within about a second
            running = [t for t in list_tasks(filters=[("state", "=", "RUNNING"), ("name", "=", "_attack_chunk")])
                       if t.worker_pid]
            if running:
                os.kill(running[0].worker_pid, signal.SIGKILL)
                killed.append(running[0].worker_pid)
                return
            time.sleep(0.2)

    executor = make_executor("ray", ray_cluster.address, log=quiet)
    adv = generate_set(mini_models[("pytorch", "mobilenet_v2")], "boundary", PROFILE, samples,
                       ArtifactCache(tmp_path / "c", log=quiet), log=kill_a_running_chunk, executor=executor)
    assert killed, "no running chunk was found to kill"
    retried = [t for t in list_tasks(filters=[("name", "=", "_attack_chunk")], detail=True, limit=10000)
               if t.attempt_number > 0]
    assert retried, "no chunk was retried after its worker was killed"
    assert_same_set(adv, local_sets[("pytorch", "boundary")])


DRIVER = """
import sys
import dataclasses
import harness
from harness.frameworks import import_torch
import_torch()
import numpy as np
from harness.attack.generate import generate_set
from harness.attack.profiles import load_profile
from harness.cache import ArtifactCache
from harness.data import fashion_mnist
from harness.executor import make_executor
from harness.zoo import registry

address, cache_dir, ids = sys.argv[1], sys.argv[2], [int(i) for i in sys.argv[3].split(",")]
smoke = load_profile("smoke")
profile = dataclasses.replace(smoke, attack_batch_size=4,
                              attacks={**smoke.attacks, "boundary": {**smoke.attacks["boundary"], "steps": 200}})
samples = fashion_mnist.load("test", "fixtures")
samples = samples.select(np.array(ids))
model = registry.load("mini", "pytorch", "mobilenet_v2")
adv = generate_set(model, "boundary", profile, samples, ArtifactCache(cache_dir, log=lambda m: None),
                   log=lambda m: print(m, flush=True), executor=make_executor("ray", address, log=print))
print("RESUMED", adv.sidecar["batches_resumed"], adv.path, flush=True)
"""


def test_a_killed_driver_resumes_from_its_finished_chunks(ray_cluster, samples, local_sets, tmp_path):
    cache_dir = tmp_path / "c"
    args = [sys.executable, "-c", DRIVER, ray_cluster.address, str(cache_dir), ",".join(str(i) for i in samples.ids)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    first = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO)
    lines = []
    try:
        for line in first.stdout:
            lines.append(line)
            if ": batch " in line:  # one chunk finished and saved: kill the driver
                first.send_signal(signal.SIGKILL)
                break
    finally:
        first.kill()
        first.wait(timeout=60)
    assert any(": batch " in line for line in lines), "".join(lines)[-3000:]
    partials = list((cache_dir / KIND).glob(".partial-*/batch-*.npz"))
    assert partials, "the driver saved no finished chunk"
    second = subprocess.run(args, capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    resumed = [line for line in second.stdout.splitlines() if line.startswith("RESUMED")][-1].split()
    assert int(resumed[1]) >= 1
    from harness.attack import pngset

    again = pngset.read_set(Path(resumed[2]), (32, 32, 3))
    assert_same_set(again, local_sets[("pytorch", "boundary")])


def test_an_unreachable_address_fails_clearly():
    from tests.ray_cluster import free_port

    port = free_port()
    executor = make_executor("ray", f"127.0.0.1:{port}", log=quiet)
    with pytest.raises(ExecutorError, match=f"127.0.0.1:{port}: no Ray head reachable there"):
        executor.connect()
    with pytest.raises(ExecutorError, match="expected HOST:PORT"):
        make_executor("ray", "nonsense", log=quiet).connect()
