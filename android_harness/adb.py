"""Transport ``adb``: the runtime bundle and the runner on a phone (or the virtual phone) over ADB.

Everything goes through the real ``adb`` server with ppadb (``pure-python-adb``):

* **which phone**: ``--device-serial``, else ``$ANDROID_SERIAL``, else the only one
  attached; several and none chosen is a :class:`DeviceChoiceError` listing them. Its
  ABI must be ``arm64-v8a`` (:class:`WrongABI` otherwise).
* **the bundle** goes once to ``/data/local/tmp/ondevice-robustness/bundle-<key>/``
  (never ``/sdcard``, which is mounted noexec) as one ``.tar.gz`` unpacked there, with a
  ``SHA256SUMS`` of every file taken from the bundle's artefact manifest; each session
  checks it with ``sha256sum -c`` on the phone and pushes it again when a file differs.
* **models and inputs** go by content digest (``files/<sha256>.<ext>``), so a file the
  phone already has is not pushed again; the runner goes the same way.
* **runs**: ``sh bundle/run.sh runner.py jobs.json out`` in a run folder; ppadb returns
  no exit status, so every command ends in ``; echo __RC=$?`` and the sentinel is parsed:
  a missing one means the phone went away mid-command (:class:`DeviceLost`, naming the
  serial and what ran). Every argument is quoted (``shlex.quote``).
* **space**: free space under ``/data/local/tmp`` is checked before anything is pushed
  (:class:`NoSpace`, saying how much is needed and how much there is).
* **facts**: ``getprop`` (model, board/SoC, ABI, Android release, build fingerprint) and
  the kernel (``uname -r``) are recorded with every result; the fingerprint and serial
  are part of every result's cache key.

``python -m android_harness.adb clean [--device-serial S]`` removes everything the suite
put on a phone.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import posixpath
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from android_harness.bundle import Bundle

REMOTE_ROOT = "/data/local/tmp/ondevice-robustness"
RUNNER = Path(__file__).resolve().with_name("runner.py")
ABI = "arm64-v8a"
SERIAL_ENV = "ANDROID_SERIAL"
PROPS = {"model": "ro.product.model", "manufacturer": "ro.product.manufacturer", "board": "ro.board.platform",
         "hardware": "ro.hardware", "abi": "ro.product.cpu.abi", "release": "ro.build.version.release",
         "sdk": "ro.build.version.sdk", "fingerprint": "ro.build.fingerprint", "qemu": "ro.kernel.qemu",
         "serialno": "ro.serialno"}
_SENTINEL = re.compile(r"__RC=(\d+)\s*$")


class AdbError(RuntimeError):
    """Base of the ADB transport's errors."""


class NoDevice(AdbError):
    """No phone (in state ``device``) is attached, or adb itself is unusable."""


class DeviceChoiceError(AdbError):
    """Several phones attached and none chosen, or the chosen serial is not attached."""


class WrongABI(AdbError):
    """The phone is not arm64-v8a: the runtime bundle cannot run there."""


class NoSpace(AdbError):
    """Not enough free space under /data/local/tmp for what must be pushed."""


class DeviceLost(AdbError):
    """The phone went away (unplugged, adbd died) while a command ran."""


SERVER_PORT_ENV = "ANDROID_ADB_SERVER_PORT"  # the port the adb tool itself uses when set


def server_address() -> tuple[str, int]:
    """Where the local adb server listens: 127.0.0.1 and ``$ANDROID_ADB_SERVER_PORT``, else 5037."""
    value = os.environ.get(SERVER_PORT_ENV, "").strip()
    if not value:
        return "127.0.0.1", 5037
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise AdbError(f"${SERVER_PORT_ENV} must be a TCP port number (1-65535), got {value!r}")
    return "127.0.0.1", int(value)


def client(host: str | None = None, port: int | None = None):
    from ppadb.client import Client

    default_host, default_port = server_address()
    return Client(host=host or default_host, port=port or default_port)


def attached(adb=None) -> list[str]:
    """Serials in state ``device`` (authorised, online). NoDevice when the adb server cannot be reached."""
    adb = adb or client()
    try:
        return [d.serial for d in adb.devices(state="device")]
    except RuntimeError as exc:
        host, port = server_address()
        raise NoDevice(f"the adb server at {host}:{port} does not answer ({exc}); run `adb start-server`") from exc


def choose_serial(requested: str | None = None, adb=None) -> str:
    """``requested``, else ``$ANDROID_SERIAL``, else the only attached phone."""
    serials = attached(adb)
    wanted = requested or os.environ.get(SERIAL_ENV)
    if wanted:
        if wanted not in serials:
            raise DeviceChoiceError(f"device {wanted!r} is not attached (adb lists {serials or 'none'})")
        return wanted
    if not serials:
        raise NoDevice("no Android phone attached over ADB")
    if len(serials) > 1:
        raise DeviceChoiceError(f"{len(serials)} phones are attached ({', '.join(serials)}); choose one with "
                                f"--device-serial SERIAL or ${SERIAL_ENV}")
    return serials[0]


class AdbBroken(RuntimeError):
    """adb is installed but unusable: its server cannot be started, or answers garbage."""


def attached_devices() -> list[str]:
    """Serials of phones the local ADB server sees (starting the server if adb is installed).

    No adb tool or no ppadb: [] (no phone). An adb server that cannot be started, or one
    that answers but not as an adb server: :class:`AdbBroken` naming the command or address
    and what came back, so a broken adb is not reported as "no phone attached"."""
    try:
        from ppadb.client import Client  # noqa: F401
    except ImportError:
        return []
    host, port = server_address()
    if not listening(host, port):
        if shutil.which("adb") is None:
            return []
        _start_adb_server()
        if not listening(host, port):
            raise AdbBroken(f"`adb start-server` succeeded but nothing listens on {host}:{port} "
                            f"(${SERVER_PORT_ENV}={os.environ.get(SERVER_PORT_ENV, '')!r})")
    try:
        return [d.serial for d in client(host, port).devices()]
    except Exception as exc:  # something listens there, but it is not an adb server that works
        raise AdbBroken(f"the adb server at {host}:{port} does not answer `adb devices` as an adb server should "
                        f"({type(exc).__name__}: {str(exc).strip()[:300]})") from None


def listening(host: str, port: int) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def _start_adb_server() -> None:
    """`adb start-server`; AdbBroken naming the command and its output when it fails."""
    try:
        done = subprocess.run(["adb", "start-server"], capture_output=True, text=True, errors="replace", timeout=30)
    except subprocess.TimeoutExpired:
        raise AdbBroken("`adb start-server` did not finish in 30 s") from None
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()[-1000:] or "(no output)"
        raise AdbBroken(f"`adb start-server` ({shutil.which('adb')}) exited with status {done.returncode}: {output}")


class AdbTransport:
    """One phone: push the bundle, the runner, models and inputs; run the runner; pull results."""

    name = "adb"

    def __init__(self, bundle: Bundle, serial: str, cache, log=print, adb=None, timeout: float = 3600.0):
        self.bundle = bundle
        self.serial = serial
        self.cache = cache
        self.log = log
        self.timeout = timeout
        self.device = (adb or client()).device(serial)
        if self.device is None:
            raise NoDevice(f"device {serial!r} is not attached")
        self.props = {key: self.getprop(prop) for key, prop in PROPS.items()}
        if self.props["abi"] != ABI:
            raise WrongABI(f"device {serial} reports ABI {self.props['abi'] or 'unknown'!r}; the runtime bundle is "
                           f"{ABI} (aarch64) and cannot run there")
        self.kernel = self.shell("uname -r").strip()
        self.emulated = self.props.get("qemu") == "1"
        self.bundle_dir = f"{REMOTE_ROOT}/bundle-{bundle.key[:16]}"
        self._bundle_checked = False
        self._pushing = threading.Lock()  # runner batches of several families stage at once
        self._jobs: dict[str, list[str]] = {}

    # -- the device ----------------------------------------------------------------------------
    def shell(self, command: str, timeout: float | None = 120, what: str | None = None) -> str:
        """Run ``command`` on the phone; its output, or AdbError with it when the exit status is not 0."""
        output, code = self.shell_status(command, timeout, what)
        if code != 0:
            raise AdbError(f"device {self.serial}: `{what or command}` exited with {code}: {output.strip()[-500:]}")
        return output

    def shell_status(self, command: str, timeout: float | None = 120, what: str | None = None) -> tuple[str, int]:
        try:
            raw = self.device.shell(f"{command}; echo __RC=$?", timeout=timeout)
        except (RuntimeError, OSError) as exc:  # ppadb: "device offline", refused connections, timeouts
            raise DeviceLost(f"device {self.serial} went away while running `{what or command}` ({exc})") from exc
        match = _SENTINEL.search(raw.rstrip("\n") + "\n") if raw else None
        if match is None:
            raise DeviceLost(f"device {self.serial} went away while running `{what or command}` "
                             f"(its output ends without an exit status: {raw.strip()[-300:]!r})")
        return raw[:match.start()], int(match.group(1))

    def getprop(self, prop: str) -> str:
        return self.shell(f"getprop {shlex.quote(prop)}").strip()

    def free_bytes(self) -> int:
        out = self.shell(f"mkdir -p {shlex.quote(REMOTE_ROOT)} && df -k {shlex.quote(REMOTE_ROOT)}")
        lines = [line.split() for line in out.strip().splitlines() if line.strip()]
        try:
            return int(lines[-1][-3]) * 1024  # Filesystem 1K-blocks Used Available Use% Mounted-on
        except (IndexError, ValueError) as exc:
            raise AdbError(f"device {self.serial}: cannot read free space from `df`: {out.strip()!r}") from exc

    def require_space(self, needed: int, what: str) -> None:
        free = self.free_bytes()
        if free < needed:
            raise NoSpace(f"device {self.serial}: {what} needs {needed / 2**20:.1f} MiB under {REMOTE_ROOT}, "
                          f"only {free / 2**20:.1f} MiB are free; free some space (python -m android_harness.adb "
                          "clean removes what the suite left)")

    def push(self, local: Path, remote: str) -> None:
        try:
            self.device.push(str(local), remote)
        except (RuntimeError, OSError) as exc:
            raise DeviceLost(f"device {self.serial}: pushing {local} to {remote} failed ({exc})") from exc

    def pull(self, remote: str, local: Path) -> None:
        try:
            self.device.pull(remote, str(local))
        except (RuntimeError, OSError) as exc:
            raise DeviceLost(f"device {self.serial}: pulling {remote} failed ({exc})") from exc

    # -- identity ------------------------------------------------------------------------------
    def key_facts(self) -> dict:
        # The phone's own serial number, not adb's name for the connection (a phone on Wi-Fi
        # debugging, or the virtual phone, is listed under an address that changes).
        return {"transport": self.name, "serialno": self.props["serialno"] or self.serial,
                "fingerprint": self.props["fingerprint"], "bundle": self.bundle.key}

    def facts(self) -> dict:
        return {**self.key_facts(), "serial": self.serial, "emulated": self.emulated, "kernel": self.kernel, **self.props,
                "bundle_variant": self.bundle.variant, "bundle_versions": self.bundle.versions}

    def describe(self) -> str:
        return f"device {self.serial} ({self.props['model']}{', emulated' if self.emulated else ''})"

    # -- the bundle ------------------------------------------------------------------------------
    def ensure_bundle(self) -> None:
        """The bundle on the phone, every file checked against its digest; pushed when absent or changed."""
        with self._pushing:
            self._ensure_bundle()

    def _ensure_bundle(self) -> None:
        if self._bundle_checked:
            return
        q = shlex.quote(self.bundle_dir)
        _, code = self.shell_status(f"cd {q} && sha256sum -c -s SHA256SUMS", timeout=600,
                                    what="checking the bundle's digests")
        if code != 0:
            self.log(f"device {self.serial}: bundle missing or changed on the phone; pushing it")
            self._push_bundle()
            _, code = self.shell_status(f"cd {q} && sha256sum -c -s SHA256SUMS", timeout=600,
                                        what="checking the pushed bundle's digests")
            if code != 0:
                raise AdbError(f"device {self.serial}: the bundle pushed to {self.bundle_dir} does not match its "
                               "digests (transfer damaged, or the phone's storage failing)")
        self._bundle_checked = True

    def _push_bundle(self) -> None:
        from android_harness.bundle import packed

        manifest = json.loads((self.bundle.root / "manifest.json").read_text())["files"]
        tarball = packed(self.bundle, self.cache)
        size = tarball.stat().st_size
        with tempfile.TemporaryDirectory(prefix="bundle-push-") as tmp:
            self.require_space(size + self.bundle.info["unpacked_bytes"] + (16 << 20), "the runtime bundle")
            sums = Path(tmp) / "SHA256SUMS"
            sums.write_text("".join(f"{e['sha256']}  {rel}\n" for rel, e in sorted(manifest.items())))
            q, tmpdir = shlex.quote(self.bundle_dir), shlex.quote(self.bundle_dir + ".partial")
            remote_tar = f"{REMOTE_ROOT}/bundle-upload.tar.gz"
            self.shell(f"rm -rf {q} {tmpdir} && mkdir -p {tmpdir}")
            start = time.perf_counter()
            self.push(tarball, remote_tar)
            self.log(f"device {self.serial}: pushed the bundle in {time.perf_counter() - start:.1f} s")
            self.push(sums, f"{self.bundle_dir}.partial/SHA256SUMS.new")
            top = f"bundle-{self.bundle.key[:12]}"
            self.shell(f"cd {tmpdir} && tar -xzf {shlex.quote(remote_tar)} && mv {shlex.quote(top)}/* . && "
                       f"rmdir {shlex.quote(top)} && mv SHA256SUMS.new SHA256SUMS && rm -f {shlex.quote(remote_tar)} "
                       f"&& cd / && mv {tmpdir} {q}", timeout=1200, what="unpacking the bundle")

    def push_file(self, local: Path, digest: str, suffix: str) -> str:
        """``local`` on the phone as ``files/<digest><suffix>`` (pushed only when not there); its path."""
        with self._pushing:
            return self._push_file(local, digest, suffix)

    def _push_file(self, local: Path, digest: str, suffix: str) -> str:
        remote = f"{REMOTE_ROOT}/files/{digest}{suffix}"
        out, code = self.shell_status(f"sha256sum {shlex.quote(remote)}", what="checking a pushed file")
        if code == 0 and out.split()[0] == digest:
            return remote
        self.require_space(Path(local).stat().st_size + (1 << 20), f"{Path(local).name}")
        self.shell(f"mkdir -p {shlex.quote(REMOTE_ROOT + '/files')}")
        self.push(Path(local), remote + ".partial")
        self.shell(f"mv {shlex.quote(remote + '.partial')} {shlex.quote(remote)}")
        return remote

    # -- the transport interface (harness.runtime.remote.RunnerBackend) -------------------------
    def stage(self, work: Path, jobs: list[dict], requests=None) -> tuple[str, str]:
        from android_harness.runner import RUNNER_FORMAT
        from harness.cache import file_sha256

        self.ensure_bundle()
        self.runner = self.push_file(RUNNER, file_sha256(RUNNER), ".py")
        remote_jobs = []
        for job in jobs:
            model = Path(job["model"])
            npy = Path(job["input"]["npy"])
            remote_jobs.append({**job,
                                "model": self.push_file(model, file_sha256(model), model.suffix),
                                "input": {"npy": self.push_file(npy, file_sha256(npy), ".npy")}})
        run_dir = f"{REMOTE_ROOT}/runs/{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        jobfile = work / "jobs.json"
        jobfile.write_text(json.dumps({"format": RUNNER_FORMAT, "jobs": remote_jobs}, indent=1))
        self.shell(f"mkdir -p {shlex.quote(run_dir)}")
        self.push(jobfile, f"{run_dir}/jobs.json")
        self._jobs[f"{run_dir}/jobs.json"] = [j["id"] for j in jobs]
        return f"{run_dir}/jobs.json", f"{run_dir}/out"

    def run(self, jobfile: str, outdir: str, threads: int = 1) -> str:
        from android_harness.qemu import RunnerFailed

        run_dir = posixpath.dirname(jobfile)
        q = shlex.quote
        command = (f"cd {q(run_dir)} && OMP_NUM_THREADS={int(threads)} sh {q(self.bundle_dir + '/run.sh')} "
                   f"{q(self.runner)} {q(jobfile)} {q(outdir)} > runner.log 2>&1")
        what = f"the runner on {len(self._jobs.get(jobfile, []))} job(s) in {run_dir}"
        output, code = self.shell_status(command, timeout=self.timeout, what=what)
        log = self.shell_status(f"tail -n 30 {q(run_dir + '/runner.log')}", what="reading the runner's log")[0]
        for line in log.splitlines():
            if line.startswith("runner: "):
                self.log(f"{self.serial}: {line}")
        status = [line for line in log.splitlines() if line.startswith("RUNNER-STATUS")]
        if not status or status[-1].split()[1] == "error":
            raise RunnerFailed(f"device {self.serial}: {what} exited with {code} without finishing its batch:\n  "
                               + "\n  ".join(log.splitlines()[-12:]))
        return status[-1]

    def open_stream(self, config: dict, job=None, threads: int = 1):
        """The runner in serve mode on the phone, through ADB's ``exec:`` service (raw bytes both
        ways, no terminal); its stderr goes to ``serve.log`` in a run folder, read back on errors."""
        from android_harness.channels import SERVE, SocketChannel
        from harness.cache import file_sha256

        self.ensure_bundle()
        q = shlex.quote
        # serve.py imports runner.py from its own folder: both go into a folder named by their digests
        digests = [file_sha256(RUNNER), file_sha256(Path(SERVE))]
        code_dir = f"{REMOTE_ROOT}/serve-{hashlib.sha256(''.join(digests).encode()).hexdigest()[:16]}"
        runner_remote = self.push_file(RUNNER, digests[0], ".py")
        serve_remote = self.push_file(Path(SERVE), digests[1], ".py")
        self.shell(f"mkdir -p {q(code_dir)} && cp {q(runner_remote)} {q(code_dir + '/runner.py')} && "
                   f"cp {q(serve_remote)} {q(code_dir + '/serve.py')}")
        model = Path(config["model"])
        remote_model = self.push_file(model, getattr(job, "model_sha256", None) or file_sha256(model), model.suffix)
        run_dir = f"{REMOTE_ROOT}/runs/serve-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        self.shell(f"mkdir -p {q(run_dir)}")
        command = (f"cd {q(run_dir)} && OMP_NUM_THREADS={int(threads)} exec sh {q(self.bundle_dir + '/run.sh')} "
                   f"{q(code_dir + '/serve.py')} 2> serve.log")
        try:
            conn = self.device.create_connection(timeout=60)
            conn.send(f"exec:{command}")
        except (RuntimeError, OSError) as exc:
            raise DeviceLost(f"device {self.serial} went away starting the runner's serve mode ({exc})") from exc

        def detail() -> str:
            out, _ = self.shell_status(f"tail -n 8 {q(run_dir + '/serve.log')}", what="reading serve.log")
            return f"device {self.serial}, {run_dir}/serve.log: " + " | ".join(out.strip().splitlines())

        return SocketChannel(conn.socket, {**config, "model": remote_model}, detail)

    def fetch(self, outdir: str, local: Path) -> Path:
        local.mkdir(parents=True, exist_ok=True)
        self.pull(f"{outdir}/results.json", local / "results.json")
        document = json.loads((local / "results.json").read_text())
        for job in document["jobs"]:
            if job.get("status") == "ok":
                self.pull(f"{outdir}/{job['logits']}", local / job["logits"])
        self.shell(f"rm -rf {shlex.quote(posixpath.dirname(outdir))}")  # the run folder; files/ and the bundle stay
        return local


def clean(serial: str, adb=None) -> str:
    """Remove everything the suite put on the phone (``/data/local/tmp/ondevice-robustness``)."""
    device = (adb or client()).device(serial)
    out = device.shell(f"du -sk {REMOTE_ROOT} 2>/dev/null; rm -rf {REMOTE_ROOT}; echo __RC=$?")
    if "__RC=0" not in out:
        raise AdbError(f"device {serial}: could not remove {REMOTE_ROOT}: {out.strip()}")
    sizes = out.split()
    return sizes[0] if sizes and sizes[0].isdigit() else "0"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m android_harness.adb", description="the suite's files on a phone")
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("clean", help=f"remove {REMOTE_ROOT} (the bundle, pushed models and inputs, runs)")
    c.add_argument("--device-serial", default=None)
    args = parser.parse_args(argv)
    try:
        serial = choose_serial(args.device_serial)
        kib = clean(serial)
    except DeviceChoiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 4
    except AdbError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"removed {REMOTE_ROOT} from {serial} ({int(kib) / 1024:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
