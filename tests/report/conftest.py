"""A synthetic but complete record set: 36 mobile + 18 PC configurations, seeded."""

from __future__ import annotations

import numpy as np
import pytest

FRAMEWORKS = ("tensorflow", "pytorch")
MODELS = ("mobilenet_v2", "resnet50", "inception_v3")
ATTACKS = ("fgsm", "bim", "boundary")
BASE_RATE = {"fgsm": 0.7, "bim": 0.85, "boundary": 0.3}


def _record(framework, model, attack, quantization, platform, ids, outcomes, rng, generation_seconds):
    n = len(ids)
    rate = float(np.mean(outcomes))
    gate = {"max_success_rate": round(min(1.0, rate + 0.05), 4), "min_clean_accuracy": 0.8}
    if platform != "pc":
        gate.update(max_pc_gap=0.1, min_pc_agreement=0.7)
    return {
        "framework": framework, "model": model, "attack": attack, "quantization": quantization,
        "platform": platform, "n_samples": n, "success_rate": rate,
        "success_rate_before_rounding": min(1.0, rate + 0.05),
        "clean_accuracy": float(rng.uniform(0.85, 1.0)),
        "agreement_with_pc": 1.0 if platform == "pc" else float(rng.uniform(0.9, 1.0)),
        "adversarial_agreement_with_pc": 1.0 if platform == "pc" else float(rng.uniform(0.8, 1.0)),
        "pc_gap": 0.0,
        "model_bytes": int(rng.integers(100_000, 5_000_000)),
        "inference_seconds": float(rng.uniform(1, 20)) * (0.5 if quantization == "int8" else 1.0),
        "generation_seconds": generation_seconds,
        "gate": gate,
        "verdicts": [f"{framework}-{model}-{attack}-{quantization}-{platform}: success_rate = {rate:.4f}, "
                     f"gate max_success_rate wants at most {gate['max_success_rate']:.4f}"],
        "passed": rate <= gate["max_success_rate"],
        "versions": {"framework": {"torch": "2.14.1"} if framework == "pytorch" else {"tensorflow": "2.20.0"},
                     "runtime": {} if platform == "pc" else {"litert": "2.0.2"} if framework == "tensorflow"
                     else {"torch": "2.14.1"},
                     "converter": {}, "attack": {"foolbox": "3.3.4", "numpy": "2.3.5"}},
        "environment": {"quantized_engine": "qnnpack" if quantization == "int8" and framework == "pytorch" else None,
                        "threads": 1, "cpu": "Test CPU @ 2.0GHz", "os": "Linux-test", "python": "3.11.2"},
        "sample_ids": [int(i) for i in ids],
        "per_sample_success": [bool(o) for o in outcomes],
    }


def make_records(seed: int = 0, n: int = 120, int8_effect: float = -0.15) -> list[dict]:
    """PC float outcomes per framework/model/attack; mobile float flips a few; int8 shifts by int8_effect."""
    rng = np.random.default_rng(seed)
    ids = rng.choice(10_000, size=n, replace=False)
    records = []
    for f in FRAMEWORKS:
        for m in MODELS:
            for a in ATTACKS:
                pc = rng.random(n) < BASE_RATE[a] + rng.uniform(-0.1, 0.1)
                gen = float(rng.uniform(5, 500))
                mobile = pc ^ (rng.random(n) < 0.03)
                if int8_effect < 0:  # some successes lost
                    int8 = mobile & ~(rng.random(n) < -int8_effect)
                else:  # some failures turned into successes
                    int8 = mobile | (rng.random(n) < int8_effect)
                records.append(_record(f, m, a, "float", "pc", ids, pc, rng, gen))
                records.append(_record(f, m, a, "float", "mobile", ids, mobile, rng, gen))
                records.append(_record(f, m, a, "int8", "mobile", ids, int8, rng, gen))
    return records


@pytest.fixture
def records():
    return make_records()


@pytest.fixture
def run_info():
    return make_run_info()


def make_run_info() -> dict:
    return {
        "zoo": "mini",
        "profile": {"name": "smoke", "samples": 120, "seed": 0, "fgsm": {"eps": 0.0157}},
        "versions": {"numpy": np.__version__, "tensorflow": "2.21.0", "torch": "2.14.1"},
        "environment": {"python": "3.11", "cpu_count": 2, "note": "<script>alert(1)</script>"},
    }
