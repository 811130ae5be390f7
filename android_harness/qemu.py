"""Transport ``qemu``: the bundle and the runner on this host under user-mode ``qemu-aarch64``.

The phone's ARM kernels (XNNPACK, QNNPACK, the aarch64 builds of LiteRT and torch)
execute without a phone: qemu-user translates each aarch64 instruction and passes
system calls to this kernel. Found on Debian bookworm:

* qemu-user 7.2 (bookworm) passes the host's x86 ``/proc/cpuinfo`` through and
  LiteRT crashes creating its interpreter; 8.0 and later emulate it (bookworm-backports
  has 10.x). Older versions are refused with a message saying how to install one.
* ``/sys`` must be readable or QNNPACK fails to initialise.
* The emulated CPU is a phone core (``cortex-a76`` unless ``$HARNESS_QEMU_CPU`` says
  otherwise), so XNNPACK picks the kernels such a phone runs (NEON, dot product, fp16).

Timings under emulation measure the translator, not a phone: the report labels them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from android_harness.bundle import Bundle

RUNNER = Path(__file__).resolve().with_name("runner.py")
CANDIDATES = ("qemu-aarch64-static", "qemu-aarch64")
MIN_VERSION = (8, 0)
DEFAULT_CPU = "cortex-a76"
CPU_ENV = "HARNESS_QEMU_CPU"
QEMU_ENV = "HARNESS_QEMU"
INSTALL_HINT = (
    "install qemu-user 8.0 or later: on Debian bookworm `echo 'deb http://deb.debian.org/debian "
    "bookworm-backports main' > /etc/apt/sources.list.d/backports.list && apt-get update && "
    "apt-get install -t bookworm-backports qemu-user-static` (Debian 13 / Ubuntu 24.04: "
    "`apt-get install qemu-user-static`), or `make system-deps`; or point $HARNESS_QEMU at one"
)


class QemuUnavailable(RuntimeError):
    """No usable qemu-aarch64 on this host; the message says how to install one."""


class RunnerFailed(RuntimeError):
    """The runner process died or could not read its job file; the message has its output's tail."""


@dataclass(frozen=True)
class Qemu:
    path: str
    version: str

    @property
    def version_tuple(self) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", self.version)[:2])


def find_qemu() -> Qemu:
    """The newest usable qemu-aarch64 (``$HARNESS_QEMU``, else the PATH), or QemuUnavailable."""
    names = [os.environ[QEMU_ENV]] if os.environ.get(QEMU_ENV) else list(CANDIDATES)
    found = []
    for name in names:
        path = shutil.which(name)
        if path is None:
            continue
        try:
            out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        match = re.search(r"version (\d+\.\d+(?:\.\d+)?)", out)
        if match:
            found.append(Qemu(path, match.group(1)))
    usable = [q for q in found if q.version_tuple >= MIN_VERSION]
    if usable:
        return max(usable, key=lambda q: q.version_tuple)
    if found:
        old = ", ".join(f"{q.path} {q.version}" for q in found)
        raise QemuUnavailable(f"qemu-aarch64 here is too old ({old}; LiteRT crashes under qemu-user before 8.0): "
                              + INSTALL_HINT)
    looked = os.environ.get(QEMU_ENV) or " or ".join(CANDIDATES)
    raise QemuUnavailable(f"no {looked} on this host, so the arm64 platform cannot run: " + INSTALL_HINT)


def host_cpu() -> str | None:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


class QemuTransport:
    """Runs job files through the bundle's Python under qemu; one process per call."""

    name = "qemu"
    emulated = True

    def __init__(self, bundle: Bundle, qemu: Qemu | None = None, cpu: str | None = None, log=print):
        self.bundle = bundle
        self.qemu = qemu or find_qemu()
        self.cpu = cpu or os.environ.get(CPU_ENV) or DEFAULT_CPU
        self.log = log
        if not os.access("/sys/devices/system/cpu", os.R_OK):
            raise QemuUnavailable("/sys is not readable here; QNNPACK (torch int8) cannot initialise without it")

    def key_facts(self) -> dict:
        """What decides the bits a job computes here (part of every result's cache key).

        qemu's translation is deterministic and its floating point is emulated in software,
        so the host's CPU is not among them; the emulated CPU model is (XNNPACK picks
        kernels by its features)."""
        return {"transport": self.name, "qemu": self.qemu.version, "cpu_model": self.cpu, "bundle": self.bundle.key}

    def facts(self) -> dict:
        """Everything recorded with a result: the key facts, where qemu lives, the host's CPU."""
        return {**self.key_facts(), "emulated": True, "qemu_path": self.qemu.path, "host_cpu": host_cpu(),
                "bundle_variant": self.bundle.variant, "bundle_versions": self.bundle.versions}

    def describe(self) -> str:
        return f"qemu {self.qemu.version}, emulated {self.cpu}"

    def stage(self, work: Path, jobs: list[dict], requests=None) -> tuple[Path, Path]:
        """Write the job file; qemu sees this host's files, so models and inputs stay where they are."""
        from android_harness.runner import RUNNER_FORMAT

        jobfile = work / "jobs.json"
        jobfile.write_text(json.dumps({"format": RUNNER_FORMAT, "jobs": jobs}, indent=1))
        return jobfile, work / "results"

    def fetch(self, outdir: Path, local: Path) -> Path:
        return Path(outdir)

    def open_stream(self, config: dict, job=None, threads: int = 1):
        """The runner in serve mode under qemu, its stdin/stdout as a channel (one process for
        every batch of a session; qemu sees this host's files, so the model stays where it is)."""
        from android_harness.channels import SERVE, ProcessChannel

        tmp = tempfile.mkdtemp(prefix="serve-tmp-")
        env = {"PATH": "/usr/bin:/bin", **self.bundle.environment(tmp=tmp, threads=threads)}
        argv = [self.qemu.path, "-cpu", self.cpu, *self.bundle.python_argv(), SERVE]
        channel = ProcessChannel(argv, env, config)
        channel.tmp = tmp
        return channel

    def run(self, jobfile: Path, outdir: Path, threads: int = 1, timeout: float = 3600.0) -> str:
        """Run the runner on ``jobfile`` into ``outdir``; returns the status line.

        A job that fails is the runner's business (recorded in results.json); a runner
        that dies, hangs or never writes its status line raises RunnerFailed.
        """
        with tempfile.TemporaryDirectory(prefix="runner-tmp-") as tmp:
            env = {"PATH": "/usr/bin:/bin", **self.bundle.environment(tmp=tmp, threads=threads)}
            argv = [self.qemu.path, "-cpu", self.cpu, *self.bundle.python_argv(), str(RUNNER), str(jobfile), str(outdir)]
            return _stream(argv, env, timeout, self.log, f"runner under qemu ({self.cpu})")


def _stream(argv: list[str], env: dict, timeout: float, log, what: str) -> str:
    """Run ``argv``, relaying its progress lines; the last ``RUNNER-STATUS`` line, or RunnerFailed."""
    from android_harness.runner import STATUS_PREFIX

    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace", start_new_session=True)
    tail: list[str] = []
    status = None
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        for line in proc.stdout:
            line = line.rstrip("\n")
            tail = (tail + [line])[-30:]
            if line.startswith(STATUS_PREFIX):
                status = line
            elif line.startswith("runner: "):
                log(line)
        code = proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
    if status is None or status.split()[1] == "error":
        raise RunnerFailed(f"{what} exited with code {code} without finishing its batch"
                           + (f" (killed after {timeout:.0f} s)" if code == -9 else "") + ":\n  "
                           + "\n  ".join(tail[-12:]))
    return status
