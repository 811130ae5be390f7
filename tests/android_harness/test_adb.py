"""The ADB transport against the virtual phone: the real adb server, the real adbd, ppadb.

Pushing the bundle, models and inputs; running the runner; pulling results; and what
phones do to a run: several attached, another ABI, no space, a flipped byte in the
pushed bundle, unplugged mid-run.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from android_harness import adb
from android_harness.bundle import get_bundle
from android_harness.virtual_phone import VirtualPhone, unavailable_reason
from harness.cache import ArtifactCache
from harness.runtime import open_runtime
from harness.runtime.remote import RemoteJobError, RunnerBackend
from tests.convert import support

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))


@pytest.fixture(scope="module")
def phone(tmp_path_factory):
    with VirtualPhone(tmp_path_factory.mktemp("vphone"), name="vphone-adb", log=lambda m: None) as vp:
        yield vp


@pytest.fixture(scope="module")
def bundle():
    return get_bundle("full", support.cache())


def transport(phone, bundle, **kw):
    return adb.AdbTransport(bundle, phone.serial, support.cache(), log=kw.pop("log", lambda m: None), **kw)


def backend(t, tmp_path):
    # results in a cache of their own: every run here really runs on the phone
    return RunnerBackend("device", t, ArtifactCache(tmp_path / "results", log=lambda m: None), log=lambda m: None,
                         processes=1)


def requests_for(framework, name, quantization, n=16):
    art = support.artifact(framework, name, quantization)
    runtime = open_runtime("arm64", support.trained(framework, name), art, quantization=quantization,
                           cache=support.cache())
    return runtime.request(support.evaluation().images[:n]), art


def test_the_phone_is_chosen_by_serial_environment_or_alone(phone, monkeypatch):
    monkeypatch.delenv(adb.SERIAL_ENV, raising=False)
    assert phone.serial in adb.attached()
    if len(adb.attached()) == 1:
        assert adb.choose_serial() == phone.serial
    monkeypatch.setenv(adb.SERIAL_ENV, phone.serial)
    assert adb.choose_serial() == phone.serial
    with pytest.raises(adb.DeviceChoiceError, match="'emulator-9999' is not attached"):
        adb.choose_serial("emulator-9999")


def test_runner_on_the_phone_matches_the_host_and_records_the_phones_facts(phone, bundle, tmp_path):
    t = transport(phone, bundle)
    assert t.props["abi"] == "arm64-v8a" and t.emulated and t.props["fingerprint"]
    tflite, tflite_art = requests_for("tensorflow", "resnet50", "int8")
    ptl, ptl_art = requests_for("pytorch", "resnet50", "int8")
    start = time.perf_counter()
    results = backend(t, tmp_path).run([tflite, ptl])
    seconds = time.perf_counter() - start
    for result, art, request in zip(results, (tflite_art, ptl_art), (tflite, ptl)):
        assert not isinstance(result, Exception), result
        with open_runtime("mobile", artifact=art, quantization="int8") as host:
            assert np.array_equal(result.logits, host.predict_logits(request.images))  # int8: bit-exact
        assert result.platform_facts["machine"] == "aarch64"
        assert result.transport["serial"] == phone.serial and result.transport["model"]
        assert result.transport["kernel"] and result.transport["release"]
    out, code = t.shell_status(f"ls {adb.REMOTE_ROOT}/files")
    assert code == 0 and len(out.split()) >= 4  # runner, 2 models, 1 input batch (shared by both)
    assert seconds < 600


def test_a_flipped_byte_in_the_pushed_bundle_is_found_and_the_bundle_pushed_again(phone, bundle):
    t = transport(phone, bundle)
    t.ensure_bundle()
    victim = f"{t.bundle_dir}/lib/python3.11/json/decoder.py"
    t.shell(f"printf 'X' | dd of={victim} bs=1 seek=100 conv=notrunc 2>/dev/null")
    _, code = t.shell_status(f"cd {t.bundle_dir} && sha256sum -c -s SHA256SUMS")
    assert code != 0
    messages = []
    again = transport(phone, bundle, log=messages.append)
    again.ensure_bundle()
    assert any("pushing it" in m for m in messages), messages
    _, code = again.shell_status(f"cd {again.bundle_dir} && sha256sum -c -s SHA256SUMS")
    assert code == 0


def test_no_free_space_is_a_clear_error_before_anything_is_pushed(phone, bundle, tmp_path):
    t = transport(phone, bundle)
    t.ensure_bundle()
    big = tmp_path / "big.tflite"
    big.write_bytes(bytes(3 << 20))
    phone.set_free_bytes(1 << 20)
    try:
        with pytest.raises(adb.NoSpace, match=r"big.tflite needs 4\.0 MiB under /data/local/tmp/ondevice-robustness, only 1\.0 MiB are free"):
            t.push_file(big, "0" * 64, ".tflite")
        out, _ = t.shell_status(f"ls {adb.REMOTE_ROOT}/files")
        assert "0" * 64 not in out
    finally:
        phone.set_free_bytes(None)


def test_a_phone_that_reports_another_abi_is_refused(phone, tmp_path, bundle):
    with VirtualPhone(tmp_path / "x86", name="vphone-x86", props={"ro.product.cpu.abi": "x86_64"},
                      log=lambda m: None) as other:
        with pytest.raises(adb.WrongABI, match=f"device {other.serial} reports ABI 'x86_64'"):
            adb.AdbTransport(bundle, other.serial, support.cache(), log=lambda m: None)
        # two phones attached, none chosen: the command line says so, lists both, exit 4
        done = subprocess.run([sys.executable, "-m", "android_harness.adb", "clean"], cwd=REPO,
                              capture_output=True, text=True, timeout=120,
                              env={k: v for k, v in __import__("os").environ.items() if k != adb.SERIAL_ENV})
        assert done.returncode == 4 and other.serial in done.stderr and "choose one with --device-serial" in done.stderr
        # the suite instead runs each device case on every phone attached (ids <case>@<serial>)
        done = subprocess.run([sys.executable, "-m", "pytest", "-m", "device", "-k", "tensorflow-resnet50-fgsm-int8",
                               "--collect-only", "-q", "-p", "no:cacheprovider"], cwd=REPO, capture_output=True,
                              text=True, timeout=300,
                              env={k: v for k, v in __import__("os").environ.items() if k != adb.SERIAL_ENV})
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        assert {f"tensorflow-resnet50-fgsm-int8-device@{s}]" for s in (phone.serial, other.serial)} <= \
            {line.split("[", 1)[-1] for line in done.stdout.splitlines()}


def test_a_phone_unplugged_mid_run_fails_naming_it_and_the_rerun_completes(phone, bundle, tmp_path):
    t = transport(phone, bundle)
    t.ensure_bundle()
    request, _ = requests_for("pytorch", "mobilenet_v2", "float", n=24)  # ~30 s under emulation
    runner_backend = backend(t, tmp_path)
    unplug = threading.Timer(8.0, phone.kill_adbd)
    unplug.start()
    try:
        (result,) = runner_backend.run([request])
    finally:
        unplug.cancel()
    assert isinstance(result, RemoteJobError)
    assert phone.serial in str(result) and "mobilenet_v2-float.ptl" in str(result)
    assert runner_backend.lookup(request) is None  # nothing half-written in the cache
    phone.restart_adbd()
    again = backend(adb.AdbTransport(bundle, phone.serial, support.cache(), log=lambda m: None), tmp_path)
    (result,) = again.run([request])
    assert not isinstance(result, Exception), result
    assert again.lookup(request) is not None


def test_the_device_platform_runs_a_converted_model_on_the_phone(phone, bundle):
    art = support.artifact("tensorflow", "mobilenet_v2", "int8")
    images = support.evaluation().images[:16]
    with open_runtime("device", support.trained("tensorflow", "mobilenet_v2"), art, quantization="int8",
                      serial=phone.serial, cache=support.cache()) as runtime:
        logits = runtime.predict_logits(images)
        assert runtime.last_result.transport["serial"] == phone.serial
    with open_runtime("mobile", artifact=art, quantization="int8") as host:
        assert np.array_equal(logits, host.predict_logits(images))
