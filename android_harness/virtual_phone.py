"""A virtual arm64 phone on this host, reachable through the real ``adb`` server.

For tests of the device transport without a phone: a real ``adbd`` (Debian's, 34.x)
runs chrooted in an Android-like tree inside private network, mount and pid
namespaces, with user-mode ``qemu-aarch64`` in ``/system/bin`` so the runtime
bundle's aarch64 programs run "on the phone". The host's adb server (the one ppadb
talks to at 127.0.0.1:5037) reaches it through a small relay that listens on a
loopback port of the host and connects to ``127.0.0.1:5555`` inside the phone's
network namespace; ``adb connect 127.0.0.1:<port>`` then lists it like a phone on
Wi-Fi debugging::

    with VirtualPhone(tmp / "phone") as phone:      # root; see unavailable_reason()
        Client("127.0.0.1", 5037).device(phone.serial).shell("getprop ro.product.cpu.abi")

The phone:

* ``/system/bin``: a static busybox and its applets, ``getprop`` (answers the props in
  ``/system/build.prop``; ``ro.product.cpu.abi`` is ``arm64-v8a`` unless overridden),
  ``qemu-aarch64`` (copied from the host) and ``adbd``; ``/system/lib64``: adbd's
  libraries and loader. ``/bin -> system/bin`` (Debian's adbd runs ``/bin/sh``).
* ``/data/local/tmp`` (mode 1777), ``/sdcard``, ``/proc`` (the phone's pid namespace),
  ``/sys``, a small ``/dev``. The tree is built once under ``workdir/root``; files pushed
  to ``/data`` stay between runs until the tree is rebuilt.
* adbd's shell sees ``QEMU=/system/bin/qemu-aarch64`` and ``QEMU_CPU=cortex-a76``: the
  shell cannot execute aarch64 programs natively, so the bundle's ``run.sh`` prefixes
  ``$QEMU -cpu $QEMU_CPU`` when ``$QEMU`` is set.

Isolation: the phone's network namespace has only loopback; adbd runs with an
``LD_PRELOAD`` shim that refuses ``AF_VSOCK`` sockets (vsock is not namespaced and would
be reachable from outside this machine). The relay listens on 127.0.0.1 only. Every
mount lives in the phone's mount namespace and vanishes with it; ``stop()`` ends every
process it started (not the host's adb server: see ``stop_adb_server()``).

Fault injection: ``kill_adbd()`` (the cable is pulled mid-run), ``restart_adbd()`` (plugged
back in), ``set_free_bytes(n)`` (``/data/local/tmp`` nearly full).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

ADB_SERVER = ("127.0.0.1", 5037)
ADBD_PORT = 5555  # inside the phone's network namespace
EMULATOR_PORTS = range(5554, 5586)  # the adb server probes these for emulators: never use them on the host
CPU = "cortex-a76"
ADBD = "/usr/sbin/adbd"
BUSYBOX = "/bin/busybox"
CHROOT = "/usr/sbin/chroot"
TREE_FORMAT = 1

INSTALL_HINT = (
    "`make system-deps` installs them as root (android_harness/install-virtual-phone.sh); by hand on Debian "
    "bookworm: enable bookworm-backports, then `apt-get install -t bookworm-backports adbd adb qemu-user-static` "
    "and `apt-get install busybox-static util-linux gcc`"
)

DEFAULT_PROPS = {
    "ro.product.model": "Virtual arm64 phone (qemu)",
    "ro.product.manufacturer": "ondevice-robustness",
    "ro.product.cpu.abi": "arm64-v8a",
    "ro.product.cpu.abilist": "arm64-v8a",
    "ro.board.platform": "qemu-cortex-a76",
    "ro.hardware": "qemu",
    "ro.build.version.release": "14",
    "ro.build.version.sdk": "34",
    "ro.build.fingerprint": "ondevice-robustness/vphone/arm64:14/VIRTUAL/1:userdebug/test-keys",
    "ro.kernel.qemu": "1",
}

GETPROP = r"""#!/system/bin/sh
# Stand-in for Android's getprop: "getprop KEY [DEFAULT]", or "getprop" to list all as "[k]: [v]".
f=/system/build.prop
if [ $# -eq 0 ]; then
  grep -v '^#' "$f" | sort | while IFS='=' read -r k v; do [ -n "$k" ] && echo "[$k]: [$v]"; done
  exit 0
fi
while IFS='=' read -r k v; do
  if [ "$k" = "$1" ]; then echo "$v"; exit 0; fi
done < "$f"
echo "${2-}"
"""

NOVSOCK_C = r"""/* LD_PRELOAD shim: refuse AF_VSOCK sockets so adbd listens on TCP only (vsock is not namespaced). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <sys/socket.h>
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
int socket(int domain, int type, int protocol) {
    static int (*real)(int, int, int);
    if (domain == AF_VSOCK) { errno = EAFNOSUPPORT; return -1; }
    if (!real) real = (int (*)(int, int, int))dlsym(RTLD_NEXT, "socket");
    return real(domain, type, protocol);
}
"""

# PID 1 of the phone's pid namespace: reaps orphans, exits on SIGTERM (everything inside dies with it).
REAPER = (
    "import os, signal, time\n"
    "signal.signal(signal.SIGTERM, lambda *a: os._exit(0))\n"
    "signal.signal(signal.SIGINT, lambda *a: os._exit(0))\n"
    "while True:\n"
    "    try:\n"
    "        os.wait()\n"
    "    except ChildProcessError:\n"
    "        time.sleep(0.5)\n"
)

# The relay: listen on the host's loopback first, then enter the phone's network namespace, so every
# connection accepted (host side) is piped to a socket created in the phone (127.0.0.1:5555 there).
RELAY = r"""
import ctypes, os, socket, sys, threading
port, nspid, target = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
skip = range(5554, 5586)
while True:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    if port or srv.getsockname()[1] not in skip:
        break
    srv.close()
srv.listen(16)
libc = ctypes.CDLL(None, use_errno=True)
fd = os.open(f"/proc/{nspid}/ns/net", os.O_RDONLY)
if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
    sys.exit(f"relay: setns: {os.strerror(ctypes.get_errno())}")
os.close(fd)
print(srv.getsockname()[1], flush=True)

def pump(src, dst, done):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    for s, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
        try:
            s.shutdown(how)
        except OSError:
            pass
    if done.acquire(blocking=False):  # the first direction to finish: the other closes both
        return
    src.close(); dst.close()

def serve(client):
    try:
        up = socket.create_connection(("127.0.0.1", target), timeout=5)
        up.settimeout(None)
    except OSError:
        client.close()
        return
    for s in (client, up):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    done = threading.Lock()
    threading.Thread(target=pump, args=(client, up, done), daemon=True).start()
    pump(up, client, done)

while True:
    conn, _ = srv.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""


class VirtualPhoneUnavailable(RuntimeError):
    """This host cannot run a virtual phone; the message says what is missing and how to install it."""


# ----------------------------------------------------------------------------------------------- host checks

def _elf_interpreter(path: str) -> str | None:
    """The program interpreter (PT_INTERP) of a 64-bit little-endian ELF file, "" when static, None when not ELF."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
            if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
                return None
            phoff, = struct.unpack_from("<Q", head, 32)
            phentsize, phnum = struct.unpack_from("<HH", head, 54)
            fh.seek(phoff)
            table = fh.read(phentsize * phnum)
            for i in range(phnum):
                p_type, = struct.unpack_from("<I", table, i * phentsize)
                if p_type == 3:  # PT_INTERP
                    offset, = struct.unpack_from("<Q", table, i * phentsize + 8)
                    size, = struct.unpack_from("<Q", table, i * phentsize + 32)
                    fh.seek(offset)
                    return fh.read(size).rstrip(b"\0").decode()
            return ""
    except OSError:
        return None


def _compiler() -> str | None:
    return shutil.which("cc") or shutil.which("gcc")


_NAMESPACE_PROBE: str | None | bool = False  # False: not probed yet


def _namespace_problem() -> str | None:
    """Why `unshare --net --mount --pid` fails here (containers without CAP_SYS_ADMIN), probed once."""
    global _NAMESPACE_PROBE
    if _NAMESPACE_PROBE is False:
        try:
            proc = subprocess.run(["unshare", "--net", "--mount", "--pid", "--fork", "--propagation", "private",
                                   "true"], capture_output=True, text=True, timeout=30)
            _NAMESPACE_PROBE = None if proc.returncode == 0 else (proc.stderr.strip() or f"exit {proc.returncode}")
        except (OSError, subprocess.TimeoutExpired) as exc:
            _NAMESPACE_PROBE = str(exc)
    return _NAMESPACE_PROBE


def unavailable_reason() -> str | None:
    """None when this host can run a virtual phone, else what is missing and how to install it."""
    from android_harness.qemu import QemuUnavailable, find_qemu

    if not sys.platform.startswith("linux"):
        return "a virtual phone needs Linux (namespaces, chroot)"
    missing = []
    if os.geteuid() != 0:
        missing.append("root (namespaces, chroot and mounts need it)")
    for tool in ("unshare", "nsenter"):
        if shutil.which(tool) is None:
            missing.append(f"`{tool}` (Debian package util-linux)")
    if not os.access(CHROOT, os.X_OK):
        missing.append(f"{CHROOT} (Debian package coreutils)")
    if not os.access(ADBD, os.X_OK):
        missing.append(f"{ADBD} (Debian bookworm-backports package adbd, 34.x)")
    interp = _elf_interpreter(BUSYBOX)
    if interp is None:
        missing.append(f"{BUSYBOX} (Debian package busybox-static)")
    elif interp:
        missing.append(f"a static {BUSYBOX} (this one is dynamically linked: install Debian's busybox-static)")
    try:
        find_qemu()
    except QemuUnavailable as exc:
        missing.append(f"qemu-aarch64 8.0 or later ({exc})")
    if _compiler() is None:
        missing.append("a C compiler `cc` or `gcc` (for the vsock shim; Debian package gcc)")
    if shutil.which("adb") is None:
        missing.append("the `adb` client on the PATH (Debian bookworm-backports package adb)")
    if missing:
        return "a virtual phone needs " + "; ".join(missing) + ". " + INSTALL_HINT
    problem = _namespace_problem()
    if problem:
        return f"cannot create network/mount/pid namespaces here (unshare: {problem}); a virtual phone needs them"
    return None


# ----------------------------------------------------------------------------------------------- adb server

_SERVER_STARTED_HERE = False


def _adb_env() -> dict:
    return {**os.environ, "ADB_MDNS": "0", "ADB_MDNS_AUTO_CONNECT": "0"}


def _adb(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(["adb", *args], capture_output=True, text=True, timeout=timeout, env=_adb_env(),
                          stdin=subprocess.DEVNULL)


def _server_running() -> bool:
    try:
        with socket.create_connection(ADB_SERVER, timeout=1):
            return True
    except OSError:
        return False


def ensure_adb_server() -> None:
    """Start the host's adb server (127.0.0.1:5037) unless one is running."""
    global _SERVER_STARTED_HERE
    if _server_running():
        return
    proc = _adb("start-server", timeout=60)
    if proc.returncode != 0 or not _server_running():
        raise VirtualPhoneUnavailable(f"`adb start-server` failed: {(proc.stdout + proc.stderr).strip()}")
    _SERVER_STARTED_HERE = True


def stop_adb_server(force: bool = False) -> None:
    """`adb kill-server`, if this module started the server (or ``force``); for test teardown."""
    global _SERVER_STARTED_HERE
    if (_SERVER_STARTED_HERE or force) and _server_running():
        _adb("kill-server", timeout=30)
    _SERVER_STARTED_HERE = False


def _device_states() -> dict[str, str]:
    """serial -> state as the adb server lists them (ppadb when installed, else `adb devices`)."""
    try:
        from ppadb.client import Client
    except ImportError:
        Client = None
    if Client is not None:
        client = Client(host=ADB_SERVER[0], port=ADB_SERVER[1])
        states = {d.serial: "listed" for d in client.devices()}
        states.update({d.serial: "device" for d in client.devices(state="device")})
        return states
    out = _adb("devices").stdout.splitlines()[1:]
    return dict(line.split("\t")[:2] for line in out if "\t" in line)


# ----------------------------------------------------------------------------------------------- the phone

def _kill(pid: int | None, sig: int) -> None:
    if pid:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _children(pid: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []


def _wait_child(pid: int, timeout: float = 5.0) -> int:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        kids = _children(pid)
        if kids:
            return kids[0]
        time.sleep(0.02)
    raise RuntimeError(f"process {pid} started no child within {timeout:.0f} s")


def _parent_death_signal():
    """preexec_fn: die with the process that started us (when started from the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def preexec():
        import ctypes
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

    return preexec


class VirtualPhone:
    """One virtual phone: its tree under ``workdir``, its namespaces, adbd and relay while started."""

    def __init__(self, workdir: Path, name: str = "vphone0", host_port: int | None = None,
                 props: dict | None = None, log=print):
        self.workdir = Path(workdir).resolve()
        self.name = name
        self.host_port = host_port
        if host_port is not None and host_port in EMULATOR_PORTS:
            raise ValueError(f"host port {host_port} is in 5554-5585, which the adb server probes for emulators")
        self.props = {**DEFAULT_PROPS, "ro.serialno": name, **(props or {})}
        self.log = log
        self.root = self.workdir / "root"
        self.logs = self.workdir / "logs"
        self.serial: str | None = None
        self._unshare: subprocess.Popen | None = None
        self._ns_pid: int | None = None
        self._adbd: subprocess.Popen | None = None  # nsenter -p; adbd is its child
        self._adbd_pid: int | None = None
        self._relay: subprocess.Popen | None = None
        self._small_tmp = False

    # -- context manager
    def __enter__(self) -> "VirtualPhone":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- the tree
    def _tree_key(self, qemu_path: str) -> dict:
        def stamp(p):
            st = os.stat(p)
            return [os.path.realpath(p), st.st_size, int(st.st_mtime)]
        return {"format": TREE_FORMAT, "adbd": stamp(ADBD), "busybox": stamp(BUSYBOX), "qemu": stamp(qemu_path),
                "shim": hashlib.sha256(NOVSOCK_C.encode()).hexdigest()[:16]}

    def _shim(self) -> Path:
        """novsock.so, compiled once into workdir (again when its source changes)."""
        src, lib = self.workdir / "novsock.c", self.workdir / "novsock.so"
        if lib.exists() and src.exists() and src.read_text() == NOVSOCK_C:
            return lib
        src.write_text(NOVSOCK_C)
        proc = subprocess.run([_compiler(), "-O2", "-shared", "-fPIC", "-o", str(lib), str(src), "-ldl"],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise VirtualPhoneUnavailable(f"compiling the vsock shim failed: {proc.stderr.strip()}")
        return lib

    @staticmethod
    def _libraries(binary: str) -> tuple[list[str], str]:
        """The shared libraries `ldd` lists for ``binary``, and its loader."""
        out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
        libs, loader = [], ""
        for line in out.splitlines():
            parts = line.split()
            if "=>" in parts and len(parts) > parts.index("=>") + 1 and parts[parts.index("=>") + 1].startswith("/"):
                libs.append(parts[parts.index("=>") + 1])
            elif parts and parts[0].startswith("/"):
                loader = parts[0]
        return libs, loader

    def build_tree(self, force: bool = False) -> Path:
        """Build the phone's file tree under ``workdir/root`` unless it is there and current."""
        from android_harness.qemu import find_qemu

        self.workdir.mkdir(parents=True, exist_ok=True)
        qemu = find_qemu()
        key = self._tree_key(qemu.path)
        stamp = self.root / ".vphone-tree.json"
        if not force and stamp.exists():
            try:
                if json.loads(stamp.read_text()) == key:
                    return self.root
            except ValueError:
                pass
        self.log(f"virtual phone {self.name}: building its tree in {self.root}")
        shim = self._shim()
        if self.root.exists():
            shutil.rmtree(self.root)
        R = self.root
        for d in ("system/bin", "system/lib64", "system/etc", "data/local/tmp", "data/adb", "data/misc/adb",
                  "proc", "sys", "dev", "storage/emulated/0", "vendor", "cache", "mnt"):
            (R / d).mkdir(parents=True, exist_ok=True)
        os.chmod(R / "data/local/tmp", 0o1777)
        os.symlink("system/bin", R / "bin")          # Android 10+; Debian's adbd runs /bin/sh
        os.symlink("system/etc", R / "etc")
        os.symlink("/storage/emulated/0", R / "sdcard")
        bin_ = R / "system/bin"
        shutil.copy2(BUSYBOX, bin_ / "busybox")
        applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
        for applet in applets:
            if applet != "busybox" and "/" not in applet:
                os.symlink("busybox", bin_ / applet)
        lib64 = R / "system/lib64"
        libs, loader = self._libraries(ADBD)
        libs2, _ = self._libraries(str(shim))
        if not loader:
            raise VirtualPhoneUnavailable(f"`ldd {ADBD}` names no loader")
        if _elf_interpreter(qemu.path):  # a dynamic qemu: its libraries too, started through the loader
            qlibs, _ = self._libraries(qemu.path)
            libs += qlibs
            shutil.copy2(qemu.path, bin_ / "qemu-aarch64.bin")
            (bin_ / "qemu-aarch64").write_text(
                f'#!/system/bin/sh\nexec /system/lib64/{Path(loader).name} --library-path /system/lib64 '
                f'/system/bin/qemu-aarch64.bin "$@"\n')
            os.chmod(bin_ / "qemu-aarch64", 0o755)
        else:
            shutil.copy2(qemu.path, bin_ / "qemu-aarch64")
        for lib in {*libs, *libs2, loader}:
            shutil.copy(lib, lib64 / Path(lib).name)      # follows symlinks
        shutil.copy(shim, lib64 / "novsock.so")
        shutil.copy2(ADBD, bin_ / "adbd")
        (bin_ / "getprop").write_text(GETPROP)
        os.chmod(bin_ / "getprop", 0o755)
        (R / "system/lib64/.loader").write_text(Path(loader).name)
        stamp.write_text(json.dumps(key))
        return R

    def share_pushed_files(self, other: "VirtualPhone | Path") -> int:
        """Hard-link into this phone's ``/data`` what the suite pushed to ``other`` (a phone, or its
        workdir) and this one lacks: complete runtime bundles (``bundle-*`` with their digest list) and
        the digest-named ``files/``. N virtual phones then hold one copy of the 622 MiB bundle, and
        the second phone is not pushed it again. Safe because nothing on a phone changes these files
        in place (bundles unpack into ``.partial`` and are renamed; files are pushed as ``.partial``
        and renamed) and both are checked against their digests before use. Before ``start()``;
        returns the number of files linked (0 when the phones are on different filesystems)."""
        from android_harness.adb import REMOTE_ROOT

        src = Path(getattr(other, "workdir", other)) / "root" / REMOTE_ROOT.lstrip("/")
        dst = self.root / REMOTE_ROOT.lstrip("/")
        if not src.is_dir() or src.resolve() == dst.resolve():
            return 0
        linked = 0
        try:
            for bundle in sorted(src.glob("bundle-*")):
                if bundle.name.endswith(".partial") or not (bundle / "SHA256SUMS").is_file() \
                        or (dst / bundle.name).exists():
                    continue
                tmp = dst / f"{bundle.name}.partial"
                if tmp.exists():
                    shutil.rmtree(tmp)
                shutil.copytree(bundle, tmp, symlinks=True, copy_function=os.link)
                os.replace(tmp, dst / bundle.name)
                linked += sum(1 for f in (dst / bundle.name).rglob("*") if f.is_file() and not f.is_symlink())
            if (src / "files").is_dir():
                (dst / "files").mkdir(parents=True, exist_ok=True)
                for f in (src / "files").iterdir():
                    if f.is_file() and not f.name.endswith(".partial") and not (dst / "files" / f.name).exists():
                        os.link(f, dst / "files" / f.name)
                        linked += 1
        except OSError as exc:  # another filesystem (EXDEV), or a file removed meanwhile: push instead
            self.log(f"virtual phone {self.name}: not sharing the files pushed to {src.parent} ({exc})")
        return linked

    def _write_props(self) -> None:
        lines = [f"{k}={v}" for k, v in self.props.items()]
        (self.root / "system/build.prop").write_text("# virtual phone " + self.name + "\n" + "\n".join(lines) + "\n")

    # -- processes
    def _nsenter(self, *argv: str, pid_ns: bool = False, check: bool = True, timeout: float = 30):
        cmd = ["nsenter", "-t", str(self._ns_pid), "-n", "-m", *(["-p"] if pid_ns else []), *argv]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise RuntimeError(f"virtual phone {self.name}: {' '.join(argv)[:200]} failed: "
                               f"{(proc.stdout + proc.stderr).strip()}")
        return proc

    def _start_namespace(self) -> None:
        with open(self.logs / "namespace.log", "w") as log:
            self._unshare = subprocess.Popen(
                ["unshare", "--net", "--mount", "--pid", "--fork", "--propagation", "private", "--kill-child",
                 sys.executable, "-I", "-S", "-c", REAPER],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                start_new_session=True, preexec_fn=_parent_death_signal())
        self._ns_pid = _wait_child(self._unshare.pid)
        R = self.root
        ip = "ip link set lo up" if shutil.which("ip") else f"{BUSYBOX} ip link set lo up"
        script = f"""set -eu
{ip}
mount --bind {R} {R}
mount --bind {R}/data {R}/data
mount --bind {R}/system {R}/system
mount -o remount,bind,ro {R}/system
mount -t proc proc {R}/proc
mount -t sysfs sysfs {R}/sys 2>/dev/null || mount --rbind -o ro /sys {R}/sys
mount -t tmpfs -o mode=755,size=1m tmpfs {R}/dev
for n in null zero full random urandom tty; do touch {R}/dev/$n; mount --bind /dev/$n {R}/dev/$n; done
mkdir -p {R}/dev/pts {R}/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts {R}/dev/pts
ln -s pts/ptmx {R}/dev/ptmx
ln -s /proc/self/fd {R}/dev/fd
ln -s /proc/self/fd/0 {R}/dev/stdin; ln -s /proc/self/fd/1 {R}/dev/stdout; ln -s /proc/self/fd/2 {R}/dev/stderr
"""
        self._nsenter("sh", "-c", script, pid_ns=True)

    def _adbd_listening(self) -> bool:
        """Whether something listens on port 5555 in the phone's network namespace (its /proc/PID/net/tcp*)."""
        want = f":{ADBD_PORT:04X}"
        for table in ("tcp", "tcp6"):
            try:
                lines = Path(f"/proc/{self._ns_pid}/net/{table}").read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                fields = line.split()
                if len(fields) > 3 and fields[1].endswith(want) and fields[3] == "0A":
                    return True
        return False

    def _start_adbd(self) -> None:
        loader = (self.root / "system/lib64/.loader").read_text().strip()
        env = {"PATH": "/system/bin", "ANDROID_ROOT": "/system", "ANDROID_DATA": "/data",
               "EXTERNAL_STORAGE": "/sdcard", "TMPDIR": "/data/local/tmp", "HOME": "/data/local/tmp",
               "SHELL": "/bin/sh", "USER": "root", "LOGNAME": "root", "ADBD_PORT": str(ADBD_PORT),
               "QEMU": "/system/bin/qemu-aarch64", "QEMU_CPU": CPU}
        argv = ["nsenter", "-t", str(self._ns_pid), "-n", "-m", "-p", "env", "-i",
                *(f"{k}={v}" for k, v in env.items()),
                CHROOT, str(self.root), f"/system/lib64/{loader}", "--library-path", "/system/lib64",
                "--preload", "/system/lib64/novsock.so", "/system/bin/adbd"]
        with open(self.logs / "adbd.log", "a") as log:
            self._adbd = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True)
        self._adbd_pid = _wait_child(self._adbd.pid)
        end = time.monotonic() + 20
        while not self._adbd_listening():
            if self._adbd.poll() is not None or time.monotonic() > end:
                tail = (self.logs / "adbd.log").read_text(errors="replace").splitlines()[-10:]
                raise RuntimeError(f"virtual phone {self.name}: adbd did not listen on port {ADBD_PORT}:\n  "
                                   + "\n  ".join(tail))
            time.sleep(0.05)

    def _start_relay(self) -> None:
        with open(self.logs / "relay.log", "w") as log:
            self._relay = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", RELAY, str(self.host_port or 0), str(self._ns_pid),
                 str(ADBD_PORT)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, text=True,
                start_new_session=True, preexec_fn=_parent_death_signal())
        line = self._relay.stdout.readline().strip()
        if not line.isdigit():
            self._relay.wait(timeout=5)
            raise RuntimeError(f"virtual phone {self.name}: the relay did not start: "
                               + (self.logs / "relay.log").read_text(errors="replace").strip()[-800:])
        self.host_port = int(line)
        self.serial = f"127.0.0.1:{self.host_port}"

    def _connect(self, timeout: float = 30) -> None:
        """`adb connect` until the adb server lists the phone as "device"."""
        end = time.monotonic() + timeout
        state, last_connect = None, 0.0
        while time.monotonic() < end:
            if time.monotonic() - last_connect > 3:
                _adb("connect", self.serial, timeout=15)
                last_connect = time.monotonic()
            state = _device_states().get(self.serial)
            if state == "device":
                return
            time.sleep(0.1)
        raise RuntimeError(f"virtual phone {self.name}: the adb server lists {self.serial} as {state!r}, "
                           f"not 'device', after {timeout:.0f} s (logs in {self.logs})")

    # -- the interface
    def running(self) -> bool:
        return self._unshare is not None and self._unshare.poll() is None

    def start(self) -> str:
        """Build the tree if needed, start the phone and connect the adb server; returns the serial."""
        if self.running():
            if self._adbd is None or self._adbd.poll() is not None:
                self.restart_adbd()
            return self.serial
        reason = unavailable_reason()
        if reason is not None:
            raise VirtualPhoneUnavailable(reason)
        self.build_tree()
        self.logs.mkdir(parents=True, exist_ok=True)
        self._write_props()
        try:
            self._start_namespace()
            self._start_adbd()
            self._start_relay()
            ensure_adb_server()
            self._connect()
        except BaseException:
            self.stop()
            raise
        self.log(f"virtual phone {self.name}: adb serial {self.serial} (adbd in a private network namespace)")
        return self.serial

    def stop(self) -> None:
        """Disconnect it from the adb server and end everything it started. Idempotent."""
        if self.serial and shutil.which("adb") and _server_running():
            try:
                _adb("disconnect", self.serial, timeout=15)
            except (OSError, subprocess.TimeoutExpired):
                pass
        _kill(self._adbd_pid, signal.SIGKILL)  # adbd itself (its parent nsenter then exits)
        for proc in (self._relay, self._adbd):
            if proc is not None and proc.poll() is None:
                _kill(proc.pid, signal.SIGKILL)
        if self._ns_pid is not None:
            _kill(self._ns_pid, signal.SIGTERM)
            if self._unshare is not None:
                try:
                    self._unshare.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    _kill(self._ns_pid, signal.SIGKILL)
        if self._unshare is not None and self._unshare.poll() is None:
            try:
                self._unshare.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self._unshare.kill()
                self._unshare.wait(timeout=3)
        for proc in (self._relay, self._adbd):
            if proc is not None:
                try:
                    proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    proc.kill()
                if proc.stdout:
                    proc.stdout.close()
        self._unshare = self._ns_pid = self._adbd = self._adbd_pid = self._relay = None
        self._small_tmp = False

    def _require_running(self) -> None:
        if not self.running():
            raise RuntimeError(f"virtual phone {self.name} is not started")

    def kill_adbd(self) -> None:
        """Pull the cable: SIGKILL adbd; the adb server sees the connection drop (the phone goes offline)."""
        self._require_running()
        if self._adbd is not None:
            _kill(self._adbd_pid, signal.SIGKILL)
            try:
                self._adbd.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self._adbd = self._adbd_pid = None

    def restart_adbd(self, timeout: float = 30) -> None:
        """Plug it back in: start adbd again and wait until the adb server lists the phone as "device"."""
        self._require_running()
        if self._adbd is not None and self._adbd.poll() is None:
            self.kill_adbd()
        self._start_adbd()
        self._connect(timeout)

    def set_free_bytes(self, n: int | None) -> None:
        """Make /data/local/tmp a fresh tmpfs of ``n`` bytes (nearly full); None restores the real folder.

        The files pushed before are hidden (not lost) while the small filesystem is mounted."""
        self._require_running()
        target = f"{self.root}/data/local/tmp"
        if self._small_tmp:
            self._nsenter("umount", "-l", target)
            self._small_tmp = False
        if n is not None:
            self._nsenter("mount", "-t", "tmpfs", "-o", f"size={int(n)},mode=1777", "tmpfs", target)
            self._small_tmp = True
