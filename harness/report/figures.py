"""Paper-style figures as image bytes, ready to embed inline in the HTML report.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no global backend
switch), so the report stage is safe in any process. Each figure carries a title that
says what it shows and the configuration ids it plots.

* success rate by framework, model and attack, one figure per platform and quantization
  (the paper's Fig. 2 on mobile and Fig. 3 on PC);
* PC vs mobile, paired by framework, model and attack (Fig. 4);
* float vs int8 on the same platform (Fig. 5);
* framework or runtime? the same weights on each of their runtimes, per framework and platform.

Every bar carries its Wilson 95% interval as an error bar; lower bars mean more robust.
"""

from __future__ import annotations

import base64
import io
import textwrap
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from harness.report.records import (ATTACK_NAMES, MODEL_NAMES, PLATFORM_NAMES, RUNTIME_NAMES, axis_values,
                                    deployed_runtime, framework_name, runtime_axis, runtime_order, validate_records)
from harness.report.stats import ALPHA, compare_runtimes, is_direct

MIME = {"png": "image/png", "svg": "image/svg+xml"}
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


@dataclass(frozen=True)
class ReportFigure:
    key: str  # stable identifier, used as the HTML anchor
    title: str  # what the figure shows
    caption: str  # how to read it
    fmt: str  # "png" or "svg"
    data: bytes
    config_ids: tuple[str, ...]  # the configurations plotted

    @property
    def mime(self) -> str:
        return MIME[self.fmt]

    def data_uri(self) -> str:
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"


def _suptitle(fig: Figure, title: str) -> int:
    """Title wrapped to the figure width; returns the number of lines."""
    width = max(40, int(fig.get_figwidth() * 13))
    lines = textwrap.wrap(title, width)
    fig.suptitle("\n".join(lines), fontsize=9)
    return len(lines)


def _render(fig: Figure, fmt: str) -> bytes:
    if fmt not in MIME:
        raise ValueError(f"figure format must be one of {sorted(MIME)}, got {fmt!r}")
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    meta = {"Software": None} if fmt == "png" else {"Date": None, "Creator": None}
    fig.savefig(buf, format=fmt, dpi=96, metadata=meta)
    return buf.getvalue()


def _pct(rec: Mapping[str, Any]) -> tuple[float, float, float]:
    rate = 100.0 * rec["n_success"] / rec["n_samples"]
    low, high = (100.0 * v for v in rec["success_rate_ci"])
    return rate, max(0.0, rate - low), max(0.0, high - rate)


def _grouped_bars(ax, attacks: Sequence[str], series: Sequence[tuple[str, Sequence[Mapping | None]]],
                  marks: Mapping[str, str] | None = None) -> list[str]:
    """One group per attack, one bar per series; returns the plotted configuration ids.
    ``marks``: configuration id -> text appended to its bar's label (a significance mark)."""
    plotted = []
    width = 0.8 / max(1, len(series))
    for s, (label, recs) in enumerate(series):
        xs, heights, err_lo, err_hi, texts = [], [], [], [], []
        for i, rec in enumerate(recs):
            if rec is None:
                continue
            rate, lo, hi = _pct(rec)
            xs.append(i - 0.4 + width * (s + 0.5))
            heights.append(rate)
            err_lo.append(lo)
            err_hi.append(hi)
            texts.append(f"{rate:.1f}" + (marks or {}).get(rec["config_id"], ""))
            plotted.append(rec["config_id"])
        bars = ax.bar(xs, heights, width * 0.95, label=label, color=COLORS[s % len(COLORS)],
                      yerr=[err_lo, err_hi], capsize=2, error_kw={"elinewidth": 0.8, "ecolor": "#333333"})
        ax.bar_label(bars, labels=texts, fontsize=6, padding=1)
    ax.set_xticks(range(len(attacks)), [ATTACK_NAMES.get(a, a) for a in attacks], fontsize=8)
    ax.set_ylim(0, 112)
    ax.set_yticks(range(0, 101, 20))
    ax.tick_params(axis="y", labelsize=7)
    ax.grid(axis="y", linewidth=0.4, alpha=0.5)
    ax.set_axisbelow(True)
    return plotted


def _index(records):
    """Native-runtime records by (framework, model, attack, quantization, platform); these tables
    and figures have one column per framework, so a framework's weights on another runtime are left out."""
    return {(r["framework"], r["model"], r["attack"], r["quantization"], r["platform"]): r for r in records
            if runtime_axis(r) is None}


def success_rate_figure(records: Sequence[Mapping[str, Any]], platform: str, quantization: str,
                        fmt: str = "png") -> ReportFigure | None:
    """Success rate per framework (bars), attack (groups) and model (panels) on one platform."""
    recs = [r for r in records if r["platform"] == platform and r["quantization"] == quantization]
    if not recs:
        return None
    idx = _index(recs)
    models, attacks, frameworks = (axis_values(recs, a) for a in ("model", "attack", "framework"))
    fig = Figure(figsize=(3.5 * len(models) + 0.4, 3.6))
    axes = fig.subplots(1, len(models), squeeze=False)[0]
    plotted = []
    for ax, model in zip(axes, models):
        series = [(framework_name(f, platform), [idx.get((f, model, a, quantization, platform)) for a in attacks])
                  for f in frameworks]
        plotted += _grouped_bars(ax, attacks, series)
        ax.set_title(MODEL_NAMES.get(model, model), fontsize=9)
    axes[0].set_ylabel("attack success rate (%)", fontsize=8)
    axes[-1].legend(fontsize=7, loc="upper right")
    where = PLATFORM_NAMES.get(platform, platform)
    title = (f"Attack success rate on {where}, {quantization} models, by framework, model and attack "
             f"(error bars: Wilson 95% CI; lower = more robust)")
    _suptitle(fig, title)
    fig.tight_layout()
    caption = (f"Share of the adversarial samples (generated on each framework's PC float model, saved as "
               f"uint8 PNG) that the {quantization} model misclassifies on {where}. One panel per model; "
               f"bars per framework; numbers on the bars are percentages.")
    return ReportFigure(f"fig-success-{platform}-{quantization}", title, caption, fmt, _render(fig, fmt),
                        tuple(plotted))


def _paired_figure(key: str, title: str, caption: str, records, series_sel: Sequence[tuple[str, str, str]],
                   fmt: str) -> ReportFigure | None:
    """Rows: frameworks; panels: models; groups: attacks; bars: (label, quantization, platform) series."""
    recs = [r for r in records if any(r["quantization"] == q and r["platform"] == p for _, q, p in series_sel)]
    present = {(r["quantization"], r["platform"]) for r in recs}
    if not all((q, p) in present for _, q, p in series_sel):
        return None
    idx = _index(recs)
    models, attacks, frameworks = (axis_values(recs, a) for a in ("model", "attack", "framework"))
    fig = Figure(figsize=(3.5 * len(models) + 0.4, 2.7 * len(frameworks) + 0.7))
    axes = fig.subplots(len(frameworks), len(models), squeeze=False)
    plotted = []
    for row, f in enumerate(frameworks):
        for col, model in enumerate(models):
            ax = axes[row][col]
            series = [(label, [idx.get((f, model, a, q, p)) for a in attacks]) for label, q, p in series_sel]
            plotted += _grouped_bars(ax, attacks, series)
            ax.set_title(f"{framework_name(f, 'pc')} {MODEL_NAMES.get(model, model)}", fontsize=9)
        axes[row][0].set_ylabel("attack success rate (%)", fontsize=8)
    axes[0][-1].legend(fontsize=7, loc="upper right")
    _suptitle(fig, title)
    fig.tight_layout()
    return ReportFigure(key, title, caption, fmt, _render(fig, fmt), tuple(plotted))


def platform_figure(records: Sequence[Mapping[str, Any]], platform: str = "mobile", quantization: str = "float",
                    fmt: str = "png") -> ReportFigure | None:
    """PC float vs ``platform`` at ``quantization``, side by side per framework, model and attack."""
    where = PLATFORM_NAMES.get(platform, platform)
    title = (f"PC vs {where}: attack success rate of the PC float model and the {quantization} model on {platform}, "
             f"paired by framework, model and attack (error bars: Wilson 95% CI)")
    caption = (f"Both bars of a pair are measured on the same adversarial PNGs; the difference is what moving "
               f"the model from the PC framework to {where} changed. McNemar p-values per pair are in the "
               f"PC vs {platform} table.")
    return _paired_figure(f"fig-platform-{platform}-{quantization}", title, caption, records,
                          [("PC float", "float", "pc"), (f"{platform} {quantization}", quantization, platform)], fmt)


def quantization_figure(records: Sequence[Mapping[str, Any]], platform: str = "mobile",
                        fmt: str = "png") -> ReportFigure | None:
    """float vs int8 on the same platform, side by side per framework, model and attack."""
    where = PLATFORM_NAMES.get(platform, platform)
    title = (f"Effect of int8 quantization on {where}: attack success rate of the float and the int8 model, "
             f"paired by framework, model and attack (error bars: Wilson 95% CI)")
    caption = ("Both bars of a pair are measured on the same adversarial PNGs; a lower int8 bar means "
               "quantization made the model more robust. McNemar p-values per pair are in the "
               "quantization-effect table.")
    return _paired_figure(f"fig-quantization-{platform}", title, caption, records,
                          [("float", "float", platform), ("int8", "int8", platform)], fmt)


def runtime_figure(records: Sequence[Mapping[str, Any]], framework: str, platform: str,
                   comparisons: Sequence[Mapping[str, Any]], alpha: float = ALPHA,
                   fmt: str = "png") -> ReportFigure | None:
    """The same ``framework`` weights on each runtime of ``platform``: rows quantizations, panels
    models, groups attacks, one bar per runtime; a bar whose outcomes differ from the native
    runtime's (McNemar, BH q < alpha) is marked with an asterisk."""
    recs = [r for r in records if r["framework"] == framework and r["platform"] == platform and not is_direct(r)]
    runtimes = runtime_order(framework, {deployed_runtime(r) for r in recs})
    if len(runtimes) < 2:
        return None
    idx = {(r["model"], r["attack"], r["quantization"], deployed_runtime(r)): r for r in recs}
    native = runtimes[0]
    marks = {c["config_id_b"]: "*" for c in comparisons
             if c["runtime_a"] == native and c["p_value_bh"] is not None and c["p_value_bh"] < alpha}
    models, attacks, quants = (axis_values(recs, a) for a in ("model", "attack", "quantization"))
    fig = Figure(figsize=(3.5 * len(models) + 0.4, 2.7 * len(quants) + 0.8))
    axes = fig.subplots(len(quants), len(models), squeeze=False)
    plotted = []
    for row, q in enumerate(quants):
        for col, model in enumerate(models):
            ax = axes[row][col]
            series = [(RUNTIME_NAMES.get(rt, rt), [idx.get((model, a, q, rt)) for a in attacks]) for rt in runtimes]
            plotted += _grouped_bars(ax, attacks, series, marks)
            ax.set_title(f"{MODEL_NAMES.get(model, model)}, {q}", fontsize=9)
        axes[row][0].set_ylabel("attack success rate (%)", fontsize=8)
    axes[0][-1].legend(fontsize=7, loc="upper right")
    where = PLATFORM_NAMES.get(platform, platform)
    names = " and ".join(RUNTIME_NAMES.get(rt, rt) for rt in runtimes)
    title = (f"Framework or runtime? The same {framework_name(framework, 'pc')} weights on {names} ({where}), "
             f"by model, quantization and attack (error bars: Wilson 95% CI; * = differs from "
             f"{RUNTIME_NAMES.get(native, native)}, McNemar BH q < {alpha:g})")
    _suptitle(fig, title)
    fig.tight_layout()
    caption = (f"Every bar of a group is measured on the same adversarial PNGs, run by another runtime from the "
               f"same weights; a gap between bars is what the runtime alone changed. An asterisk marks a runtime "
               f"whose per-sample outcomes differ from {RUNTIME_NAMES.get(native, native)}'s (McNemar's exact "
               f"test, Benjamini-Hochberg over all runtime pairs); the numbers are in the table below.")
    return ReportFigure(f"fig-runtime-{framework}-{platform}", title, caption, fmt, _render(fig, fmt),
                        tuple(plotted))


def build_figures(records: Sequence[Mapping[str, Any]], fmt: str = "png") -> list[ReportFigure]:
    """All figures the run's records support, in report order."""
    recs = validate_records(records)
    figures = []
    platforms = axis_values(recs, "platform")
    for platform in [p for p in platforms if p != "pc"] + [p for p in platforms if p == "pc"]:
        for q in axis_values([r for r in recs if r["platform"] == platform], "quantization"):
            figures.append(success_rate_figure(recs, platform, q, fmt))
    for platform in (p for p in platforms if p != "pc"):
        figures.append(platform_figure(recs, platform, "float", fmt))
        figures.append(quantization_figure(recs, platform, fmt))
    comparisons = compare_runtimes(recs)["comparisons"]
    for platform in (p for p in platforms if p != "pc"):
        for framework in axis_values(recs, "framework"):
            figures.append(runtime_figure(recs, framework, platform, comparisons, fmt=fmt))
    return [f for f in figures if f is not None]
