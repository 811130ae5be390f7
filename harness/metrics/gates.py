"""Baselines and the gates a run is judged by.

One committed file per zoo and profile (``thresholds/<zoo>-<profile>.json``) holds a
*baseline*: what an earlier, trusted run measured, per sample, and what it was
measured on. A run is judged against it with three kinds of gate:

``regression`` (every configuration)
    Paired on the same sample ids: ``b`` samples fooled now and not in the baseline,
    ``c`` fooled in the baseline and not now. Under "nothing changed" each discordant
    sample is as likely to go either way, so the one-sided exact McNemar test is the
    binomial test of ``b`` successes in ``b + c`` trials at 1/2. The gate fails when
    the test rejects at the case's share of the run's error budget (``alpha / m``, m
    the configurations gated in the run: Benjamini-Hochberg rejects every such case
    whatever the others' p-values) **and** the success rate rose by at least the
    file's practical margin. When the session ends, Benjamini-Hochberg over the whole
    run (``scipy.stats.false_discovery_control``) finds the rest; they fail the run.

``agreement`` (every platform but the PC, which is the reference)
    An equivalence gate: the one-sided lower Wilson bound of top-1 agreement with the
    PC float model, on the clean and on the adversarial images, must clear the
    tolerance written in the baseline.

``bit_exact`` (runner platforms whose baseline was bit-exact)
    The ARM build's logits must equal this host's runtime's on the same file, bit for
    bit (int8 LiteRT and the lite interpreter's QNNPACK are).

The baseline's *fingerprint* names what it was measured on; :func:`compare_fingerprints`
turns a run's differences into errors (other samples, seed, weights, attack
parameters: the run would be judged by limits measured on something else) and
notes (library and runtime versions, converted artefacts: what the gates judge).

``--write-thresholds`` never touches the live file: :func:`propose` builds a new
baseline from a complete run and :func:`describe_changes` says, per configuration,
what moved and which gates got looser, for review as a diff in a pull request.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from harness.cache import atomic_write
from harness.stats import benjamini_hochberg, mcnemar_exact, wilson_lower

REPO_ROOT = Path(__file__).resolve().parents[2]
THRESHOLD_DIR = REPO_ROOT / "thresholds"
FORMAT = 2
GATE_KINDS = ("regression", "agreement", "bit_exact")
# How many flipped sample ids a failure message lists (with their PNG paths).
SHOW_IDS = 5


class ThresholdError(ValueError):
    """A malformed baseline file, an unknown configuration, or a missing entry."""


class FingerprintError(ThresholdError):
    """The run measures something other than what the baseline was measured on."""


@dataclass(frozen=True)
class Policy:
    """How the gates decide; stored in the baseline so a reviewer sees it."""

    alpha: float = 0.05  # false discovery rate over the run's regression tests
    practical_margin: float = 0.02  # fail only if the success rate rose by at least this much
    confidence: float = 0.95  # one-sided confidence of the agreement bounds
    agreement_margin: float = 0.02  # tolerance = the baseline's own lower bound minus this

    def to_dict(self) -> dict:
        return {"alpha": self.alpha, "correction": "benjamini-hochberg", "test": "exact McNemar, one-sided",
                "practical_margin": self.practical_margin, "confidence": self.confidence,
                "agreement_margin": self.agreement_margin}

    @classmethod
    def from_dict(cls, raw: Mapping, where: str) -> "Policy":
        if not isinstance(raw, Mapping):
            raise ThresholdError(f"{where}: 'policy' must be an object, found {raw!r}")
        values = {}
        # (name, lowest allowed, highest allowed, whether the lowest is allowed itself)
        for name, low, high, closed in (("alpha", 0.0, 0.5, False), ("practical_margin", 0.0, 1.0, True),
                                        ("confidence", 0.5, 1.0, False), ("agreement_margin", 0.0, 1.0, True)):
            value = raw.get(name)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
                and (low <= value if closed else low < value) and value <= high
            if not ok:
                raise ThresholdError(f"{where}: policy.{name} must be a number in {'[' if closed else '('}{low}, "
                                     f"{high}], found {value!r}")
            values[name] = float(value)
        return cls(**values)


# -- per-sample bitmaps -----------------------------------------------------------------
def pack_bits(bits: Sequence[bool]) -> str:
    return np.packbits(np.asarray(bits, dtype=bool)).tobytes().hex()


def unpack_bits(text: str, n: int, where: str) -> np.ndarray:
    try:
        raw = bytes.fromhex(text)
    except (TypeError, ValueError):
        raise ThresholdError(f"{where}: expected a hexadecimal bitmap, found {str(text)[:40]!r}") from None
    if len(raw) != (n + 7) // 8:
        raise ThresholdError(f"{where}: bitmap of {len(raw)} bytes cannot hold exactly {n} samples")
    return np.unpackbits(np.frombuffer(raw, dtype=np.uint8), count=n).astype(bool)


# -- the baseline file -------------------------------------------------------------------
@dataclass
class Entry:
    """One configuration's baseline: which of its samples were fooled, its agreements
    with the PC and the tolerances derived from them."""

    n: int
    fooled: np.ndarray
    min_clean_agreement: float | None = None
    min_adversarial_agreement: float | None = None
    clean_agreement: float | None = None
    adversarial_agreement: float | None = None
    bit_exact: bool = False

    @property
    def success_rate(self) -> float:
        return float(self.fooled.mean()) if self.n else 0.0

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"n": self.n, "success_rate": round(self.success_rate, 6), "fooled": pack_bits(self.fooled)}
        for name in ("clean_agreement", "adversarial_agreement", "min_clean_agreement", "min_adversarial_agreement"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.bit_exact:
            out["bit_exact"] = True
        return out


@dataclass
class Baseline:
    zoo: str
    profile: str
    policy: Policy
    fingerprint: dict
    sample_ids: list[int]
    entries: dict[str, Entry]
    written_from: dict = field(default_factory=dict)
    path: Path | None = None
    # Configurations whose model did not convert when the baseline was measured, with the
    # converter's message: their cases are expected failures until the model converts.
    conversion_failures: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = {"format": FORMAT, "zoo": self.zoo, "profile": self.profile, "written_from": self.written_from,
               "policy": self.policy.to_dict(), "fingerprint": self.fingerprint, "sample_ids": self.sample_ids,
               "configurations": {k: self.entries[k].to_dict() for k in sorted(self.entries)}}
        if self.conversion_failures:
            out["conversion_failures"] = {k: self.conversion_failures[k] for k in sorted(self.conversion_failures)}
        return out

    def expects_conversion_failure(self, config_id: str) -> str | None:
        """The converter's message the baseline recorded for ``config_id``, or None."""
        return self.conversion_failures.get(config_id)


def default_path(zoo: str, profile: str) -> Path:
    return THRESHOLD_DIR / f"{zoo}-{profile}.json"


def proposal_path(path: Path) -> Path:
    return Path(path).with_name(Path(path).stem + ".proposed.json")


def _number(value, where: str, low: float = 0.0, high: float = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value <= high:
        raise ThresholdError(f"{where}: expected a number in [{low}, {high}], found {value!r}")
    return float(value)


def load_baseline(path: Path, valid_ids: Iterable[str], zoo: str, profile: str) -> Baseline:
    """Read and validate a baseline file against the configurations this run can produce."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ThresholdError(f"{path}: baseline file not found; propose one with --write-thresholds") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ThresholdError(f"{path}: not valid JSON ({exc})") from exc
    except RecursionError:
        raise ThresholdError(f"{path}: not valid JSON (nested too deeply)") from None
    if not isinstance(raw, dict):
        raise ThresholdError(f"{path}: expected a JSON object, found {type(raw).__name__}")
    if raw.get("format") != FORMAT:
        raise ThresholdError(f"{path}: baseline format {raw.get('format')!r}, this suite reads format {FORMAT} "
                             "(per-sample outcomes and a fingerprint); propose a new one with --write-thresholds")
    for key, expected in (("zoo", zoo), ("profile", profile)):
        if raw.get(key) != expected:
            raise ThresholdError(f"{path}: written for {key} {raw.get(key)!r}, this run uses {expected!r}")
    policy = Policy.from_dict(raw.get("policy"), str(path))
    fingerprint = raw.get("fingerprint")
    if not isinstance(fingerprint, dict) or not isinstance(fingerprint.get("samples"), dict):
        raise ThresholdError(f"{path}: 'fingerprint' must be an object with a 'samples' object")
    ids = raw.get("sample_ids")
    if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids) \
            or len(set(ids)) != len(ids):
        raise ThresholdError(f"{path}: 'sample_ids' must be a list of distinct integers")
    configurations = raw.get("configurations")
    if not isinstance(configurations, dict):
        raise ThresholdError(f"{path}: expected a 'configurations' object")
    valid = set(valid_ids)
    unknown = sorted(set(configurations) - valid)
    if unknown:
        raise ThresholdError(f"{path}: configurations this run cannot produce: {unknown[:5]}"
                             f"{' ...' if len(unknown) > 5 else ''}; valid ids look like {sorted(valid)[:3]}")
    entries = {cid: _entry(body, f"{path}: {cid}", len(ids), cid.rsplit("-", 1)[-1])
               for cid, body in configurations.items()}
    failures = raw.get("conversion_failures", {})
    if not isinstance(failures, dict) or not all(isinstance(m, str) and m.strip() for m in failures.values()):
        raise ThresholdError(f"{path}: 'conversion_failures' must map configuration ids to the converter's "
                             "message (non-empty strings)")
    unknown = sorted(set(failures) - valid)
    if unknown:
        raise ThresholdError(f"{path}: conversion_failures names configurations this run cannot produce: {unknown[:5]}")
    both = sorted(set(failures) & set(entries))
    if both:
        raise ThresholdError(f"{path}: {both[0]} is both measured (configurations) and a conversion failure")
    return Baseline(zoo, profile, policy, fingerprint, ids, entries,
                    raw.get("written_from") if isinstance(raw.get("written_from"), dict) else {}, path, dict(failures))


def _entry(body, where: str, n_ids: int, platform: str) -> Entry:
    if not isinstance(body, dict):
        raise ThresholdError(f"{where}: expected an object, found {body!r}")
    known = {"n", "success_rate", "fooled", "clean_agreement", "adversarial_agreement",
             "min_clean_agreement", "min_adversarial_agreement", "bit_exact"}
    extra = sorted(set(body) - known)
    if extra:
        raise ThresholdError(f"{where}: unknown fields {extra}; known {sorted(known)}")
    n = body.get("n")
    if isinstance(n, bool) or not isinstance(n, int) or not 0 < n <= n_ids:
        raise ThresholdError(f"{where}: n must be an integer in [1, {n_ids}] (the baseline's sample ids), "
                             f"found {n!r}")
    entry = Entry(n, unpack_bits(body.get("fooled"), n, f"{where}: fooled"))
    if "success_rate" in body and abs(_number(body["success_rate"], f"{where}: success_rate")
                                      - entry.success_rate) > 1e-6:
        raise ThresholdError(f"{where}: success_rate {body['success_rate']} does not match its bitmap "
                             f"({entry.success_rate:.6f})")
    for name in ("clean_agreement", "adversarial_agreement", "min_clean_agreement", "min_adversarial_agreement"):
        if name in body:
            setattr(entry, name, _number(body[name], f"{where}: {name}"))
    if platform != "pc":
        for name in ("min_clean_agreement", "min_adversarial_agreement"):
            if getattr(entry, name) is None:
                raise ThresholdError(f"{where}: missing {name!r} (every platform but the PC has agreement gates)")
    bit_exact = body.get("bit_exact", False)
    if not isinstance(bit_exact, bool):
        raise ThresholdError(f"{where}: bit_exact must be true or false, found {bit_exact!r}")
    entry.bit_exact = bit_exact
    return entry


def write_baseline(path: Path, baseline: Baseline) -> None:
    atomic_write(Path(path), json.dumps(baseline.to_dict(), indent=1) + "\n")


# -- fingerprints ----------------------------------------------------------------------------
# Fingerprint sections whose differences change what is measured: an error, not a verdict.
MEASURED_ON = ("samples", "weights", "attacks")
# Sections a run is expected to change: they are what the gates judge; listed as notes.
JUDGED = ("versions", "settings", "artifacts")


def _flatten(value, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def compare_fingerprints(baseline: Mapping, run: Mapping, sections: Iterable[str] | None = None
                         ) -> tuple[list[str], list[str]]:
    """(errors, notes): each difference between the baseline's fingerprint and the run's, named.

    Only the sections the run's fingerprint has are compared (a run knows its sample
    count before it knows the ids), restricted to ``sections`` when given."""
    errors, notes = [], []
    for section in sections or list(run):
        if section not in run:
            continue
        old, new = _flatten(baseline.get(section, {}), section), _flatten(run[section], section)
        for key in sorted(set(old) | set(new)):
            if key in old and key in new and old[key] == new[key]:
                continue
            if key not in new or key == "samples.ids":
                continue  # not known to the run yet (or not selected); the ids are compared by digest
            line = f"{key}: baseline {_show(old.get(key, '(absent)'))}, this run {_show(new.get(key, '(absent)'))}"
            (errors if section in MEASURED_ON else notes).append(line)
    return errors, notes


def _show(value) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 70 else text[:67] + "..."


def fingerprint_error(path: Path, errors: Sequence[str]) -> FingerprintError:
    return FingerprintError(
        f"{path} was measured on something else than this run, so its gates cannot judge it:\n  "
        + "\n  ".join(errors)
        + "\nRun with the baseline's settings, or propose a baseline for these with --write-thresholds")


# -- verdicts --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    kind: str
    passed: bool
    text: str
    numbers: dict = field(default_factory=dict)

    def describe(self, config_id: str) -> str:
        return f"{config_id}: {self.kind} {'passes' if self.passed else 'FAILS'}: {self.text}"


def _ids_with_paths(ids: Sequence[int], png_dir: str | None) -> str:
    shown = [f"{i}" + (f" ({Path(png_dir) / f'{i}.png'})" if png_dir else "") for i in list(ids)[:SHOW_IDS]]
    more = len(ids) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def regression_verdict(record: Mapping, entry: Entry, baseline_ids: Sequence[int], policy: Policy,
                       m: int) -> Verdict:
    """Paired exact McNemar of this run's per-sample outcomes against the baseline's."""
    ids = [int(i) for i in record["sample_ids"]]
    before_ids = list(baseline_ids[:entry.n])
    if ids != before_ids:
        raise FingerprintError(
            f"{record.get('configuration')}: the baseline's {entry.n} sample ids are not this run's {len(ids)} "
            f"(first baseline ids {before_ids[:3]}, first run ids {ids[:3]}): a paired test needs the same samples")
    now = np.asarray(record["per_sample_success"], bool)
    before = entry.fooled
    test = mcnemar_exact(now, before, alternative="greater")
    b, c, p = test.b, test.c, test.p_value
    n = len(ids)
    rise = (int(now.sum()) - int(before.sum())) / n
    level = policy.alpha / max(1, m)
    significant = p <= level
    practical = rise >= policy.practical_margin - 1e-12
    passed = not (significant and practical)
    png_dir = record.get("adversarial_pngs")
    newly = [i for i, x, y in zip(ids, now, before) if x and not y]
    text = (f"{b} of {n} samples newly fooled, {c} no longer fooled; success rate {before.mean():.4f} -> "
            f"{now.mean():.4f} ({rise * 100:+.2f} points); exact McNemar one-sided p = {p:.3g} against "
            f"alpha/m = {policy.alpha}/{m} = {level:.3g} ({'significant' if significant else 'not significant'}), "
            f"practical margin {policy.practical_margin * 100:.1f} points")
    if newly:
        text += f"; newly fooled ids: {_ids_with_paths(newly, png_dir)}"
    return Verdict("regression", passed, text,
                   {"b": b, "c": c, "p_value": p, "rise": rise, "level": level, "n": n})


def agreement_verdicts(record: Mapping, entry: Entry, policy: Policy) -> list[Verdict]:
    out = []
    ids = [int(i) for i in record["sample_ids"]]
    for which, bits_field, tolerance in (
            ("clean", "per_sample_clean_agreement", entry.min_clean_agreement),
            ("adversarial", "per_sample_adversarial_agreement", entry.min_adversarial_agreement)):
        agrees = np.asarray(record[bits_field], bool)
        k, n = int(agrees.sum()), len(agrees)
        low = wilson_lower(k, n, policy.confidence)
        passed = low >= tolerance - 1e-12
        text = (f"{which} top-1 agreement with the PC {k}/{n} = {k / max(1, n):.4f}, lower "
                f"{policy.confidence:.0%} Wilson bound {low:.4f}, tolerance {tolerance:.4f}")
        disagree = [i for i, a in zip(ids, agrees) if not a]
        if disagree:
            png_dir = record.get("adversarial_pngs") if which == "adversarial" else None
            text += f"; disagreeing ids: {_ids_with_paths(disagree, png_dir)}"
        out.append(Verdict(f"agreement ({which})", passed, text, {"lower_bound": low, "tolerance": tolerance}))
    return out


def bit_exact_verdict(record: Mapping) -> Verdict:
    host = record.get("host_vs_arm") or {}
    parts = [(k, host.get(k) or {}) for k in ("clean", "adversarial")]
    passed = all(p.get("bit_exact") is True for _, p in parts)
    text = "; ".join(f"{k}: {'bit-exact' if p.get('bit_exact') else 'differs'} from this host's runtime "
                     f"(max |logit diff| {p.get('max_abs_logit_diff', float('nan')):.3g}, "
                     f"agreement {p.get('prediction_agreement', float('nan')):.4f})" for k, p in parts)
    return Verdict("bit_exact", passed, text + " (the baseline was bit-exact)")


def judge(record: Mapping, baseline: Baseline, m: int) -> list[Verdict]:
    """Every gate of ``record``'s configuration against ``baseline``."""
    cid = record["configuration"]
    entry = baseline.entries.get(cid)
    if entry is None:
        raise ThresholdError(f"{baseline.path}: no baseline for {cid}; every configuration needs one "
                             "(propose a complete baseline with --write-thresholds)")
    verdicts = [regression_verdict(record, entry, baseline.sample_ids, baseline.policy, m)]
    if record["platform"] != "pc":
        verdicts += agreement_verdicts(record, entry, baseline.policy)
    if entry.bit_exact:
        verdicts.append(bit_exact_verdict(record))
    return verdicts


def gate_numbers(record: Mapping, baseline: Baseline, m: int) -> dict[str, float]:
    """The limits a case was held to, as numbers (the record's ``gate``)."""
    entry = baseline.entries[record["configuration"]]
    out = {"baseline_success_rate": entry.success_rate, "practical_margin": baseline.policy.practical_margin,
           "alpha_per_case": baseline.policy.alpha / max(1, m)}
    if entry.min_clean_agreement is not None:
        out["min_clean_agreement"] = entry.min_clean_agreement
        out["min_adversarial_agreement"] = entry.min_adversarial_agreement
    return out


def run_level_regressions(records: Sequence[Mapping], policy: Policy) -> list[tuple[str, float]]:
    """Configurations Benjamini-Hochberg rejects over the whole run (with the practical
    margin met), as (configuration, adjusted p); each case already failed those whose
    p-value cleared alpha/m on its own."""
    tested = [r for r in records if isinstance(r.get("regression"), Mapping)]
    if not tested:
        return []
    adjusted = benjamini_hochberg([r["regression"]["p_value"] for r in tested])
    return [(r["configuration"], q) for r, q in zip(tested, adjusted)
            if q <= policy.alpha and r["regression"]["rise"] >= policy.practical_margin - 1e-12]


# -- proposals -------------------------------------------------------------------------------
def entry_from_record(record: Mapping, policy: Policy, bit_exact_allowed: bool = True) -> Entry:
    fooled = np.asarray(record["per_sample_success"], bool)
    entry = Entry(len(fooled), fooled)
    if record["platform"] != "pc":
        for which in ("clean", "adversarial"):
            agrees = np.asarray(record[f"per_sample_{which}_agreement"], bool)
            k, n = int(agrees.sum()), len(agrees)
            low = wilson_lower(k, n, policy.confidence)
            setattr(entry, f"{which}_agreement", round(k / n, 6))
            # rounded down to 0.01: an unchanged run clears it with room
            setattr(entry, f"min_{which}_agreement", max(0.0, math.floor((low - policy.agreement_margin) * 100) / 100))
        host = record.get("host_vs_arm") or {}
        entry.bit_exact = bit_exact_allowed and bool(host) and all(
            (host.get(k) or {}).get("bit_exact") is True for k in ("clean", "adversarial"))
    return entry


def propose(records: Sequence[Mapping], fingerprint: dict, old: Baseline | None, platforms: set[str],
            zoo: str, profile: str, policy: Policy, run: str) -> Baseline:
    """A baseline from ``records`` for ``platforms``; other platforms keep ``old``'s entries."""
    ids = fingerprint["samples"]["ids"]
    entries, failures = {}, {}
    if old is not None and old.sample_ids == ids:
        entries = {k: v for k, v in old.entries.items() if k.rsplit("-", 1)[-1] not in platforms}
        failures = {k: v for k, v in old.conversion_failures.items() if k.rsplit("-", 1)[-1] not in platforms}
    for r in records:
        if r["platform"] not in platforms:
            continue
        if r.get("conversion_failed"):  # expected to fail, with this message, until the model converts
            failures[r["configuration"]] = r["conversion_failed"]["message"]
        else:
            entries[r["configuration"]] = entry_from_record(r, policy)
    fp = {k: v for k, v in fingerprint.items()}
    fp["samples"] = {k: v for k, v in fingerprint["samples"].items() if k != "ids"}
    return Baseline(zoo, profile, policy, fp, list(ids), entries,
                    {"run": run, "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                     "platforms": sorted(platforms)}, conversion_failures=failures)


def describe_changes(old: Baseline | None, new: Baseline) -> list[str]:
    """Per configuration: what moved from ``old`` to ``new`` and which gates got looser."""
    if old is None:
        return [f"no live baseline: all {len(new.entries)} configurations are new"]
    lines = []
    looser_count = changed = 0
    for cid in sorted(set(old.conversion_failures) | set(new.conversion_failures)):
        a, b = old.conversion_failures.get(cid), new.conversion_failures.get(cid)
        if a != b:
            lines.append(f"{cid}: " + ("now converts" if b is None else f"conversion fails: {b[:200]}"))
    for cid in sorted(set(old.entries) | set(new.entries)):
        a, b = old.entries.get(cid), new.entries.get(cid)
        if b is None and cid in new.conversion_failures or a is None and cid in old.conversion_failures:
            continue  # said above
        if a is None or b is None:
            lines.append(f"{cid}: {'added' if a is None else 'removed'}")
            continue
        changes, looser = [], []
        if a.n != b.n or not np.array_equal(a.fooled, b.fooled):
            flips = int((a.fooled[:min(a.n, b.n)] != b.fooled[:min(a.n, b.n)]).sum())
            changes.append(f"success {a.success_rate:.4f} -> {b.success_rate:.4f} ({flips} samples flipped)")
            if b.success_rate > a.success_rate:
                looser.append("regression (anchored on a more fooled baseline)")
        for name in ("min_clean_agreement", "min_adversarial_agreement"):
            x, y = getattr(a, name), getattr(b, name)
            if x != y:
                changes.append(f"{name} {x} -> {y}")
                if x is not None and y is not None and y < x:
                    looser.append(name)
        if a.bit_exact != b.bit_exact:
            changes.append(f"bit_exact {a.bit_exact} -> {b.bit_exact}")
            if a.bit_exact:
                looser.append("bit_exact dropped")
        if changes:
            changed += 1
            looser_count += bool(looser)
            lines.append(f"{cid}: " + "; ".join(changes) + (f"; LOOSER: {', '.join(looser)}" if looser else ""))
    if old.policy != new.policy:
        lines.append(f"policy {old.policy.to_dict()} -> {new.policy.to_dict()}")
    errors, notes = compare_fingerprints(old.fingerprint, new.fingerprint, MEASURED_ON + JUDGED)
    lines += [f"fingerprint: {line}" for line in errors + notes]
    unchanged = len(set(old.entries) & set(new.entries)) - changed
    lines.insert(0, f"{looser_count} configurations got looser gates; {unchanged} unchanged")
    return lines
