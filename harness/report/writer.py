"""Write a run's report directory and point ``latest`` at it.

``write_report(records, run_info, out_dir)`` writes, each atomically (temp file in the
same directory, then ``os.replace``):

* ``results.json``: one record per configuration, as given plus ``config_id``,
  ``n_success`` and ``success_rate_ci`` [low, high]; the per-sample lists are kept;
* ``results.csv``: one row per configuration, scalar fields; dict and list fields other
  than the per-sample lists are JSON-encoded, the per-sample lists are left out;
* ``statistics.json``: intervals, per-configuration McNemar tests, RQ1-RQ3 and the answers,
  and ``runtime_comparisons`` (framework or runtime? see ``stats.compare_runtimes``); with
  ``device_records`` of several phones, ``devices`` (see ``devices.compare_devices``);
* ``run.json``: the run information as given;
* ``report.html``: the self-contained page;

then replaces ``<parent>/latest`` with a relative symlink to ``out_dir`` (atomically:
a temporary link renamed over the old one).
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from harness.cache import atomic_write
from harness.report.devices import compare_devices
from harness.report.figures import build_figures
from harness.report.html import render_html
from harness.report.records import REQUIRED_FIELDS, config_id, validate_records
from harness.report.stats import compute_statistics

PER_SAMPLE_FIELDS = ("sample_ids", "per_sample_success")
CSV_LEADING = ("config_id",) + tuple(f for f in REQUIRED_FIELDS if f not in PER_SAMPLE_FIELDS + ("gate", "passed")) \
    + ("success_rate_ci_low", "success_rate_ci_high", "n_success", "passed", "gate")


@dataclass(frozen=True)
class ReportPaths:
    directory: Path
    results_json: Path
    results_csv: Path
    statistics_json: Path
    run_json: Path
    report_html: Path
    latest: Path


def _plain(value: Any) -> Any:
    """JSON-ready: numpy scalars/arrays to Python, non-finite floats to None, tuples to lists."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    elif hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)


def _json(value: Any, indent: int | None = 1) -> str:
    return json.dumps(_plain(value), indent=indent, allow_nan=False, ensure_ascii=False) + "\n"


def _csv_value(value: Any) -> Any:
    value = _plain(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    if value is None:
        return ""
    return value


def results_csv(records: Iterable[Mapping[str, Any]]) -> str:
    """One row per configuration: the scalar fields, dicts/lists JSON-encoded, per-sample lists omitted."""
    rows = []
    for r in records:
        row = {k: v for k, v in r.items() if k not in PER_SAMPLE_FIELDS and k != "success_rate_ci"}
        row["success_rate_ci_low"], row["success_rate_ci_high"] = r["success_rate_ci"]
        rows.append(row)
    extra = sorted({k for row in rows for k in row} - set(CSV_LEADING))
    columns = list(CSV_LEADING) + extra
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _csv_value(row.get(c)) for c in columns})
    return buf.getvalue()


def update_latest(out_dir: Path, name: str = "latest") -> Path:
    """Atomically point ``<out_dir.parent>/<name>`` at ``out_dir`` (relative symlink)."""
    out_dir = Path(out_dir).resolve()
    if out_dir.name == name:
        raise ValueError(f"the run directory may not be called {name!r}: it would point at itself")
    link = out_dir.parent / name
    if link.exists() and not link.is_symlink():
        raise FileExistsError(f"{link} exists and is not a symlink; refusing to replace it")
    tmp = out_dir.parent / f".{name}.{os.getpid()}.{os.urandom(4).hex()}"
    os.symlink(out_dir.name, tmp)
    try:
        os.replace(tmp, link)
    except BaseException:
        os.unlink(tmp)
        raise
    return link


def write_report(records: Iterable[Mapping[str, Any]], run_info: Mapping[str, Any] | None,
                 out_dir: str | os.PathLike, update_latest_link: bool = True, figure_format: str = "png",
                 device_records: Iterable[Mapping[str, Any]] | None = None) -> ReportPaths:
    """Validate ``records``, write the report files into ``out_dir`` and update ``latest``.

    Raises ValueError (``RecordError``) naming the configuration and the field for an invalid
    record, before anything is written. ``device_records``: every phone's device records of a run
    on several phones (``records`` holds one per configuration); the report then compares them.
    """
    records = list(records)
    # A configuration that raised has a record saying so and nothing measured: listed, not validated.
    # A conversion failure also says which converter failed and how (the report's own table).
    errors = [{"configuration": r.get("configuration") or config_id(r), "error": r.get("error"),
               **({"conversion_failed": r["conversion_failed"]} if isinstance(r.get("conversion_failed"), Mapping)
                  else {})}
              for r in records if r.get("error")]
    recs = validate_records([r for r in records if not r.get("error")])
    out_dir = Path(out_dir)
    run_info = dict(run_info or {})
    if errors:
        run_info["errors"] = errors
    run_info.setdefault("run", out_dir.name)
    run_info.setdefault("date", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))

    statistics = compute_statistics(recs)
    statistics = {"run": _plain(run_info), **statistics}
    devices = compare_devices(list(device_records or ()))
    if devices is not None:
        statistics["devices"] = devices
    figures = build_figures(recs, fmt=figure_format)
    page = render_html(recs, statistics, figures, run_info)

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = ReportPaths(out_dir, out_dir / "results.json", out_dir / "results.csv", out_dir / "statistics.json",
                        out_dir / "run.json", out_dir / "report.html", out_dir.resolve().parent / "latest")
    atomic_write(paths.results_json, _json(recs))
    atomic_write(paths.results_csv, results_csv(recs))
    atomic_write(paths.statistics_json, _json(statistics))
    atomic_write(paths.run_json, _json(run_info))
    atomic_write(paths.report_html, page)
    if update_latest_link:
        update_latest(out_dir)
    return paths
