"""The main job on the embedded default: ``python -m harness`` (``make run``).

Runs the study — every framework x model x attack x quantization configuration of the chosen
host platforms (default ``pc`` and ``mobile``; ``--platforms pc,mobile,arm64`` adds the ARM
builds under emulation) — with the same :class:`harness.study.Study` and ``matrix`` the pytest
cases use, writes one record per configuration and the report into ``reports/<run-id>/``
(linked as ``reports/latest``), and prints a summary table. It does not gate: ``pytest -m pc``
checks the records against the committed thresholds and sets the exit code for CI.

Cold, it converts the models and generates the adversarial sets into the artefact cache
(minutes, with progress lines); warm, it reads them back.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # as under pytest (conftest.py): fewer TensorFlow log lines

import harness  # noqa: E402  (first: the framework import guard)
from harness import byo
from harness.attack.profiles import ProfileError, load_profile
from harness.cache import ArtifactCache, atomic_write
from harness.data import sources
from harness.data.dataset import DataError
from harness.convert.base import ConversionError
from harness.study import HOST_PLATFORMS, RUNNER_PLATFORMS, Study, error_record, matrix
from harness.zoo import registry
from harness.zoo.base import ZooError

REPO = Path(__file__).resolve().parents[1]


def _case_errors() -> tuple[type, ...]:
    """What a case may raise about its inputs (a model file that fails at run time, too few
    samples the model gets right, a bad image): recorded, said in one line, and the run goes on."""
    from harness.attack.direct import DirectAttackError
    from harness.runtime.base import RuntimeFailure

    return (RuntimeFailure, DataError, ZooError, DirectAttackError)


DEFAULT_PLATFORMS = ("pc", "mobile")


def _platforms(text: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    bad = [p for p in chosen if p not in HOST_PLATFORMS]
    if not chosen or bad:
        raise argparse.ArgumentTypeError(f"{text!r}: a comma-separated list of {', '.join(HOST_PLATFORMS)}")
    return chosen


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m harness",
        description="Run the study on this host's platforms (the same cases as `pytest -m pc`), write one record "
                    "per configuration and the report into REPORT_DIR/<run-id>/, and print a summary table. "
                    "No gating: `pytest -m pc` checks the committed thresholds.")
    parser.add_argument("--zoo", default="mini", choices=registry.ZOOS)
    parser.add_argument("--profile", default=None,
                        help="profile in profiles.toml giving the counts and seed (default: the zoo's, as in pytest)")
    parser.add_argument("--platforms", type=_platforms, default=DEFAULT_PLATFORMS,
                        help=f"comma-separated host platforms to run (default: {','.join(DEFAULT_PLATFORMS)}; "
                             f"choices: {','.join(HOST_PLATFORMS)}; arm64 runs under qemu-user)")
    parser.add_argument("--imagenet-dir", default=None, help="ImageNet validation folder (default: $IMAGENET_DIR)")
    parser.add_argument("--samples", type=int, default=None, help="evaluation samples to draw (default: the profile's)")
    parser.add_argument("--calibration", type=int, default=None, help="calibration images (default: the profile's)")
    parser.add_argument("--seed", type=int, default=None, help="draw seed (default: the profile's)")
    parser.add_argument("--threads", type=int, default=1, help="inference threads per runtime (default 1)")
    parser.add_argument("--cache-dir", default=None, help="artefact cache (default: $HARNESS_CACHE_DIR or .cache/artifacts)")
    parser.add_argument("--report-dir", default=str(REPO / "reports"), help="where reports/<run-id>/ goes")
    parser.add_argument("--executor", default="local", choices=("local", "ray"),
                        help="where adversarial sets' chunks run: local (this process, the default) or ray")
    parser.add_argument("--ray-address", default=None,
                        help="HOST:PORT of a Ray head for --executor ray (default: start a local Ray)")
    byo.add_options(parser.add_argument)  # --model, --source-model, --card, --images, --labels
    return parser


def user_inputs(parser: argparse.ArgumentParser, args) -> "byo.UserStudyInputs | None":
    """The bring-your-own models and images, validated (a parser error naming the file), or None."""
    options = byo.UserInputs.from_options(args)
    if not options.given:
        return None
    try:
        return options.load()
    except byo.InputError as exc:
        parser.error(str(exc))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:1000] if text else type(exc).__name__


def main(argv=None) -> int:
    """:func:`run`, with no traceback for the user: an error nothing else caught is one line (its
    traceback goes to a file named in it), Ctrl-C exits 130."""
    try:
        return run(argv)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001  (the last line of defence: a one-line error, never a traceback)
        import tempfile

        fd, log = tempfile.mkstemp(prefix="harness-error-", suffix=".log")
        with os.fdopen(fd, "w") as fh:
            fh.write(traceback.format_exc())
        print(f"error: {type(exc).__name__}: {_one_line(exc)} (traceback in {log})", file=sys.stderr)
        return 1


def run(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    for name in ("samples", "calibration", "threads"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            parser.error(f"--{name} must be a positive integer, got {value}")
    # the zoo's profile when --profile is not given, as in pytest
    from harness.suite import ZOO_PROFILES, imagenet_dir_misuse

    from harness.suite import executor_options

    try:
        executor_options(args.executor, args.ray_address)
    except ValueError as exc:
        parser.error(str(exc))
    misuse = imagenet_dir_misuse(args.zoo, args.imagenet_dir)
    if misuse:
        parser.error(misuse)
    user = user_inputs(parser, args)
    if user is not None:
        try:
            args.zoo = user.activate()  # the run's own models are its zoo
        except byo.InputError as exc:
            parser.error(str(exc))
    try:
        profile = load_profile(args.profile or ZOO_PROFILES[args.zoo])
    except ProfileError as exc:
        parser.error(str(exc))
    overrides = {k: v for k, v in (("calibration", args.calibration), ("seed", args.seed)) if v is not None}
    profile = dataclasses.replace(profile, **overrides)
    try:
        source = user.images if user is not None else sources.source_for(args.zoo, args.imagenet_dir)
    except DataError as exc:  # no folder named, or one that is missing, empty or unlabelled
        parser.error(str(exc))
    missing = registry.missing_weights(args.zoo)
    if missing:
        parser.error("\n".join(missing))

    from harness.metrics.gates import default_path
    from harness.runtime import PlatformUnavailable
    from harness.runtime.registry import check_available

    run_id = os.environ.get("HARNESS_RUN_ID") or time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
    run_dir = Path(args.report_dir) / run_id
    thresholds = default_path(args.zoo, profile.name)
    start = time.perf_counter()

    def say(message: str) -> None:
        print(f"[{time.perf_counter() - start:7.1f} s] {message}", flush=True)

    cache = ArtifactCache(args.cache_dir, log=say)  # None: $HARNESS_CACHE_DIR or .cache/artifacts

    print(f"harness {harness.__version__}: zoo {args.zoo}, profile {profile.name} ({args.samples or profile.samples} "
          f"samples, seed {profile.seed}), platforms {','.join(args.platforms)}, "
          f"{len(source.candidate_ids())} candidate {source.name}/{source.split} images; cache {cache.root}",
          flush=True)
    platforms = []
    for platform in args.platforms:
        try:
            check_available(platform)
            platforms.append(platform)
        except PlatformUnavailable as exc:
            say(f"platform {platform} skipped: {exc}")
    configurations = matrix(tuple(platforms), profile.attack_names, args.zoo)  # the profile's attacks, registry order
    if user is not None:
        user.label_images()  # an unlabelled folder: labelled by the reference model, and the report says so
        for note in user.notes:
            say(note)
    from harness.suite import executor_info, study_executor

    study = Study(args.zoo, profile, cache, args.samples, args.threads, log=say, source=source,
                  **study_executor(args.executor, args.ray_address, run_dir, say))
    records, skipped, failed, errors = [], [], [], []
    try:
        # Runner platforms (arm64) measure all their configurations in as few runner processes as possible.
        runner = [c for c in configurations if c.platform in RUNNER_PLATFORMS]
        for k, config in enumerate(configurations, 1):
            say(f"configuration {k} of {len(configurations)}: {config.id}")
            try:
                if config.platform in RUNNER_PLATFORMS:
                    study.prefetch(runner)
                record = study.evaluate(config)
            except PlatformUnavailable as exc:
                say(f"  skipped: {exc}")
                skipped.append(config.id)
                continue
            except (ConversionError, *_case_errors()) as exc:
                # A model that did not convert (the converter's message), or a case that failed on its
                # inputs (a model file failing at run time, too few samples): recorded, the run goes on.
                converted = isinstance(exc, ConversionError)
                say(f"  conversion FAILED: {exc}" if converted else f"  FAILED: {_one_line(exc)}")
                (failed if converted else errors).append(config.id)
                record = error_record(config, exc, traceback.format_exc(), args.zoo, profile.name)
                atomic_write(run_dir / "records" / f"{config.id}.json", json.dumps(record))
                records.append(record)
                continue
            # Not gated here (pytest -m pc gates): the record says so rather than claiming a pass.
            record.update(gate={}, verdicts=[], passed=None)
            atomic_write(run_dir / "records" / f"{config.id}.json", json.dumps(record))
            records.append(record)
    finally:
        study.close()
    if not records:
        say("nothing ran")
        return 1
    if len(errors) == len(records):  # every case failed: no empty report, one line saying why
        first = next(r["error"] for r in records if r.get("error"))
        print(f"error: every configuration failed ({len(errors)}; records in {run_dir / 'records'}); the first: "
              f"{_one_line(first)}", file=sys.stderr)
        return 1

    from harness.report import writer

    run_info = {"run": run_id, "zoo": args.zoo, "profile": profile.to_dict(), "thresholds": str(thresholds),
                **({"user": user.describe()} if user is not None else {}),
                "gated": False, "platforms": platforms, "executor": executor_info(run_dir), "command": "python -m harness " + " ".join(argv or sys.argv[1:])}
    out = writer.write_report(records, run_info, run_dir)
    print(summary_table([r for r in records if not r.get("error")]))
    if failed:
        print(f"{len(failed)} configurations did not convert (the report lists each with the converter's message): "
              + ", ".join(failed[:3]) + ("..." if len(failed) > 3 else ""))
    if errors:
        print(f"{len(errors)} configurations failed (the report lists each under Errors): "
              + ", ".join(errors[:3]) + ("..." if len(errors) > 3 else ""))
    print(f"{len(records)} configurations in {time.perf_counter() - start:.1f} s"
          + (f"; {len(skipped)} skipped ({', '.join(skipped[:3])}{'...' if len(skipped) > 3 else ''})" if skipped else ""))
    print(f"report: {out.report_html}")
    print(f"records: {run_dir / 'records'}")
    zoo_options = "" if args.zoo == "mini" and profile.name == ZOO_PROFILES["mini"] else \
        f" {user.command_options()}" if user is not None else f" --zoo {args.zoo} --profile {profile.name}"
    print(f"thresholds: {thresholds} " + (f"exists; `pytest -m pc{zoo_options}` gates these configurations on it "
                                           "(not done here)" if thresholds.is_file() else
                                           f"does not exist; write it with `pytest -m pc{zoo_options} --write-thresholds`"))
    return 1 if failed or errors else 0


def summary_table(records) -> str:
    """One line per configuration: id, n, success rate, PC success rate, clean accuracy, agreement with PC."""
    width = max(len("configuration"), *(len(r["configuration"]) for r in records))
    lines = [f"{'configuration':{width}} {'n':>5} {'success':>8} {'PC succ.':>8} {'clean acc':>9} {'agr. PC':>8}"]
    for r in records:
        lines.append(f"{r['configuration']:{width}} {r['n_samples']:>5} {_pct(r['success_rate']):>8} "
                     f"{_pct(r['pc_success_rate']):>8} {_pct(r['clean_accuracy']):>9} {_pct(r['agreement_with_pc']):>8}")
    return "\n".join(lines)


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


if __name__ == "__main__":
    sys.exit(main())
