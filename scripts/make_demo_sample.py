"""Rebuild the demo samples shipped in sifternet/data from ../shared/data.

Usage: python scripts/make_demo_sample.py [SHARED_DATA_DIR]
Takes the first images of every class, in data-set order, and keeps their original
indices so that every result on the sample can be traced back to the full test set.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

SAMPLES = {"mnist": ("mnist_test.npz", 60), "gtsrb": ("gtsrb.npz", 12)}


def main() -> None:
    source = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parents[1] / ".." / "shared" / "data")
    target = Path(__file__).parents[1] / "sifternet" / "data"
    for name, (filename, per_class) in SAMPLES.items():
        with np.load(source / filename, allow_pickle=False) as data:
            labels = data["labels"]
            index = np.sort(
                np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in np.unique(labels)])
            )
            np.savez_compressed(
                target / f"{name}_sample.npz",
                images=data["images"][index],
                labels=labels[index],
                source_index=index,
            )
        print(f"{name}: {len(index)} images -> {(target / f'{name}_sample.npz').stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
