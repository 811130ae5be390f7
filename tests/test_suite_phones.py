"""Several phones: which phones a session has, how the device cases are spread over them, their records.

The end-to-end check (two virtual phones, ``pytest -m device -n 2 --virtual-phones 2``) is
the last test; it skips where a virtual phone cannot start.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness import suite
from harness.study import matrix

REPO = Path(__file__).resolve().parents[1]


def _config(virtual_phones=None, device_serial=None, virtual_phone="auto", markexpr="device", keyword=""):
    option = SimpleNamespace(virtual_phones=virtual_phones, device_serial=device_serial, virtual_phone=virtual_phone,
                             markexpr=markexpr, keyword=keyword, zoo="mini")
    return SimpleNamespace(option=option, harness_run=SimpleNamespace(matrix=lambda: matrix(attacks=("fgsm",))))


@pytest.fixture
def attached(monkeypatch):
    serials = []
    monkeypatch.setattr(suite, "attached_devices_or_skip_reason", lambda: (list(serials), None))
    monkeypatch.delenv("ANDROID_SERIAL", raising=False)
    return serials


def test_virtual_phones_n_gives_n_phones_and_one_is_todays_single_phone(attached):
    assert [(p.key, p.serial, p.virtual) for p in suite.session_phones(_config(virtual_phones=2))] == \
        [("vphone0", None, 0), ("vphone1", None, 1)]
    assert suite.session_phones(_config(virtual_phones=1)) == []
    assert suite.session_phones(_config()) == []  # nothing attached


def test_every_attached_phone_unless_one_is_chosen(attached, monkeypatch):
    attached += ["R58M1", "emulator-5554"]
    assert [(p.key, p.serial) for p in suite.session_phones(_config())] == [("R58M1", "R58M1"),
                                                                            ("emulator-5554", "emulator-5554")]
    assert suite.session_phones(_config(device_serial="R58M1")) == []
    assert suite.session_phones(_config(virtual_phone="always")) == []
    monkeypatch.setenv("ANDROID_SERIAL", "R58M1")
    assert suite.session_phones(_config()) == []
    monkeypatch.delenv("ANDROID_SERIAL")
    del attached[1:]
    assert suite.session_phones(_config()) == []


class _Metafunc:
    def __init__(self, config):
        self.config, self.fixturenames = config, ["configuration", "phone_key", "study"]

    def parametrize(self, argnames, params):
        self.argnames, self.params = argnames, params


def _groups(param):
    return [m.args[0] for m in param.marks if m.name == "xdist_group"]


def test_each_phone_gets_every_device_case_in_its_own_group(attached):
    meta = _Metafunc(_config(virtual_phones=2))
    suite.parametrize_matrix(meta)
    assert meta.argnames == ("configuration", "phone_key")
    device = [p for p in meta.params if p.values[0].platform == "device"]
    others = [p for p in meta.params if p.values[0].platform != "device"]
    configs = matrix(attacks=("fgsm",))
    assert len(device) == 2 * sum(c.platform == "device" for c in configs)
    assert {p.id for p in device} == {f"{c.id}@vphone{i}" for c in configs if c.platform == "device" for i in (0, 1)}
    for p in device:
        assert _groups(p) == [f"device@{p.values[1]}"] and p.id.endswith("@" + p.values[1])
    assert all(p.values[1] is None and p.id == p.values[0].id for p in others)
    assert all(_groups(p) == [f"{p.values[0].framework}-{p.values[0].model}"] for p in others)


def test_one_phone_keeps_the_ids_and_groups(attached):
    meta = _Metafunc(_config())
    suite.parametrize_matrix(meta)
    assert meta.argnames == "configuration"
    assert [p.id for p in meta.params] == [c.id for c in matrix(attacks=("fgsm",))]
    assert all(_groups(p) == [f"{p.values[0].framework}-{p.values[0].model}"] for p in meta.params)


def _session(items, worker=False):
    config = SimpleNamespace(workerinput={}) if worker else SimpleNamespace()
    return SimpleNamespace(config=config, items=[SimpleNamespace(callspec=SimpleNamespace(params=p)) for p in items])


def test_a_phone_plans_its_own_cases_only():
    configs = [c for c in matrix(attacks=("fgsm",)) if c.platform == "device"]
    items = [{"configuration": c, "phone_key": k} for c in configs for k in ("vphone0", "vphone1")]
    for worker in (False, True):  # an xdist worker runs the whole group of its phone: every model
        planned = suite.planned_configurations(_session(items, worker), configs[0], "vphone1")
        assert planned == configs
    one = [{"configuration": c} for c in configs]
    assert suite.planned_configurations(_session(one, True), configs[0]) == \
        [c for c in configs if (c.framework, c.model) == (configs[0].framework, configs[0].model)]


def test_records_of_several_phones_are_kept_apart_and_the_first_phone_leads():
    assert suite.record_file_name({"configuration": "a-b-fgsm-float-device"}) == "a-b-fgsm-float-device.json"
    assert suite.record_file_name({"configuration": "x-device", "phone": "127.0.0.1:5555"}) == \
        "x-device@127.0.0.1_5555.json"
    host = {"configuration": "x-pc"}
    one, two = ({"configuration": "x-device", "phone": p} for p in ("vphone0", "vphone1"))
    only_two = {"configuration": "y-device", "phone": "vphone1"}
    records = [host, two, one, only_two]
    main, device = suite.split_phone_records(records, ["vphone0", "vphone1"])
    assert main == [host, one, only_two] and device == [two, one, only_two]
    assert suite.split_phone_records([host, one | {"phone": None}], []) == ([host, one | {"phone": None}], [])
    assert suite.phone_runs(main, device) == [("vphone1", [host, two, only_two]), ("vphone0", [host, one])]
    assert suite.phone_runs([host], []) == [(None, [host])]


def test_mark_phone_records_serial_model_and_abi():
    record = {"transport": {"serial": "127.0.0.1:4321", "serialno": "vphone1", "model": "Virtual", "abi": "arm64-v8a",
                            "fingerprint": "f"}}
    assert suite.mark_phone(dict(record), None) == record  # one phone: the record as today
    marked = suite.mark_phone(dict(record), "vphone1")
    assert marked["phone"] == "vphone1"
    assert marked["device"] == {"serial": "127.0.0.1:4321", "serialno": "vphone1", "model": "Virtual",
                                "abi": "arm64-v8a", "fingerprint": "f"}


@pytest.mark.parametrize("options, message", [
    ({"virtual_phones": 0}, "--virtual-phones must be at least 1"),
    ({"virtual_phones": 2, "virtual_phone": "never"}, "drop --virtual-phone never"),
    ({"virtual_phones": 2, "device_serial": "X"}, "drop --device-serial"),
])
def test_bad_virtual_phones_are_usage_errors(options, message):
    with pytest.raises(pytest.UsageError, match=message):
        suite.check_virtual_phones(SimpleNamespace(**{"virtual_phone": "auto", "device_serial": None, **options}))


def test_virtual_phones_imply_the_virtual_phone():
    opt = SimpleNamespace(virtual_phones=1, virtual_phone="auto", device_serial=None)
    suite.check_virtual_phones(opt)
    assert opt.virtual_phone == "always"


def test_two_virtual_phones_under_two_workers_record_the_same_results(tmp_path):
    """`pytest -m device -n 2 --virtual-phones 2`: each worker starts and uses its own virtual phone,
    each phone's records are kept under it, the phones agree bit for bit (same bundle, same qemu),
    and the report compares them. About 1.5 min cold on 2 cores (the second phone's tree and bundle),
    less warm (its results are cached under the phone's serial number)."""
    from android_harness.virtual_phone import unavailable_reason

    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"no virtual phone on this host: {reason}")
    pytest.importorskip("xdist")
    cmd = [sys.executable, "-m", "pytest", "tests/test_matrix.py", "-p", "no:cacheprovider", "-v", "-m", "device",
           "-n", "2", "--virtual-phones", "2", "-k", "tensorflow-mobilenet_v2-fgsm and device",
           "--report-dir", str(tmp_path / "reports")]
    start = time.monotonic()
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1200)
    output = done.stdout[-4000:] + done.stderr[-2000:]
    assert done.returncode == 0, output
    # each phone's cases ran in one worker, and the two phones in different workers
    workers = {}
    for line in done.stdout.splitlines():
        if "PASSED" in line and line.startswith("[gw"):
            workers.setdefault(line.split("@")[-1].split("]")[0], set()).add(line[1:4])
    assert set(workers) == {"vphone0", "vphone1"} and all(len(w) == 1 for w in workers.values()), output
    assert workers["vphone0"] != workers["vphone1"], output
    run = next(p for p in (tmp_path / "reports").iterdir() if p.name != "latest")
    records = {p.name: json.loads(p.read_text()) for p in (run / "records").glob("*.json")}
    assert set(records) == {f"tensorflow-mobilenet_v2-fgsm-{q}-device@vphone{i}.json"
                            for q in ("float", "int8") for i in (0, 1)}
    for name, r in records.items():
        assert r["phone"] == name.split("@")[1][:-5] and r["device"]["serialno"] == r["phone"]
        assert r["device"]["serial"].startswith("127.0.0.1:") and r["device"]["abi"] == "arm64-v8a"
        assert r["passed"] is True, r["verdicts"]
    serials = {r["phone"]: r["device"]["serial"] for r in records.values()}
    assert serials["vphone0"] != serials["vphone1"]
    for q in ("float", "int8"):
        one, two = (records[f"tensorflow-mobilenet_v2-fgsm-{q}-device@vphone{i}.json"] for i in (0, 1))
        for field in ("sample_ids", "per_sample_success", "per_sample_clean_agreement",
                      "per_sample_adversarial_agreement", "success_rate", "clean_accuracy", "digests"):
            assert one[field] == two[field], (q, field)
    devices = json.loads((run / "statistics.json").read_text())["devices"]
    assert devices["phones"] == ["vphone0", "vphone1"]
    assert devices["summary"] == {"configurations": 2, "compared": 2, "identical": 2, "disagree": []}
    assert '<h2 id="devices">Devices</h2>' in (run / "report.html").read_text()
    print(f"two virtual phones, -n 2: {time.monotonic() - start:.0f} s")
