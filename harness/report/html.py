"""The self-contained HTML report: one page, no external files, scripts or stylesheets.

Figures are embedded as base64 data URIs; every text is HTML-escaped; every number in a
table links to its configuration's row in the full results table (anchor
``cfg-<configuration id>``), so each number can be traced to the configuration it came from.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from html import escape
from typing import Any, Iterable, Mapping, Sequence

from harness.report.figures import ReportFigure
from harness.report.records import (ATTACK_NAMES, MODEL_NAMES, PLATFORM_NAMES, RUNTIME_NAMES, axis_values,
                                    deployed_runtime, framework_name, runtime_axis)
from harness.report.stats import format_a, format_p, format_pct, format_pp

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5em auto;max-width:1250px;
color:#222;line-height:1.4;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;margin-top:1.8em}h3{font-size:1.05em}
table{border-collapse:collapse;margin:.6em 0;font-size:.82em}
th,td{border:1px solid #ccc;padding:2px 6px;text-align:right;vertical-align:top}
th{background:#f2f2f2}td.l,th.l{text-align:left}
tr.fail td{background:#fde8e8}tr:target td{background:#fff6c2}
.pass{color:#0a7a0a;font-weight:600}.fail-word{color:#b00000;font-weight:600}
.answer{background:#f7f9fc;border-left:4px solid #3b73b9;padding:.5em .8em;margin:.6em 0}
.verdicts{background:#f7f9fc;border-left:4px solid #3b73b9;padding:.5em .8em .5em 2em;margin:.6em 0;font-size:1.05em}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85em;color:#444}code{font-size:.95em}.small{font-size:.8em;color:#555}
a{color:#1a4f9c;text-decoration:none}a:hover{text-decoration:underline}
"""


def anchor(cid: str) -> str:
    return "cfg-" + cid


def _link(cid: str, text: str | None = None) -> str:
    return f'<a href="#{escape(anchor(cid))}">{escape(cid if text is None else text)}</a>'


def _num(value: Any, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def _bytes(n: Any) -> str:
    if n is None:
        return "n/a"
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _hms(seconds: Any) -> str:
    if seconds is None:
        return "n/a"
    s = float(seconds)
    h, rem = divmod(int(round(s)), 3600)
    m, sec = divmod(rem, 60)
    return f"{h:02d}:{m:02d}:{sec:02d} ({s:.1f} s)"


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], row_attrs: Sequence[str] | None = None,
           left: int = 1) -> str:
    """headers are plain text (escaped here); cells are already-escaped HTML."""
    head = "".join(f'<th class="l">{escape(h)}</th>' if i < left else f"<th>{escape(h)}</th>"
                   for i, h in enumerate(headers))
    body = []
    for r, row in enumerate(rows):
        attrs = row_attrs[r] if row_attrs else ""
        cells = "".join(f'<td class="l">{c}</td>' if i < left else f"<td>{c}</td>" for i, c in enumerate(row))
        body.append(f"<tr{attrs}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _json_text(value: Any) -> str:
    return escape(json.dumps(value, sort_keys=True, default=str)) if not isinstance(value, str) else escape(value)


def _mapping_table(mapping: Mapping[str, Any]) -> str:
    if not mapping:
        return '<p class="small">(none recorded)</p>'
    return _table(["key", "value"], [[escape(str(k)), f'<code>{_json_text(v)}</code>']
                                     for k, v in sorted(mapping.items(), key=lambda kv: str(kv[0]))], left=2)


# ----------------------------------------------------------------------------- gates
def _result_word(record: Mapping[str, Any]) -> str:
    passed = record.get("passed")
    if passed is None:
        return '<span class="small">not gated</span>'
    return '<span class="pass">pass</span>' if passed else '<span class="fail-word">FAIL</span>'


def _gate_cell(record: Mapping[str, Any]) -> str:
    """The gate checks' own sentences, as the record carries them (``verdicts``); the report
    does not re-derive them from gate names."""
    verdicts = record.get("verdicts") or []
    if verdicts:
        return "<br>".join(escape(str(v)) for v in verdicts)
    if record.get("gate"):
        return "thresholds " + escape(", ".join(f"{k} {v}" for k, v in sorted(record["gate"].items())))
    return '<span class="small">none</span>'


# ----------------------------------------------------------------------------- provenance
def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in mapping.items():
        if isinstance(v, Mapping) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        elif not isinstance(v, Mapping):
            out[f"{prefix}{k}"] = v
    return out


def recorded_facts(records: Sequence[Mapping[str, Any]], field: str) -> dict[str, str]:
    """``field`` (``versions`` or ``environment``) of every record, flattened (``runtime.torch``):
    each key with its value, or its distinct values and how many configurations had each."""
    seen: dict[str, dict[str, list[str]]] = {}
    for r in records:
        for key, value in _flatten(r.get(field) or {}).items():
            text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            seen.setdefault(key, {}).setdefault(text, []).append(r["config_id"])
    out = {}
    for key, values in seen.items():
        if len(values) == 1:
            (text, ids), = values.items()
            out[key] = text if len(ids) == len(records) else f"{text} ({len(ids)} of {len(records)} configurations)"
        else:
            out[key] = " | ".join(f"{text} ({len(ids)} configurations)" for text, ids in sorted(values.items()))
    return out


# ----------------------------------------------------------------------------- sections
def _run_table(run_info: Mapping[str, Any], records: Sequence[Mapping[str, Any]]) -> str:
    """The run in one table: name, date, zoo, profile and how many configurations passed."""
    run = run_info.get("run", "")
    date = run_info.get("date") or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    profile = run_info.get("profile") or {}
    profile_name = profile.get("name", "") if isinstance(profile, Mapping) else str(profile)
    failed = [r for r in records if r.get("passed") is False]
    ungated = [r for r in records if r.get("passed") is None]
    counts = f"{len(records) - len(failed) - len(ungated)} passed, {len(failed)} failed"
    rows = [["run", escape(str(run))], ["date", escape(str(date))], ["zoo", escape(str(run_info.get("zoo", "")))],
            ["profile", escape(str(profile_name))],
            ["configurations", f"{len(records)} ({counts}" + (f", {len(ungated)} not gated)" if ungated else ")")]]
    if failed:
        rows.append(["failed", ", ".join(_link(r["config_id"]) for r in failed)])
    return '<h2 id="run">Run</h2>' + _table(["", ""], [[escape(k), v] for k, v in rows], left=2)


def _provenance(run_info: Mapping[str, Any], records: Sequence[Mapping[str, Any]]) -> str:
    """Where the numbers came from: the profile, the library versions, the environment, the rest of run.json."""
    profile = run_info.get("profile") or {}
    extra = {k: v for k, v in run_info.items()
             if k not in ("run", "date", "zoo", "profile", "versions", "environment",
                          "errors")}  # errors: their own tables (Errors, Conversion failures)
    out = ['<h2 id="provenance">Provenance</h2>',
           "<details open><summary>Profile</summary>" +
           (_mapping_table(profile) if isinstance(profile, Mapping) else escape(str(profile))) + "</details>"]
    notes = {"versions": "From the records: the PC framework and the attack libraries that made each "
                         "adversarial set, the converter that wrote each mobile file, the runtime that ran it.",
             "environment": "From the records: the runtimes' settings and the machine that measured them."}
    for field, title in (("versions", "Library versions"), ("environment", "Environment")):
        facts = {**recorded_facts(records, field), **_flatten(run_info.get(field) or {})}
        out.append(f"<details open><summary>{title}</summary>" + _mapping_table(facts) +
                   f'<p class="small">{escape(notes[field])}</p></details>')
    if extra:
        out.append("<details><summary>Other run information</summary>" + _mapping_table(extra) + "</details>")
    return "\n".join(out)


# What a significant difference means, per question: (x higher, x lower, no significant difference).
_VERDICT_WORDS = {
    "rq1": ("{x} less robust than {y}", "{x} more robust than {y}", "{x} and {y} do not differ"),
    "rq2": ("the {x} runtime is less robust than the PC framework", "the {x} runtime is more robust than the PC "
            "framework", "the {x} runtime does not differ from the PC framework"),
    "rq3": ("int8 is less robust than float", "int8 is more robust than float", "int8 does not differ from float"),
}


def verdict_line(rq: str, platform: str, s: Mapping[str, Any]) -> str:
    """One short line: the question, the platform, the verdict across configurations and its evidence."""
    head = f"{rq.upper()}, {platform}: "
    if not s.get("n_pairs"):
        return head + "no paired configurations in this run"
    higher, lower, same = (w.format(x=s["x_label"], y=s["y_label"]) for w in _VERDICT_WORDS[rq])
    p = s["wilcoxon"]["p_value"]
    direction = s["median_difference"] or s["mean_difference"]
    if p is None:
        verdict = "too few pairs to test"
    elif p < s["alpha"] and direction:
        verdict = higher if direction > 0 else lower
    else:
        verdict = same
    return (head + f"{verdict} (median {format_pp(s['median_difference'])}, Wilcoxon p={format_p(p)}; "
            f"{s['mcnemar_significant_bh']} of {s['mcnemar_tested']} configurations significant)")


def _verdicts(statistics: Mapping[str, Any]) -> str:
    """The report's opening: one verdict line per research question and platform."""
    lines = [f'<li><a href="#{rq}">{escape(verdict_line(rq, platform, s))}</a></li>'
             for rq in ("rq1", "rq2", "rq3") for platform, s in (statistics.get(rq) or {}).items()]
    if not lines:
        lines = ["<li>No mobile or device configurations in this run: no research question to answer.</li>"]
    return ('<ul id="verdicts" class="verdicts">' + "".join(lines) + "</ul>"
            '<p class="small">Significant: Wilcoxon across configurations at \u03b1; configurations: McNemar '
            "per configuration after Benjamini-Hochberg. The paragraphs, tables and provenance follow.</p>")


def _linkify_ids(escaped_text: str, ids: Iterable[str]) -> str:
    ids = sorted(set(ids), key=len, reverse=True)
    if not ids:
        return escaped_text
    pattern = re.compile(r"(?<![\w-])(" + "|".join(re.escape(escape(i)) for i in ids) + r")(?![\w-])")
    return pattern.sub(lambda m: f'<a href="#cfg-{m.group(1)}">{m.group(1)}</a>', escaped_text)


def _answers(statistics: Mapping[str, Any], ids: Sequence[str]) -> str:
    titles = {"rq1": "RQ1: how robust is each mobile framework (TFLite vs PyTorch Mobile)?",
              "rq2": "RQ2: does robustness change between the PC framework and its mobile runtime?",
              "rq3": "RQ3: what does post-training int8 quantization do to robustness?"}
    out = ["<h2 id=\"answers\">Answers to the research questions</h2>",
           '<p class="small">Generated from this run\'s numbers; tests and definitions in '
           '<a href="#methods">Methods</a>.</p>']
    for rq, title in titles.items():
        text = statistics.get("answers", {}).get(rq, "")
        out.append(f'<h3 id="{rq}">{escape(title)}</h3><div class="answer">{_linkify_ids(escape(text), ids)}</div>')
    return "\n".join(out)


def _summary_table(statistics: Mapping[str, Any]) -> str:
    rows = []
    for rq in ("rq1", "rq2", "rq3"):
        for platform, s in (statistics.get(rq) or {}).items():
            w = s["wilcoxon"]
            rows.append([escape(f"{rq.upper()} {platform}"), escape(f"{s['x_label']} vs {s['y_label']}"),
                         str(s["n_pairs"]), str(s["n_x_lower"]), str(s["n_x_higher"]), str(s["n_equal"]),
                         escape(format_pp(s["median_difference"])),
                         escape(_num(w["statistic"], 1)), escape(format_p(w["p_value"])), escape(w["status"]),
                         escape(format_a(s["a"])), escape(str(s["a_magnitude"] or "n/a")),
                         escape(format_a(s["a_matched"])),
                         escape(f"{s['mcnemar_significant']}/{s['mcnemar_tested']} "
                                f"({s['mcnemar_significant_bh']} BH)")])
    if not rows:
        return ""
    return ("<h3>Tests across configurations</h3>" +
            _table(["question", "x vs y", "pairs", "x lower", "x higher", "equal", "median x\u2212y",
                    "Wilcoxon W", "Wilcoxon p", "status", "A(x, y)", "magnitude", "matched A",
                    "McNemar p<\u03b1"], rows, left=2))


def _figures(figures: Sequence[ReportFigure], heading: bool = True) -> str:
    out = ['<h2 id="figures">Figures</h2>'] if heading else []
    for f in figures:
        out.append(f'<figure id="{escape(f.key)}"><img alt="{escape(f.title)}" src="{f.data_uri()}">'
                   f"<figcaption><b>{escape(f.title)}.</b> {escape(f.caption)}</figcaption></figure>")
    return "\n".join(out)


def _index(records):
    """Native-runtime records by (framework, model, attack, quantization, platform); these tables
    and figures have one column per framework, so a framework's weights on another runtime are left out."""
    return {(r["framework"], r["model"], r["attack"], r["quantization"], r["platform"]): r for r in records
            if runtime_axis(r) is None}


def _inference_tables(records: Sequence[Mapping[str, Any]]) -> str:
    idx = _index(records)
    out = ['<h2 id="inference-time">Inference time</h2>',
           '<p class="small">Seconds to classify the whole adversarial set of the configuration '
           '(per framework, model and quantization; one column pair per framework). Speed-up = float / int8.</p>']
    platforms = axis_values(records, "platform")
    for platform in [p for p in platforms if p != "pc"] + [p for p in platforms if p == "pc"]:
        recs = [r for r in records if r["platform"] == platform]
        frameworks = axis_values(recs, "framework")
        quants = axis_values(recs, "quantization")
        headers = ["model", "attack"]
        for f in frameworks:
            headers += [f"{framework_name(f, platform)} {q} (s)" for q in quants]
            if "float" in quants and "int8" in quants:
                headers.append(f"{framework_name(f, platform)} speed-up")
        rows = []
        for model in axis_values(recs, "model"):
            for attack in axis_values(recs, "attack"):
                row = [escape(MODEL_NAMES.get(model, model)), escape(ATTACK_NAMES.get(attack, attack))]
                for f in frameworks:
                    times = {}
                    for q in quants:
                        rec = idx.get((f, model, attack, q, platform))
                        times[q] = rec["inference_seconds"] if rec else None
                        row.append(_link(rec["config_id"], _num(rec["inference_seconds"])) if rec else "\u2014")
                    if "float" in quants and "int8" in quants:
                        fl, i8 = times.get("float"), times.get("int8")
                        row.append(f"{fl / i8:.2f}\u00d7" if fl and i8 else "n/a")
                rows.append(row)
        sizes = sorted({r["n_samples"] for r in recs})
        note = (f" \u2014 {'/'.join(map(str, sizes))} images per set"
                + (", timed under emulation" if any(r.get("emulated") for r in recs) else ""))
        out.append(f"<h3>{escape(PLATFORM_NAMES.get(platform, platform) + note)}</h3>" + _table(headers, rows, left=2))
    return "\n".join(out)


def _host_vs_arm_table(records: Sequence[Mapping[str, Any]]) -> str:
    """Per runner-platform configuration: the ARM build against this host's runtime on the same file."""
    recs = [r for r in records if isinstance(r.get("host_vs_arm"), Mapping)]
    if not recs:
        return ""
    rows, notes = [], set()
    for r in recs:
        h = r["host_vs_arm"]
        clean, adv = h.get("clean", {}), h.get("adversarial", {})
        exact = clean.get("bit_exact") and adv.get("bit_exact")
        differ = r.get("runtime_versions_differ") or []
        versions = ", ".join(f"{k} {r.get('runtime_versions', {}).get(k)} vs host {r.get('host_runtime_versions', {}).get(k)}"
                             for k in differ)
        if differ:
            notes.add(versions)
        arm_time = h.get("arm_seconds_per_image")
        rows.append([
            _link(r["config_id"]),
            escape(str(r["quantization"])),
            f"{_num(clean.get('prediction_agreement'), 3)} / {_num(adv.get('prediction_agreement'), 3)}",
            f"{clean.get('max_abs_logit_diff', float('nan')):.2e} / {adv.get('max_abs_logit_diff', float('nan')):.2e}",
            "yes" if exact else "no",
            (f"{arm_time * 1e3:.2f} ms" if arm_time is not None else "n/a")
            + (" (emulated)" if r.get("emulated") else ""),
            f"{h['host_seconds_per_image'] * 1e3:.3f} ms" if h.get("host_seconds_per_image") is not None else "n/a",
            escape(versions) if versions else "same",
        ])
    facts = recs[0].get("transport") or {}
    where = (f"qemu {facts.get('qemu')} emulating {facts.get('cpu_model')} on {facts.get('host_cpu')}"
             if facts.get("emulated") else json.dumps(facts, sort_keys=True, default=str))
    return ('<h2 id="host-vs-arm">Host vs ARM</h2>'
            '<p class="small">The same converted file run by this host\'s runtime (platform mobile) and by the '
            f"runtime's aarch64 build in the runner ({escape(where)}), on the same images: clean / adversarial. "
            "Agreement of top-1 predictions, largest |logit difference|, whether every logit is bit-identical, "
            "and per-image time (batches of 64; under emulation the time measures the translator, not a phone)."
            + (" Runtime versions differ from the host's: " + escape("; ".join(sorted(notes))) + "." if notes else "")
            + "</p>"
            + _table(["configuration", "quantization", "agreement clean / adv", "max |\u0394 logit| clean / adv",
                      "bit-exact", "ARM per image", "host per image", "runtime versions"], rows))


def _generation_table(records: Sequence[Mapping[str, Any]]) -> str:
    """Generation time per model, framework and attack, from the PC float record of each set."""
    rows = []
    attacks = axis_values(records, "attack")
    for model in axis_values(records, "model"):
        for f in axis_values(records, "framework"):
            row = [escape(MODEL_NAMES.get(model, model)), escape(framework_name(f, "pc"))]
            for attack in attacks:
                cands = [r for r in records if (r["framework"], r["model"], r["attack"]) == (f, model, attack)]
                cands.sort(key=lambda r: (r["platform"] != "pc", r["quantization"] != "float"))
                rec = next((r for r in cands if r["generation_seconds"] is not None), None)
                row.append(_link(rec["config_id"], _hms(rec["generation_seconds"])) if rec else "n/a")
            rows.append(row)
    return ('<h2 id="generation-time">Adversarial generation time</h2>'
            '<p class="small">Time to generate the adversarial set on the PC float model '
            '(hh:mm:ss); the link goes to the configuration the time was read from.</p>' +
            _table(["model", "framework"] + [ATTACK_NAMES.get(a, a) for a in attacks], rows, left=2))


def _comparison_table(comparisons: Sequence[Mapping[str, Any]], subject: str, reference: str) -> str:
    headers = ["configuration", "reference", f"{subject} success [95% CI]", f"{reference} success [95% CI]",
               "change", "paired n", "b", "c", "McNemar p", "BH p"]
    rows = []
    for c in comparisons:
        rows.append([_link(c["config_id"]), _link(c["reference_id"]),
                     escape(format_pct(c["success_rate"])) + " " + c.get("_ci", ""),
                     escape(format_pct(c["reference_success_rate"])) + " " + c.get("_ref_ci", ""),
                     escape(format_pp(c["difference"])), str(c["n_paired"]),
                     _num(c["b"]), _num(c["c"]), escape(format_p(c["p_value"])), escape(format_p(c["p_value_bh"]))])
    return _table(headers, rows, left=2)


def _direct_table(comparisons: Sequence[Mapping[str, Any]]) -> str:
    """Direct attacks on the deployed model against transferred PNGs, on the same samples."""
    if not comparisons:
        return ""
    rows = []
    for c in comparisons:
        ref = c.get("reference_id")
        rows.append([
            _link(c["config_id"]), escape(format_pct(c["success_rate"])),
            _link(ref, f"{ATTACK_NAMES.get(c['reference_attack'], c['reference_attack'])}: "
                       f"{format_pct(c['reference_success_rate'])}") if ref else "no transfer attack in this run",
            escape(format_pp(c["difference"])) if c.get("difference") is not None else "n/a",
            str(c["n_paired"]), _num(c["b"]), _num(c["c"]), escape(format_p(c["p_value"])),
            escape(format_p(c.get("p_value_bh"))),
            _num(c.get("queries_median"), 0), _num(c.get("seconds_per_sample"), 3),
            _num(c.get("l2_median"), 3), _num(c.get("linf_median"), 4),
        ])
    return ('<h2 id="direct-vs-transfer">Direct vs transferred</h2>'
            '<p class="small">Attacks run against the deployed model itself (each query rounded to the uint8 '
            "image an app receives, sent to the runtime on its platform) against the PNGs generated on the PC "
            "model and transferred, on the same deployment and the same sample ids. The reference is the "
            "transfer attack of the same name, else the strongest transfer attack of the run. b = samples only "
            "the direct attack fooled, c = samples only the transferred images fooled; McNemar's exact test, BH "
            "over this table. Success of a direct attack is checked by one last query of the final uint8 image; "
            "queries and distances (L2, L-inf on the [0, 1] scale) are medians per sample.</p>"
            + _table(["configuration", "direct success", "transferred (same samples)", "change", "paired n", "b",
                      "c", "McNemar p", "BH p", "queries", "s / sample", "L2", "L-inf"], rows, left=3))


def _ci_text(rec: Mapping[str, Any]) -> str:
    lo, hi = rec["success_rate_ci"]
    return f'<span class="small">[{100 * lo:.1f}, {100 * hi:.1f}]</span>'


def _with_ci(comparisons, by_id):
    out = []
    for c in comparisons:
        c = dict(c)
        c["_ci"] = _ci_text(by_id[c["config_id"]])
        c["_ref_ci"] = _ci_text(by_id[c["reference_id"]])
        out.append(c)
    return out


def _results_table(records: Sequence[Mapping[str, Any]]) -> str:
    headers = ["configuration", "n", "success", "95% CI", "before rounding", "clean acc.", "clean agr. PC",
               "adv. agr. PC", "model size", "inference (s)", "generation (s)", "gates", "result"]
    rows, attrs = [], []
    for r in records:
        lo, hi = r["success_rate_ci"]
        cid = r["config_id"]
        rows.append([f'<a href="#{escape(anchor(cid))}">{escape(cid)}</a>', str(r["n_samples"]),
                     escape(format_pct(r["n_success"] / r["n_samples"])),
                     escape(f"[{100 * lo:.1f}, {100 * hi:.1f}]"),
                     escape(format_pct(r["success_rate_before_rounding"])),
                     escape(format_pct(r["clean_accuracy"])), escape(format_pct(r["agreement_with_pc"])),
                     escape(format_pct(r["adversarial_agreement_with_pc"])),
                     f'<span title="{escape(str(r["model_bytes"]))} bytes">{escape(_bytes(r["model_bytes"]))}</span>',
                     escape(_num(r["inference_seconds"])), escape(_num(r["generation_seconds"])),
                     _gate_cell(r), _result_word(r)])
        attrs.append(f' id="{escape(anchor(cid))}"' + (' class="fail"' if r.get("passed") is False else ""))
    return ('<h2 id="results">All configurations</h2>'
            '<p class="small">One row per configuration (framework-model-attack-quantization-platform). '
            'Success = share of the adversarial samples the platform misclassifies; before rounding = the '
            "attack's own success on the PC float model before the uint8 PNG round trip.</p>" +
            _table(headers, rows, attrs, left=1))


def _methods(statistics: Mapping[str, Any]) -> str:
    items = "".join(f"<li><b>{escape(k)}</b>: {escape(str(v))}</li>"
                    for k, v in (statistics.get("methods") or {}).items())
    return (f'<h2 id="methods">Methods</h2><ul>{items}</ul>'
            f'<p class="small">\u03b1 = {escape(str(statistics.get("alpha")))}; '
            "the full numbers are in statistics.json beside this page.</p>")


def _is_conversion_failure(error: Mapping[str, Any]) -> bool:
    return isinstance(error.get("conversion_failed"), Mapping)


def _errors(run_info: Mapping[str, Any]) -> str:
    """Configurations that raised instead of producing a record: the report covers fewer, and says so.
    Conversion failures have their own table (:func:`_conversion_failures`) and are not repeated here."""
    errors = [e for e in run_info.get("errors") or [] if not _is_conversion_failure(e)]
    if not errors:
        return ""
    rows = "".join(f"<tr><td>{escape(str(e.get('configuration')))}</td><td>{escape(str(e.get('error')))}</td></tr>"
                   for e in errors)
    return (f'<h2 id="errors">Errors</h2><p>{len(errors)} configurations raised an error and are missing from '
            f"every table below.</p><table><tr><th>configuration</th><th>error</th></tr>{rows}</table>")


def _conversion_failures(run_info: Mapping[str, Any]) -> str:
    """Configurations whose model could not be converted for their runtime, with the converter's message."""
    failures = [e for e in run_info.get("errors") or [] if _is_conversion_failure(e)]
    if not failures:
        return ""
    rows = []
    for e in failures:
        c = e["conversion_failed"]
        rows.append([escape(str(e.get("configuration"))), escape(str(c.get("converter", "n/a"))),
                     escape(str(c.get("format", "n/a"))), escape(str(c.get("quantization", "n/a"))),
                     f'<code>{escape(str(c.get("message") or e.get("error") or ""))}</code>'])
    return ('<h2 id="conversion-failures">Conversion failures</h2>'
            f"<p>{len(failures)} configurations have no record because their model could not be converted for "
            "their runtime; they are missing from every table below. The message is the converter's own.</p>"
            + _table(["configuration", "converter", "format", "quantization", "converter's message"], rows, left=5))


def _runtime_name(runtime: Any) -> str:
    return escape(str(RUNTIME_NAMES.get(runtime, runtime)))


def _sci(value: Any) -> str:
    return "n/a" if value is None else f"{value:.2e}"


def _delegation_table(records: Sequence[Mapping[str, Any]]) -> str:
    """The ExecuTorch files' delegation to their backend, once per framework, model and quantization."""
    rows, seen = [], set()
    for r in records:
        d = r.get("delegation")
        if not isinstance(d, Mapping):
            continue
        key = (r["framework"], r["model"], r["quantization"], deployed_runtime(r), json.dumps(d, sort_keys=True,
                                                                                              default=str))
        if key in seen:
            continue
        seen.add(key)
        non = d.get("non_delegated_ops") or {}
        frac = d.get("delegated_fraction")
        rows.append([_link(r["config_id"], f"{framework_name(r['framework'], 'pc')} "
                                           f"{MODEL_NAMES.get(r['model'], r['model'])}"),
                     escape(str(r["quantization"])), _runtime_name(deployed_runtime(r)),
                     escape(str(d.get("backend", "n/a"))),
                     "n/a" if frac is None else escape(f"{100 * frac:.1f}%"),
                     escape(str(d.get("delegated_subgraphs", "n/a"))),
                     escape(str(sum((d.get("delegated_ops") or {}).values()))),
                     escape(", ".join(f"{op} ×{n}" for op, n in sorted(non.items())) or "none")])
    if not rows:
        return ""
    return ('<h3 id="delegation">Delegation</h3><p class="small">Share of the ExecuTorch program\'s operators '
            "delegated to the backend (the rest run on the portable kernels); the link goes to one configuration "
            "of the file.</p>"
            + _table(["model", "quantization", "runtime", "backend", "delegated", "subgraphs", "delegated ops",
                      "not delegated"], rows, left=4))


def _runtime_agreement_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The two runtimes' numeric agreement on the same images, per runtime comparison."""
    agreement = []
    for c in rows:
        ag = c.get("agreement")
        if not ag:
            continue
        cells = []
        for kind in ("clean", "adversarial"):
            e = ag.get(kind) or {}
            cells += [escape(format_pct(e.get("prediction_agreement"))), escape(_sci(e.get("max_abs_logit_diff"))),
                      "yes" if e.get("bit_exact") else "no" if e else "n/a"]
        agreement.append([_link(c["config_id_a"]), _link(c["config_id_b"])] + cells)
    if agreement:
        return ('<h3 id="runtime-agreement">Numeric agreement</h3><p class="small">The two runtimes\' outputs '
                "on the same clean and adversarial images: share of equal top-1 predictions, largest |logit "
                "difference|, and whether every logit is bit-identical.</p>"
                + _table(["configuration (runtime a)", "configuration (runtime b)",
                          "clean agreement", "clean max |Δ logit|",
                          "clean bit-exact", "adv. agreement", "adv. max |Δ logit|", "adv. bit-exact"],
                         agreement, left=2))
    return '<p class="small">No record carries runtime_agreement: numeric agreement not measured.</p>'


def _runtime_section(statistics: Mapping[str, Any], records: Sequence[Mapping[str, Any]],
                     figures: Sequence[ReportFigure], ids: Sequence[str]) -> str:
    """Framework or runtime? The verdict, the runtime figures and the tables behind them."""
    result = statistics.get("runtime_comparisons") or {}
    rows = result.get("comparisons") or []
    delegation = _delegation_table(records)
    if not rows:
        return ('<h2 id="framework-or-runtime">Delegation</h2>' + delegation) if delegation else ""
    alpha = result["alpha"]
    out = ['<h2 id="framework-or-runtime">Framework or runtime?</h2>',
           '<p class="small">The same weights run by several runtimes on the same platform and the same adversarial '
           "PNGs, against TensorFlow vs PyTorch on their native runtimes. Generated from this run's numbers.</p>",
           f'<div class="answer">{_linkify_ids(escape(result.get("verdict", "")), ids)}</div>',
           _figures([f for f in figures if f.key.startswith("fig-runtime-")], heading=False)]
    summary = []
    for s in result["summary"]:
        summary.append([escape(f"{framework_name(s['framework'], 'pc')}: ")
                        + _runtime_name(s["runtime_a"]) + " vs " + _runtime_name(s["runtime_b"]),
                        escape(", ".join(s["platforms"])), str(s["n_comparisons"]),
                        f"{s['n_significant']} ({s['n_significant_bh']} BH)",
                        escape(format_pp(s["median_abs_difference"]).lstrip("+")),
                        escape(format_pp(s["max_abs_difference"]).lstrip("+")),
                        escape(format_pct(s["median_discordant_fraction"]))])
    fw = result.get("framework") or {}
    if fw.get("n_comparisons"):
        summary.append(["TensorFlow vs PyTorch (native runtimes)", escape(", ".join(fw["platforms"])),
                        str(fw["n_comparisons"]), f"{fw['n_significant']} ({fw['n_significant_bh']} BH)",
                        escape(format_pp(fw["median_abs_difference"]).lstrip("+")),
                        escape(format_pp(fw["max_abs_difference"]).lstrip("+")),
                        escape(format_pct(fw["median_discordant_fraction"]))])
    out.append("<h3>Runtime against framework</h3>" + _table(
        ["switch", "platforms", "configurations", f"McNemar p<{alpha:g}", "median |Δ success|",
         "max |Δ success|", "median flipped"], summary, left=2))
    table = []
    for c in rows:
        table.append([_link(c["config_id_a"]), _link(c["config_id_b"]),
                      f'<code>{escape(str(c["runtime_a"]))}</code> / <code>{escape(str(c["runtime_b"]))}</code>',
                      escape(format_pct(c["success_rate_a"])), escape(format_pct(c["success_rate_b"])),
                      escape(format_pp(c["difference"])), str(c["n_paired"]), _num(c["b"]), _num(c["c"]),
                      escape(format_p(c["p_value"])), escape(format_p(c["p_value_bh"]))])
    out.append('<h3 id="runtime-mcnemar">Per configuration: McNemar</h3><p class="small">Runtime a (first) against '
               "runtime b on the same samples; b = samples only runtime a was fooled on, c = samples only runtime b "
               "was fooled on; McNemar's exact test; BH = Benjamini-Hochberg over this table.</p>"
               + _table(["configuration (runtime a)", "configuration (runtime b)", "runtimes a / b",
                         "success a", "success b", "a − b", "paired n",
                         "b", "c", "McNemar p", "BH q"], table, left=3))
    out.append(_runtime_agreement_table(rows))
    out.append(delegation)
    return "\n".join(p for p in out if p)


def _devices_table(statistics: Mapping[str, Any]) -> str:
    """Several phones: per configuration each phone's success rate and whether the phones agree."""
    devices = statistics.get("devices")
    if not devices:
        return ""
    phones = devices["phones"]
    summary = devices["summary"]
    facts = "; ".join(f"{escape(p)}: " + escape(", ".join(str(v) for v in (f.get("serial"), f.get("model"), f.get("abi"))
                                                         if v))
                      for p, f in devices["devices"].items())
    rows, attrs = [], []
    for row in devices["configurations"]:
        cells = [_link(row["configuration"])]
        for p in phones:
            cell = row["phones"].get(p)
            cells.append("not run" if cell is None else "error" if "error" in cell else _num(cell["success_rate"], 3))
        cells += [_num(row.get("agreement"), 3), "" if row.get("differing_samples") is None else str(row["differing_samples"]),
                  {True: "yes", False: "no", None: "n/a"}[row.get("logits_identical")],
                  escape(row["status"])]
        rows.append(cells)
        attrs.append(' class="fail"' if row["status"] not in ("identical", "not compared") else "")
    return ('<h2 id="devices">Devices</h2>'
            f'<p class="small">The device cases ran on {len(phones)} phones ({facts}). Per configuration: each '
            "phone's success rate, the share of samples whose outcome is the same on every phone, the samples "
            "that differ, and whether the logits are bit-identical; DISAGREE where outcomes, predictions or "
            f"logits differ. {summary['identical']} of {summary['compared']} configurations compared are "
            f"identical.</p>"
            + _table(["configuration", *[f"success {p}" for p in phones], "agreement", "differing samples",
                      "logits identical", "status"], rows, attrs))


def _user_models_table(records: Sequence[Mapping[str, Any]]) -> str:
    """A bring-your-own run: what was read off each model file (recipe, batch, what its outputs are,
    the label space, metadata) and the top-1 ties its outputs had; empty for the zoos."""
    files: dict[str, dict] = {}
    ties: dict[str, list[int]] = {}
    for r in records:
        facts = r.get("user_model")
        if not facts:
            continue
        files.setdefault(facts["file"], facts)
        clean = (r.get("top1_ties") or {}).get("clean")
        if clean is not None:
            ties.setdefault(facts["file"], []).append(int(clean))
    if not files:
        return ""
    rows = []
    for path, f in files.items():
        recipe = f.get("recipe") or {}
        per_channel = recipe.get("per_channel")
        recipe_text = recipe.get("name", f.get("quantization", "?")) + (
            "" if per_channel is None else ", per-channel" if per_channel else ", per-tensor")
        batch = f.get("batch") or {}
        kind = f.get("output_kind") or {}
        labels = f.get("labels") or {}
        meta = f.get("metadata")
        rows.append([escape(str(path)), escape(f"{f.get('format', '')} / {f.get('runtime', '')}"), escape(recipe_text),
                     escape("dynamic" if batch.get("mode") == "dynamic" else f"fixed {batch.get('size', '?')}"
                            if batch else "n/a"),
                     f'<span title="{escape(str(kind.get("evidence", "")))}">{escape(str(kind.get("kind", "logits")))}'
                     "</span>",
                     escape(f"{labels.get('classes', '?')} from {labels.get('source', '?')} (offset "
                            f"{labels.get('offset', 0)})"),
                     escape("yes: " + str(meta.get("name") or "unnamed") if meta else "no"),
                     escape(str(max(ties[path])) if ties.get(path) else "0")])
    return ('<h2 id="your-model-files">Your model files</h2>'
            '<p class="small">What was read off each file: its quantization recipe, its batch (a fixed batch '
            "runs in chunks of exactly that size), what its outputs are (agreement and output differences "
            "compare these: logits, or probabilities for a model with a softmax inside; hover for the "
            "evidence), its labels and its Model Metadata. Top-1 ties: clean images whose highest output is "
            "shared by several classes (the prediction is then the lowest output index among them).</p>"
            + _table(["file", "format / runtime", "recipe", "batch", "outputs", "labels", "metadata",
                      "top-1 ties (clean)"], rows, left=1))


def _contents(host_vs_arm: str, direct: str, runtime: str, conversion: str, devices: str, user_models: str) -> str:
    """The line of links under the verdicts and figures: a link for each section the page has."""
    return ('<p class="small">Contents: <a href="#verdicts">verdicts</a> \u00b7 <a href="#figures">figures</a> \u00b7 '
            '<a href="#run">run</a> \u00b7 <a href="#answers">answers</a> \u00b7 '
            '<a href="#inference-time">inference time</a> \u00b7 <a href="#generation-time">generation time</a> '
            '\u00b7 ' + ('<a href="#host-vs-arm">host vs ARM</a> \u00b7 ' if host_vs_arm else '') +
            ('<a href="#direct-vs-transfer">direct vs transferred</a> \u00b7 ' if direct else '') +
            ('<a href="#framework-or-runtime">framework or runtime?</a> \u00b7 ' if runtime else '') +
            ('<a href="#conversion-failures">conversion failures</a> \u00b7 ' if conversion else '') +
            ('<a href="#devices">devices</a> \u00b7 ' if devices else '') +
            ('<a href="#your-model-files">your model files</a> \u00b7 ' if user_models else '') +
            '<a href="#quantization-effect">quantization effect</a> \u00b7 <a href="#pc-vs-mobile">PC vs '
            'mobile</a> \u00b7 <a href="#results">all configurations</a> \u00b7 <a href="#methods">methods</a> '
            '\u00b7 <a href="#provenance">provenance</a></p>')


def render_html(records: Sequence[Mapping[str, Any]], statistics: Mapping[str, Any],
                figures: Sequence[ReportFigure], run_info: Mapping[str, Any]) -> str:
    """The whole page. ``records`` must be validated (see ``records.validate_records``)."""
    by_id = {r["config_id"]: r for r in records}
    ids = list(by_id)
    quant = statistics.get("quantization_comparisons") or []
    plat = statistics.get("platform_comparisons") or []
    run = run_info.get("run", "")
    title = f"On-device robustness report {run}".strip()
    host_vs_arm = _host_vs_arm_table(records)
    direct = _direct_table(statistics.get("direct_comparisons") or [])
    runtime = _runtime_section(statistics, records, figures, ids)
    conversion = _conversion_failures(run_info)
    devices = _devices_table(statistics)
    user_models = _user_models_table(records)
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>On-device robustness report{(': ' + escape(str(run))) if run else ''}</h1>",
        _verdicts(statistics),
        _figures([f for f in figures if not f.key.startswith("fig-runtime-")]),
        _contents(host_vs_arm, direct, runtime, conversion, devices, user_models),
        _run_table(run_info, records),
        _errors(run_info),
        conversion,
        user_models,
        _answers(statistics, ids),
        _summary_table(statistics),
        runtime,
        _inference_tables(records),
        host_vs_arm,
        _generation_table(records),
        direct,
        devices,
        '<h2 id="quantization-effect">Quantization effect</h2>'
        '<p class="small">int8 vs float on the same platform and the same adversarial PNGs; b = samples only '
        "the int8 model misclassifies, c = samples only the float model misclassifies; McNemar's exact test; "
        "BH = Benjamini-Hochberg adjusted over this table.</p>" +
        (_comparison_table(_with_ci(quant, by_id), "int8", "float") if quant else "<p>No float/int8 pairs.</p>"),
        '<h2 id="pc-vs-mobile">PC vs mobile</h2>'
        '<p class="small">Each mobile (or device) configuration against the PC float model of the same '
        "framework, model and attack, on the same adversarial PNGs; b = samples only the mobile model "
        "misclassifies, c = samples only the PC model misclassifies.</p>" +
        (_comparison_table(_with_ci(plat, by_id), "mobile", "PC") if plat else "<p>No PC/mobile pairs.</p>"),
        _results_table(records),
        _methods(statistics),
        _provenance(run_info, records),
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"
