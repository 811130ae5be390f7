"""Running ``python -m harness`` on a corpus file, in this process, as the command line calls it."""

from __future__ import annotations

import json
from pathlib import Path

from harness.zoo import registry

# The user profile, small: two direct attacks on three photos, a few steps each.
PROFILE = """[user]
samples = 3
calibration = 1
seed = 0
attack_batch_size = 3
emulated_samples = 1
fgsm = { eps = 0.01568627450980392 }
bim = { eps = 0.01568627450980392, steps = 2, rel_stepsize = 0.2 }
[user.direct]
samples = 3
emulated_samples = 1
boundary = { steps = 10, spherical_step = 0.01, source_step = 0.01, init_directions = 20, init_retries = 2 }
square = { eps = 0.05, max_iter = 20, p_init = 0.3 }
"""
ATTACKS = {"direct_boundary", "direct_square"}


def write_profile(root: Path) -> Path:
    path = root / "profiles.toml"
    path.write_text(PROFILE)
    return path


def run_main(profiles: Path, report_dir: Path, cache: Path, monkeypatch, *options: str,
             platforms: str = "mobile") -> int:
    """``main([...])`` with the small profile; the run's ``user`` zoo is unregistered afterwards."""
    from harness.__main__ import main

    monkeypatch.setenv("HARNESS_PROFILES", str(profiles))
    try:
        return main([*options, "--platforms", platforms, "--report-dir", str(report_dir), "--cache-dir", str(cache)])
    finally:
        registry.unregister_run_zoo("user")


def records(report_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in report_dir.glob("*/records/*.json") if not p.parents[1].is_symlink()]


def check_records(found: list[dict], expect: dict) -> None:
    """Every record is a measurement of the file, with the facts ``expect`` names read off it."""
    assert {r["attack"] for r in found} == ATTACKS, [r["configuration"] for r in found]
    for record in found:
        assert not record.get("error"), record.get("error")
        assert 0 < record["n_samples"] <= 3 and 0.0 <= record["success_rate"] <= 1.0
        facts = record["user_model"]
        if "recipe" in expect:
            assert facts["recipe"]["name"] == expect["recipe"], facts["recipe"]
        if "quantization" in expect:
            assert record["quantization"] == expect["quantization"]
        if "outputs" in expect:
            assert record["outputs"] == expect["outputs"], facts["output_kind"]
        if "batch" in expect:
            size = None if record["batch"]["mode"] == "dynamic" else record["batch"]["size"]
            assert size == expect["batch"], record["batch"]
        if "output" in expect:
            chosen = facts["output"]["name"]
            assert len(facts["outputs"]) > 1 and chosen != facts["outputs"][0]["name"] or chosen, facts["outputs"]
        if expect.get("labels") == "metadata":
            assert facts["metadata"] is not None and "!" in facts["labels"]["source"], facts["labels"]
        if "label_offset" in expect:
            assert facts["labels"]["offset"] == expect["label_offset"]
