"""Write the committed Fashion-MNIST subset from the full set (run once; seeded).

    python -m harness.data.make_fixtures [--test 5000] [--train 1000]

The test subset is the embedded default's evaluation pool; the train subset is the
pool calibration sets are drawn from, so calibration never overlaps evaluation.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from harness.data import fashion_mnist as fm

SEED = 20261125


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test", type=int, default=5000, help="test images to keep")
    parser.add_argument("--train", type=int, default=1000, help="train images to keep (calibration pool)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(SEED)
    manifest = {
        "dataset": "Fashion-MNIST (Zalando SE, MIT licence); see LICENSE",
        "seed": SEED,
        "source_sha256": fm.OFFICIAL_SHA256,
        "splits": {},
    }
    for split, count in (("test", args.test), ("train", args.train)):
        images_name, labels_name = fm.OFFICIAL_FILES[split]
        gray = fm.read_idx(fm.DEBIAN_DIR / images_name)
        labels = fm.read_idx(fm.DEBIAN_DIR / labels_name)
        ids = np.sort(rng.choice(len(gray), size=count, replace=False))
        files = {}
        for key, name, array in (("images", images_name, gray), ("labels", labels_name, labels)):
            out = fm.FIXTURE_DIR / name.replace("-idx", "-subset-idx")
            fm.write_idx(out, array[ids])
            files[key] = {"file": out.name, "sha256": fm.sha256_of(out)}
        manifest["splits"][split] = {**files, "count": count, "ids": ids.tolist()}
        print(f"{split}: kept {count} of {len(gray)} images")
    (fm.FIXTURE_DIR / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    main()
