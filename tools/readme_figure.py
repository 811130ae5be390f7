"""The README's figure, drawn by the report's own figure code from the committed baseline.

``python tools/readme_figure.py`` reads ``thresholds/mini-default.json`` (each configuration's
sample count and success rate), turns the mobile float configurations on their native runtimes
into the report's record shape (success count, Wilson interval from ``harness.report.stats``)
and writes ``docs/figures/success-mobile-float.png`` with
``harness.report.figures.success_rate_figure``, the function that draws the report's
"Attack success rate" figure. Nothing is measured: the numbers are the baseline's.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BASELINE = REPO / "thresholds" / "mini-default.json"
OUT = REPO / "docs" / "figures" / "success-mobile-float.png"


def baseline_records(path: Path = BASELINE, platform: str = "mobile", quantization: str = "float") -> list[dict]:
    """The baseline's native-runtime configurations of one platform and quantization, as records."""
    from harness.report.stats import wilson_interval

    records = []
    for cid, entry in json.loads(path.read_text())["configurations"].items():
        parts = cid.split("-")
        if len(parts) != 5 or parts[3] != quantization or parts[4] != platform:
            continue  # another platform or quantization, or a non-native runtime (six parts)
        framework, model, attack, quant, plat = parts
        n = int(entry["n"])
        k = round(entry["success_rate"] * n)
        records.append({"config_id": cid, "framework": framework, "model": model, "attack": attack,
                        "quantization": quant, "platform": plat, "n_samples": n, "n_success": k,
                        "success_rate_ci": list(wilson_interval(k, n))})
    return records


def main(out: Path = OUT) -> Path:
    from harness.report.figures import success_rate_figure

    figure = success_rate_figure(baseline_records(), "mobile", "float", fmt="png")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(figure.data)
    return out


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    print(main())
