"""Benchmark: what the device platform moves over ADB, timed on a fresh virtual phone (or a phone).

    python -m harness.bench.device [--device-serial S] [--out FILE]

With no serial, a virtual phone is started in a temporary folder (nothing on it yet), so
every push is cold. Reports, as JSON under ``reports/bench/`` and lines on stdout:

* the bundle: packing it (an artefact: timed when not cached), pushing the ``.tar.gz``,
  unpacking and checking every file's digest on the phone (``ensure_bundle`` on a phone
  without it), and the check alone on the next session;
* one adversarial PNG set of the default profile (300 PNGs and the sidecar), pushed as a
  folder, and the same images as the ``.npy`` batch the runner reads, pushed by digest
  (a second push of the same digest is a no-op: timed too).

``pytest -m device`` cold and warm times come from the suite's own runs (see docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import harness  # noqa: F401  (import guard first)
from android_harness import adb
from android_harness.bundle import get_bundle, packed
from harness.attack.profiles import load_profile
from harness.cache import ArtifactCache, file_sha256
from harness.study import Study


def timed(results: dict, name: str, fn):
    start = time.perf_counter()
    value = fn()
    results[name] = time.perf_counter() - start
    print(f"  {name:34} {results[name]:8.2f} s", flush=True)
    return value


def bench(serial: str, cache: ArtifactCache, work: Path) -> dict:
    out: dict = {}
    bundle = get_bundle("full", cache)
    tarball = timed(out, "pack_bundle_or_cache_hit", lambda: packed(bundle, cache))
    out["bundle_tar_bytes"] = tarball.stat().st_size
    transport = adb.AdbTransport(bundle, serial, cache, log=lambda m: None)
    out["device"] = transport.facts()
    transport.shell(f"rm -rf {adb.REMOTE_ROOT}")
    timed(out, "bundle_push_unpack_verify", transport.ensure_bundle)
    again = adb.AdbTransport(bundle, serial, cache, log=lambda m: None)
    timed(out, "bundle_verify_only", again.ensure_bundle)
    start = time.perf_counter()
    transport.push(tarball, f"{adb.REMOTE_ROOT}/bench.tar.gz")
    out["bundle_tar_push_only"] = time.perf_counter() - start
    print(f"  {'bundle_tar_push_only':34} {out['bundle_tar_push_only']:8.2f} s "
          f"({out['bundle_tar_bytes'] / 2**20 / out['bundle_tar_push_only']:.0f} MiB/s)", flush=True)
    transport.shell(f"rm -f {adb.REMOTE_ROOT}/bench.tar.gz")

    study = Study("mini", load_profile("default"), cache, log=lambda m: None)
    adv = study.adversarial_set("tensorflow", "resnet50", "fgsm")
    out["pngset_files"] = len(adv.ids) + 1
    out["pngset_bytes"] = sum(p.stat().st_size for p in Path(adv.path).rglob("*") if p.is_file())
    transport.shell(f"mkdir -p {adb.REMOTE_ROOT}/sets")
    timed(out, "pngset_push", lambda: transport.device.push(str(adv.path), f"{adb.REMOTE_ROOT}/sets"))
    npy = work / "set.npy"
    np.save(npy, adv.images)
    out["npy_bytes"] = npy.stat().st_size
    digest = file_sha256(npy)
    timed(out, "npy_push_by_digest", lambda: transport.push_file(npy, digest, ".npy"))
    timed(out, "npy_push_again_noop", lambda: transport.push_file(npy, digest, ".npy"))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.bench.device", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device-serial", default=None, help="a phone (default: a fresh virtual phone)")
    parser.add_argument("--out", type=Path, default=Path("reports/bench/device.json"))
    args = parser.parse_args(argv)
    cache = ArtifactCache()
    report = {"benchmark": "device", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "command": "python -m harness.bench.device " + " ".join(argv if argv is not None else sys.argv[1:])}
    with tempfile.TemporaryDirectory(prefix="bench-device-") as tmp:
        if args.device_serial:
            report["results"] = bench(adb.choose_serial(args.device_serial), cache, Path(tmp))
        else:
            from android_harness.virtual_phone import VirtualPhone

            with VirtualPhone(Path(tmp) / "phone", name="vphone-bench", log=lambda m: None) as phone:
                report["results"] = bench(phone.serial, cache, Path(tmp))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
