"""The virtual phone: a real adbd in private namespaces that the host's adb server and ppadb see as
a phone (push/pull, shell exit status, getprop, qemu for aarch64 programs), that can be unplugged
and plugged back in, whose /data/local/tmp can be made nearly full, and that leaves nothing behind.

Needs root, Debian's adbd/adb 34.x, a static busybox, qemu-user 8.0+ and a C compiler
(`make system-deps`); skips with what is missing otherwise."""

from __future__ import annotations

import hashlib
import os
import re
import socket

import pytest

from android_harness import virtual_phone as vp

REASON = vp.unavailable_reason()
needs_phone = pytest.mark.skipif(REASON is not None, reason=f"no virtual phone here: {REASON}")
SENTINEL = "; echo __RC=$?"


@pytest.fixture(scope="module")
def phone(tmp_path_factory):
    if REASON is not None:
        pytest.skip(f"no virtual phone here: {REASON}")
    p = vp.VirtualPhone(tmp_path_factory.mktemp("vphone"), log=lambda *a: None)
    try:
        p.start()
        yield p
    finally:
        p.stop()
        vp.stop_adb_server()


def client():
    from ppadb.client import Client

    return Client(host="127.0.0.1", port=5037)


def device(serial):
    d = client().device(serial)
    assert d is not None, f"{serial} not listed by the adb server"
    return d


def rc_of(out: str) -> int | None:
    m = re.search(r"__RC=(\d+)\s*$", out or "")
    return int(m.group(1)) if m else None


# ------------------------------------------------------------------ without a phone

def test_missing_adbd_says_how_to_install(monkeypatch):
    monkeypatch.setattr(vp, "ADBD", "/nonexistent/adbd")
    reason = vp.unavailable_reason()
    assert reason and "/nonexistent/adbd" in reason and "adbd" in reason and "make system-deps" in reason
    with pytest.raises(vp.VirtualPhoneUnavailable, match="bookworm-backports"):
        vp.VirtualPhone("/nonexistent/vphone").start()


def test_emulator_ports_are_refused():
    with pytest.raises(ValueError, match="emulators"):
        vp.VirtualPhone("/nonexistent/vphone", host_port=5555)


def test_a_second_phone_shares_the_first_ones_pushed_bundle_and_files(tmp_path):
    data = "root/data/local/tmp/ondevice-robustness"
    first, second = vp.VirtualPhone(tmp_path / "vphone0"), vp.VirtualPhone(tmp_path / "vphone1", name="vphone1",
                                                                          log=lambda *a: None)
    src = tmp_path / "vphone0" / data
    (src / "bundle-abc/lib").mkdir(parents=True)
    (src / "bundle-abc/lib/libx.so").write_bytes(b"x" * 100)
    (src / "bundle-abc/SHA256SUMS").write_text("...")
    os.symlink("lib/libx.so", src / "bundle-abc/link")
    (src / "bundle-def.partial").mkdir()                   # still being pushed to the first phone: not shared
    (src / "bundle-noSums").mkdir()                        # incomplete: not shared
    (src / "files").mkdir()
    (src / "files/d1.npy").write_bytes(b"batch")
    (src / "files/d2.npy.partial").write_bytes(b"half")
    (tmp_path / "vphone1" / data / "files").mkdir(parents=True)
    (tmp_path / "vphone1" / data / "files/d1.npy").write_bytes(b"own")  # already there: kept
    assert second.share_pushed_files(first) == 2
    dst = tmp_path / "vphone1" / data
    assert sorted(p.name for p in dst.iterdir()) == ["bundle-abc", "files"]
    assert os.stat(dst / "bundle-abc/lib/libx.so").st_ino == os.stat(src / "bundle-abc/lib/libx.so").st_ino
    assert os.readlink(dst / "bundle-abc/link") == "lib/libx.so"
    assert (dst / "files/d1.npy").read_bytes() == b"own" and not (dst / "files/d2.npy.partial").exists()
    assert second.share_pushed_files(tmp_path / "vphone0") == 0  # nothing new
    assert second.share_pushed_files(tmp_path / "nothing-there") == 0


# ------------------------------------------------------------------ with a phone

@needs_phone
def test_ppadb_lists_it_as_a_device(phone):
    assert phone.serial == f"127.0.0.1:{phone.host_port}"
    assert not 5554 <= phone.host_port <= 5585
    assert phone.serial in [d.serial for d in client().devices(state="device")]
    assert device(phone.serial).get_state() == "device"


@needs_phone
def test_push_and_pull_keep_the_bytes(phone, tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 17)
    src, back = tmp_path / "blob.bin", tmp_path / "blob.back"
    src.write_bytes(data)
    d = device(phone.serial)
    d.push(str(src), "/data/local/tmp/blob.bin")
    out = d.shell("sha256sum /data/local/tmp/blob.bin" + SENTINEL)
    assert rc_of(out) == 0, out
    assert out.split()[0] == hashlib.sha256(data).hexdigest()
    d.pull("/data/local/tmp/blob.bin", str(back))
    assert back.read_bytes() == data
    d.shell("rm -f /data/local/tmp/blob.bin")


@needs_phone
def test_shell_reports_the_exit_status(phone):
    d = device(phone.serial)
    assert rc_of(d.shell("sh -c 'exit 3'" + SENTINEL)) == 3
    out = d.shell("echo hello; ls /nonexistent" + SENTINEL)
    assert out.startswith("hello") and rc_of(out) not in (None, 0)


@needs_phone
def test_getprop_answers_like_android(phone):
    d = device(phone.serial)
    assert d.shell("getprop ro.product.cpu.abi").strip() == "arm64-v8a"
    assert d.shell("getprop ro.serialno").strip() == phone.name
    assert d.shell("getprop no.such.prop fallback").strip() == "fallback"
    listing = d.shell("getprop")
    assert "[ro.kernel.qemu]: [1]" in listing.splitlines()
    assert "[ro.build.version.sdk]: [34]" in listing.splitlines()


@needs_phone
def test_the_shell_has_qemu_for_aarch64_programs(phone):
    d = device(phone.serial)
    env = d.shell('echo "$QEMU|$QEMU_CPU|$TMPDIR|$HOME|$PATH"').strip()
    assert env == "/system/bin/qemu-aarch64|cortex-a76|/data/local/tmp|/data/local/tmp|/system/bin"
    out = d.shell("test -x $QEMU && $QEMU --version && $QEMU -cpu help | grep -c -w $QEMU_CPU" + SENTINEL)
    assert rc_of(out) == 0, out
    major = int(re.search(r"qemu-aarch64 version (\d+)\.", out).group(1))
    assert major >= 8


@needs_phone
@pytest.mark.filterwarnings("ignore::ResourceWarning")  # ppadb leaks its socket when a command fails
def test_unplugging_drops_it_and_plugging_in_brings_it_back(phone):
    d = device(phone.serial)
    assert rc_of(d.shell("true" + SENTINEL)) == 0
    phone.kill_adbd()
    try:
        out = d.shell("echo still-here" + SENTINEL)
    except (RuntimeError, OSError):
        out = None  # ppadb: "device offline" / "device not found"
    assert out is None or rc_of(out) is None
    assert phone.serial not in [x.serial for x in client().devices(state="device")]
    phone.restart_adbd()
    assert rc_of(device(phone.serial).shell("echo back" + SENTINEL)) == 0


@needs_phone
def test_a_nearly_full_data_local_tmp(phone):
    d = device(phone.serial)
    phone.set_free_bytes(1 << 20)
    try:
        fields = d.shell("df -k /data/local/tmp").splitlines()[-1].split()
        assert 900 <= int(fields[3]) <= 1024, fields  # Available, KiB
    finally:
        phone.set_free_bytes(None)
    fields = d.shell("df -k /data/local/tmp").splitlines()[-1].split()
    assert int(fields[3]) > 10 * 1024


@needs_phone
def test_a_second_phone_with_its_own_props_and_port_leaves_nothing_behind(phone, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    other = vp.VirtualPhone(tmp_path / "p2", name="vphone1", host_port=port,
                            props={"ro.product.cpu.abi": "x86_64"}, log=lambda *a: None)
    try:
        assert other.start() == f"127.0.0.1:{port}"
        assert other.start() == other.serial  # idempotent
        assert device(other.serial).shell("getprop ro.product.cpu.abi").strip() == "x86_64"
        assert device(phone.serial).shell("getprop ro.product.cpu.abi").strip() == "arm64-v8a"
        pids = [other._ns_pid, other._adbd_pid, other._relay.pid, other._unshare.pid]
    finally:
        other.stop()
    other.stop()  # idempotent
    assert other.serial not in [x.serial for x in client().devices()]
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}"), f"process {pid} outlived stop()"
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
