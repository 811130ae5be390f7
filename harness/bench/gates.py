"""Benchmark: what the gates cost a run.

    python -m harness.bench.gates [--records reports/latest/records] [--thresholds FILE]

Reads a run's records and the committed baseline, then times, in this process:
loading and validating the baseline, judging every configuration (exact McNemar,
Wilson bounds, bit-exactness), the run-level Benjamini-Hochberg step, and proposing a
baseline with its change list. The study's own fingerprint (sample ids and weights
digests) is timed on a warm cache. Writes ``reports/bench/gates-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import harness  # noqa: F401  (import guard first)
from harness.attack.profiles import load_profile
from harness.cache import ArtifactCache
from harness.metrics import gates as gating
from harness.study import Study, matrix

REPORTS = Path(__file__).resolve().parents[2] / "reports" / "bench"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.bench.gates", description=__doc__.splitlines()[0])
    parser.add_argument("--records", default=str(REPORTS.parent / "latest" / "records"))
    parser.add_argument("--thresholds", default=str(gating.default_path("mini", "default")))
    args = parser.parse_args(argv)
    records = [json.loads(p.read_text()) for p in sorted(Path(args.records).glob("*.json"))]
    records = [r for r in records if not r.get("error") and "per_sample_clean_agreement" in r]
    if not records:
        parser.error(f"{args.records}: no records of this suite's current form")
    out: dict = {"records": args.records, "n_records": len(records)}

    start = time.perf_counter()
    baseline = gating.load_baseline(Path(args.thresholds), [c.id for c in matrix()], "mini", "default")
    out["load_baseline_seconds"] = time.perf_counter() - start

    judged = [r for r in records if r["configuration"] in baseline.entries]
    start = time.perf_counter()
    for r in judged:
        verdicts = gating.judge(r, baseline, len(judged))
        r["regression"] = verdicts[0].numbers
        r["passed"] = all(v.passed for v in verdicts)
    out["judge_seconds_total"] = time.perf_counter() - start
    out["judge_seconds_per_case"] = out["judge_seconds_total"] / max(1, len(judged))
    out["failed"] = sorted(r["configuration"] for r in judged if not r["passed"])

    start = time.perf_counter()
    gating.run_level_regressions(judged, baseline.policy)
    out["run_level_seconds"] = time.perf_counter() - start

    study = Study("mini", load_profile("default"), ArtifactCache(log=lambda m: None), log=lambda m: None)
    start = time.perf_counter()
    fingerprint = study.fingerprint()
    out["fingerprint_seconds"] = time.perf_counter() - start
    study.close()

    start = time.perf_counter()
    proposal = gating.propose(judged, fingerprint, baseline, {"pc", "mobile", "arm64", "device"}, "mini",
                              "default", baseline.policy, "bench")
    changes = gating.describe_changes(baseline, proposal)
    out["propose_seconds"] = time.perf_counter() - start
    out["changes_summary"] = changes[0]
    out["baseline_bytes"] = Path(args.thresholds).stat().st_size

    REPORTS.mkdir(parents=True, exist_ok=True)
    path = REPORTS / f"gates-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    for key, value in out.items():
        print(f"{key:26} {value if not isinstance(value, float) else f'{value:.4f}'}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
