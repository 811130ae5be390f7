"""The session fixture `ray_cluster` (registered in tests/conftest.py, shared by tests/executor and tests/bench).

A real two-node Ray cluster on loopback: a head and a second raylet, each started with
``ray start --block`` in its own process group and stopped by killing those groups (never
``ray stop``, which would stop every Ray on the machine). Ray is installed by requirements.lock."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _stop(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=15)
            return
        except subprocess.TimeoutExpired:
            continue


def _processes_under(temp: str) -> list[int]:
    """Ray processes of this cluster that left the process groups (their command lines name its temp dir)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if temp.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                pass
    return [p for p in pids if p != os.getpid()]


class Cluster:
    def __init__(self, address: str, temp: str, procs: list):
        self.address, self.temp, self.procs = address, temp, procs


@pytest.fixture(scope="session")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="ray is not importable: `make test` installs it from requirements.lock")
    ray_bin = str(Path(sys.executable).parent / "ray")
    port, dashboard = free_port(), free_port()
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    # Ray 2.60 turns token authentication on for a new local ray.init() (and writes ~/.ray/auth_token):
    # this cluster, its drivers and the test's subprocesses say explicitly that it is off.
    saved_auth_mode = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0", "TF_CPP_MIN_LOG_LEVEL": "2"}
    common = ["--num-cpus", "1", "--object-store-memory", str(100 * 2**20), "--node-ip-address", "127.0.0.1",
              "--disable-usage-stats", "--block"]
    procs = []
    log = open(Path(temp) / "fixture.log", "w")

    def start(*args):
        procs.append(subprocess.Popen([ray_bin, "start", *args, *common], env=env, stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True))

    address = f"127.0.0.1:{port}"
    try:
        start("--head", "--port", str(port), "--temp-dir", temp, "--include-dashboard", "true",
              "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard))
        deadline = time.monotonic() + 120
        # started when `ray start` says so (a port that merely listens may be another Ray's worker)
        while not (_listening(port) and "Ray runtime started" in (Path(temp) / "fixture.log").read_text()):
            if time.monotonic() > deadline or procs[0].poll() is not None:
                raise RuntimeError(f"the Ray head did not start: {(Path(temp) / 'fixture.log').read_text()[-3000:]}")
            time.sleep(0.5)
        start("--address", address)
        ray.init(address=address, logging_level="WARNING", log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}})
        while len([n for n in ray.nodes() if n["Alive"]]) < 2:
            if time.monotonic() > deadline or procs[1].poll() is not None:
                raise RuntimeError(f"the second Ray node did not join: {(Path(temp) / 'fixture.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield Cluster(address, temp, procs)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        for proc in reversed(procs):
            _stop(proc)
        for pid in _processes_under(temp):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log.close()
        shutil.rmtree(temp, ignore_errors=True)
        if saved_auth_mode is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = saved_auth_mode
