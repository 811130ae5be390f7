"""The main job on the embedded default: ``python -m harness``.

Loads the mini zoo in both frameworks, measures each model's clean accuracy on the
committed Fashion-MNIST test subset, and draws the evaluation samples and the
calibration set the rest of the suite uses.
"""

from __future__ import annotations

import argparse
import sys
import time

import harness
from harness.attack.profiles import ProfileError, load_profile
from harness.data import samples, sources
from harness.data.dataset import DataError
from harness.zoo import registry


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", default="mini", choices=registry.ZOOS)
    parser.add_argument("--profile", default=None,
                        help="profile in profiles.toml giving the counts and seed (default: the zoo's, as in pytest)")
    parser.add_argument("--imagenet-dir", default=None, help="ImageNet validation folder (default: $IMAGENET_DIR)")
    parser.add_argument("--samples", type=int, default=None, help="evaluation samples to draw (default: the profile's)")
    parser.add_argument("--calibration", type=int, default=None, help="calibration images (default: the profile's)")
    parser.add_argument("--seed", type=int, default=None, help="draw seed (default: the profile's)")
    args = parser.parse_args(argv)
    from harness.suite import ZOO_PROFILES, imagenet_dir_misuse

    misuse = imagenet_dir_misuse(args.zoo, args.imagenet_dir)
    if misuse:
        parser.error(misuse)
    try:
        profile = load_profile(args.profile or ZOO_PROFILES[args.zoo])
    except ProfileError as exc:
        parser.error(str(exc))
    args.samples = profile.samples if args.samples is None else args.samples
    args.calibration = profile.calibration if args.calibration is None else args.calibration
    args.seed = profile.seed if args.seed is None else args.seed
    try:
        source = sources.source_for(args.zoo, args.imagenet_dir)
    except DataError as exc:  # no folder named, or one that is missing, empty or unlabelled
        parser.error(str(exc))
    missing = registry.missing_weights(args.zoo)
    if missing:
        parser.error("\n".join(missing))

    print(f"harness {harness.__version__}: zoo {args.zoo}, profile {profile.name}, "
          f"{len(source.candidate_ids())} candidate {source.name}/{source.split} images")
    models, hits = [], {}
    print(f"{'model':34} {'params':>10} {'clean top-1':>11} {'load s':>7}")
    for framework, name in registry.combinations(args.zoo):
        start = time.perf_counter()
        model = registry.load(args.zoo, framework, name)
        seconds = time.perf_counter() - start
        models.append(model)
        hits[model.spec.id] = source.correct(model)
        accuracy = float(hits[model.spec.id].mean())
        print(f"{model.spec.id:34} {registry.parameter_count(model):>10} {accuracy:>11.4f} {seconds:>7.2f}", flush=True)
    selection = samples.select_from_hits(source.name, source.split, source.candidate_ids(),
                                         hits, args.samples, args.seed)
    calibration = source.calibration(models[0].spec, args.calibration, args.seed, selection)
    print(f"{selection.pool_size} of {selection.candidates} images are classified correctly by all "
          f"{len(models)} models; drew {len(selection.ids)} evaluation samples (seed {args.seed}), "
          f"first ids {selection.ids[:5].tolist()}; {len(calibration)} calibration images from "
          f"{calibration.name}/{calibration.split}")
    print("next: `pytest -m pc` runs the study and writes reports/latest/report.html "
          "(`make test` runs it with every unit test)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
