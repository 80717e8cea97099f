"""End to end on the GTSRB test set: local_mean k = 11 + W1's recall + merge,
beside the binarisation alone and a per-image OpenCV binarisation baseline."""

from __future__ import annotations

import numpy as np
import pytest
from baselines import per_image_local_mean
from common import record

from sifternet import SifterNet, select_seeds
from sifternet.binarize import binarize


@pytest.mark.parametrize("threads", [1, 2])
def test_purify_gtsrb(benchmark, gtsrb, gtsrb_purifier, threads):
    images, _ = gtsrb
    benchmark.group = "purify GTSRB"
    out = benchmark.pedantic(
        gtsrb_purifier.purify, args=(images,), kwargs={"num_threads": threads}, rounds=5, warmup_rounds=1
    )
    assert np.array_equal(out[100:110], gtsrb_purifier.purify(images[100:110], index_offset=100))
    record(benchmark, f"purify end to end, {threads} thread(s)", len(images), "purify")


def test_binarise_gtsrb(benchmark, gtsrb, gtsrb_purifier):
    images, _ = gtsrb
    benchmark.group = "purify GTSRB"
    benchmark.pedantic(gtsrb_purifier.binarize, args=(images,), rounds=5, warmup_rounds=1)
    record(benchmark, "binarise only (to 0/255 pixels)", len(images), "purify")


def test_binarise_per_image_opencv_baseline(benchmark, gtsrb):
    images, _ = gtsrb
    benchmark.group = "binarise GTSRB"
    out = benchmark.pedantic(per_image_local_mean, args=(images, 11), rounds=2)
    assert np.array_equal(out, binarize(images, "local_mean", block_size=11))
    record(benchmark, "baseline: per-image OpenCV", len(images), "binarise")


def test_binarise_batched(benchmark, gtsrb):
    images, _ = gtsrb
    benchmark.group = "binarise GTSRB"
    benchmark.pedantic(
        binarize, args=(images, "local_mean"), kwargs={"block_size": 11}, rounds=5, warmup_rounds=1
    )
    record(benchmark, "sifternet batched local_mean", len(images), "binarise")


@pytest.mark.parametrize(
    ("name", "per_class", "options"),
    [
        ("preset (one sweep)", 2, {}),
        ("preset, 10 seeds/class", 10, {}),
        ("Otsu variant (agreement 0.5)", 2, {"binarize": "otsu", "agreement": 0.5}),
        ("preset to convergence", 2, {"max_sweeps": 100}),
    ],
)
def test_purify_gtsrb_repair(benchmark, gtsrb, name, per_class, options):
    """The highlights preset (one sweep, agreement gate, inpaint) and variants."""
    images, labels = gtsrb
    seeds, seed_labels = select_seeds(images, labels, per_class, seed=0)
    purifier = SifterNet.repairing("highlights", num_threads=2, **options).fit(seeds, seed_labels)
    benchmark.group = "purify GTSRB"
    benchmark.pedantic(purifier.purify, args=(images,), rounds=3, warmup_rounds=1)
    record(benchmark, f"highlights {name}, 2 threads", len(images), "purify")


def test_purify_scored_gtsrb_repair(benchmark, gtsrb):
    """The highlights preset at 10 seeds/class with its suspicion score (the flipped pixels
    and the densest 3x3 square): against "preset, 10 seeds/class" of the same run."""
    images, labels = gtsrb
    purifier = SifterNet.repairing("highlights", num_threads=2).fit(*select_seeds(images, labels, 10, seed=0))
    benchmark.group = "purify GTSRB"
    benchmark.pedantic(purifier.purify_scored, args=(images,), rounds=3, warmup_rounds=1)
    record(benchmark, "highlights preset, 10 seeds/class, scored, 2 threads", len(images), "purify")


@pytest.mark.parametrize("scored", [False, True], ids=["purify", "purify_scored"])
@pytest.mark.parametrize("all_seed_levels", [(0.9,), ()], ids=["default", "no-all-seed-vote"])
def test_purify_gtsrb_default_repair(benchmark, gtsrb, all_seed_levels, scored):
    """The default repair (``SifterNet.repairing()``, a NearestSeedRepair) and the same
    without its all-seed vote, at 10 seeds/class, without and with the score: against
    "preset, 10 seeds/class" and the paper mode of the same run."""
    images, labels = gtsrb
    seeds = select_seeds(images, labels, 10, seed=0)
    purifier = SifterNet.repairing(num_threads=2, all_seed_levels=all_seed_levels).fit(*seeds)
    benchmark.group = "purify GTSRB"
    run = purifier.purify_scored if scored else purifier.purify
    benchmark.pedantic(run, args=(images,), rounds=3, warmup_rounds=1)
    what = ("default repair" if all_seed_levels else "no all-seed vote") + (", scored" if scored else "")
    record(benchmark, f"{what}, 10 seeds/class, 2 threads", len(images), "purify")
