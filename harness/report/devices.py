"""Several phones, one matrix: did they measure the same thing?

``compare_devices(records)`` takes the device records of a run on several phones (each
with ``phone``, see ``harness.suite.mark_phone``) and gives, per configuration, each
phone's success rate and how far the phones agree: the samples whose outcome differs
between phones, and whether their predictions and logits are bit-identical (from the
records' ``digests``; the runtimes are deterministic on one CPU architecture, so a
difference there is a finding: another runtime build, another CPU path, a broken phone).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence


def _phone_facts(record: Mapping[str, Any]) -> dict:
    device = record.get("device") or {}
    return {"serial": device.get("serial"), "model": device.get("model"), "abi": device.get("abi")}


def _same(values: list) -> bool | None:
    """True/False when every phone has the value; None when one lacks it (nothing to compare)."""
    if any(v is None for v in values):
        return None
    return all(v == values[0] for v in values[1:])


def compare_devices(records: Sequence[Mapping[str, Any]]) -> dict | None:
    """The devices comparison, or None when the records are of fewer than two phones."""
    records = [r for r in records if r.get("phone") and r.get("platform", "device") == "device"]
    phones = list(dict.fromkeys(r["phone"] for r in records))
    if len(phones) < 2:
        return None
    facts = {p: _phone_facts(next(r for r in records if r["phone"] == p)) for p in phones}
    by_config: dict[str, dict[str, Mapping[str, Any]]] = {}
    for r in records:
        by_config.setdefault(r["configuration"], {})[r["phone"]] = r
    rows = []
    for cid in sorted(by_config):
        per = by_config[cid]
        row: dict[str, Any] = {"configuration": cid, "phones": {}, "missing": [p for p in phones if p not in per]}
        for p in phones:
            r = per.get(p)
            if r is None:
                continue
            row["phones"][p] = ({"error": str(r.get("error"))[:300]} if r.get("error") else
                                {"success_rate": r.get("success_rate"), "n_samples": r.get("n_samples"),
                                 "clean_accuracy": r.get("clean_accuracy")})
        measured = [per[p] for p in phones if p in per and not per[p].get("error")]
        row["compared"] = len(measured)
        if len(measured) < 2:
            row.update(identical=None, agreement=None, differing_samples=None, status="not compared")
            rows.append(row)
            continue
        if not all(m.get("sample_ids") == measured[0].get("sample_ids") for m in measured):
            row.update(identical=False, agreement=None, differing_samples=None, status="different samples")
            rows.append(row)
            continue
        outcomes = [list(m.get("per_sample_success") or []) for m in measured]
        n = len(outcomes[0])
        differing = sum(1 for i in range(n) if len({o[i] for o in outcomes}) > 1)
        digests = {key: _same([(m.get("digests") or {}).get(key) for m in measured])
                   for key in ("adversarial_predictions", "adversarial_logits", "clean_predictions", "clean_logits")}
        per_sample_same = all(o == outcomes[0] for o in outcomes) and all(
            m.get(k) == measured[0].get(k) for m in measured
            for k in ("per_sample_clean_agreement", "per_sample_adversarial_agreement"))
        identical = per_sample_same and all(v is not False for v in digests.values())
        row.update(agreement=(n - differing) / n if n else None, differing_samples=differing,
                   predictions_identical=per_sample_same and digests["adversarial_predictions"] is not False
                   and digests["clean_predictions"] is not False,
                   logits_identical=None if digests["adversarial_logits"] is None else
                   bool(digests["adversarial_logits"] and digests["clean_logits"]),
                   identical=identical, status="identical" if identical else "DISAGREE")
        rows.append(row)
    compared = [r for r in rows if r["compared"] >= 2]
    return {
        "phones": phones,
        "devices": facts,
        "configurations": rows,
        "summary": {"configurations": len(rows), "compared": len(compared),
                    "identical": sum(1 for r in compared if r["identical"]),
                    "disagree": [r["configuration"] for r in compared if r["identical"] is False]},
    }
