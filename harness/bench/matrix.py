"""Benchmark: the default matrix cold and warm, stage by stage, with peak memory.

    python -m harness.bench.matrix [--profile default] [--cache-dir DIR]

Runs the study's stages in order on an empty cache (cold), then again in a fresh
process-level study over the same cache (warm): model loading, sample selection,
conversion (per framework and quantization), generation (per attack), inference
(per platform), and evaluating every configuration. Writes
``reports/bench/matrix-<time>.json`` with the stage times of both runs and the
process's peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import harness  # noqa: F401  (import guard first)
from harness.attack.profiles import load_profile
from harness.cache import ArtifactCache
from harness.study import QUANTIZATIONS, Study, matrix
from harness.zoo import registry

REPORTS = Path(__file__).resolve().parents[2] / "reports" / "bench"


def run_once(profile, cache_dir: Path, label: str) -> dict:
    stages: dict[str, float] = defaultdict(float)
    study = Study("mini", profile, ArtifactCache(cache_dir, log=lambda m: None), log=lambda m: None)
    combos = registry.combinations("mini")

    def timed(stage: str, fn):
        start = time.perf_counter()
        out = fn()
        stages[stage] += time.perf_counter() - start
        return out

    for framework, name in combos:
        timed("load models", lambda: study.model(framework, name))
    timed("sample selection", lambda: study.selection)
    for framework, name in combos:
        timed("evaluation and calibration images", lambda: (study.evaluation(framework, name),
                                                           study.calibration(framework, name)))
    for framework, name in combos:
        for q in QUANTIZATIONS:
            timed(f"convert {framework} {q}", lambda: study.conversion(framework, name, q))
    for framework, name in combos:
        for attack in profile.attack_names:
            timed(f"generate {attack}", lambda: study.adversarial_set(framework, name, attack))
    configurations = matrix(("pc", "mobile"), profile.attack_names)
    for config in configurations:
        timed(f"infer {config.platform} {config.quantization}",
              lambda: study._adversarial_logits(config.framework, config.model, config.attack,
                                                     config.quantization, config.platform))
    records = [timed("evaluate configurations", lambda c=c: study.evaluate(c)) for c in configurations]
    study.close()
    total = sum(stages.values())
    print(f"{label}: {total:.1f} s in all")
    for stage, seconds in stages.items():
        print(f"  {stage:28} {seconds:8.2f} s")
    return {"total_seconds": total, "stages": dict(stages), "configurations": len(records)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default")
    parser.add_argument("--cache-dir", type=Path, default=None, help="default: a fresh temporary directory")
    args = parser.parse_args(argv)
    profile = load_profile(args.profile)
    with tempfile.TemporaryDirectory() as tmp:
        cache_dir = args.cache_dir or Path(tmp)
        cold = run_once(profile, cache_dir, "cold")
        warm = run_once(profile, cache_dir, "warm")
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    REPORTS.mkdir(parents=True, exist_ok=True)
    out = REPORTS / f"matrix-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"profile": profile.to_dict(), "machine": platform.platform(),
                               "cold": cold, "warm": warm, "peak_rss_mib": round(peak_kib / 1024, 1)},
                              indent=1) + "\n")
    print(f"peak resident memory {peak_kib / 1024:.0f} MiB; wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
