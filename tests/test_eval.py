"""Evaluation: attacks, metrics, poisoning, controls, and `evaluate` end to end."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from sifternet import SifterNet
from sifternet import reference as ref
from sifternet.binarize import binarize
from sifternet.eval import attacks
from sifternet.eval import evaluate as ev
from sifternet.eval.defenses import DEFENSES, MODEL_QUERYING, erase_visited, ifmv, seed_consensus
from sifternet.eval.detectors import Detector
from sifternet.eval.metrics import accuracy, attack_success_rate, robust_accuracy, roc_auc
from sifternet.eval.models import CallableClassifier

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
HAS_TORCH = importlib.util.find_spec("torch") is not None


def batch(*shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


# -- attacks -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("position", "rows", "cols"),
    [
        ("bottom_right", slice(7, 10), slice(9, 12)),
        ("top_left", slice(0, 3), slice(0, 3)),
        ("interior", slice(3, 6), slice(5, 8)),
        ("centre", slice(3, 6), slice(4, 7)),
        ((2, 4), slice(2, 5), slice(4, 7)),
    ],
)
def test_badnet_changes_exactly_the_patch(position, rows, cols):
    x = batch(4, 10, 12, 3) // 2  # no pixel is 255 yet
    y = attacks.badnet(x, position=position)
    changed = np.zeros(x.shape[1:3], bool)
    changed[rows, cols] = True
    assert (y[:, changed] == 255).all()
    np.testing.assert_array_equal(y[:, ~changed], x[:, ~changed])
    assert x.max() < 255  # input untouched


@pytest.mark.parametrize("size", [3, 4, 5, 6])
@pytest.mark.parametrize(
    ("position", "origin"),
    [
        ("centre", lambda n: ((28 - n) // 2,) * 2),
        ("interior", lambda n: (24 - n,) * 2),
        ("top_right", lambda n: (0, 28 - n)),
    ],
)
def test_badnet_sizes_three_to_six_at_each_named_position(size, position, origin):
    y = attacks.badnet(np.zeros((2, 28, 28), np.uint8), size=size, position=position, value=7)
    want = np.zeros((28, 28), np.uint8)
    row, col = origin(size)
    want[row : row + size, col : col + size] = 7
    np.testing.assert_array_equal(y, np.stack([want, want]))


def test_badnet_random_position_is_drawn_per_image_index_and_seed():
    y = attacks.badnet(
        np.zeros((6, 9, 8), np.uint8), size=4, position="random", seed=3, indices=np.arange(10, 16)
    )
    for image, index in zip(y, range(10, 16)):
        row, col = np.random.default_rng([3, index]).integers(0, (9 - 4 + 1, 8 - 4 + 1))
        want = np.zeros((9, 8), np.uint8)
        want[row : row + 4, col : col + 4] = 255
        np.testing.assert_array_equal(image, want)


def test_badnet_random_position_does_not_depend_on_the_batch():
    x = batch(12, 10, 10, 3)
    whole = attacks.badnet(x, position="random", seed=5)
    default = attacks.badnet(x[:4], position="random", seed=5)  # indices 0 .. 3
    tail = attacks.badnet(x[4:], position="random", seed=5, indices=np.arange(4, 12))
    np.testing.assert_array_equal(np.concatenate([default, tail]), whole)


def test_badnet_random_position_refuses_indices_of_another_length():
    with pytest.raises(ValueError, match=r"indices: expected one per image \(3\), got 2"):
        attacks.badnet(np.zeros((3, 8, 8), np.uint8), position="random", indices=np.arange(2))


def test_badnet_random_position_differs_per_image():
    y = attacks.badnet(np.zeros((50, 8, 8), np.uint8), position="random", value=200, seed=1)
    assert ((y == 200).sum(axis=(1, 2)) == 9).all()  # one whole 3x3 patch per image
    assert len({tuple(np.argwhere(im)[0]) for im in y}) > 5


def test_badnet_random_position_follows_the_seed():
    x = np.zeros((50, 8, 8), np.uint8)
    first = attacks.badnet(x, position="random", seed=1)
    np.testing.assert_array_equal(attacks.badnet(x, position="random", seed=1), first)
    assert not np.array_equal(attacks.badnet(x, position="random", seed=2), first)


def test_badnet_colour_per_channel():
    colour = attacks.badnet(np.zeros((1, 5, 5, 3), np.uint8), value=(255, 0, 10))
    np.testing.assert_array_equal(colour[0, 2:, 2:], np.broadcast_to([255, 0, 10], (3, 3, 3)))


def test_badnet_grey_images_take_a_colour_with_equal_levels():
    y = attacks.badnet(np.zeros((1, 5, 5), np.uint8), value=(90, 90, 90))
    np.testing.assert_array_equal(y, attacks.badnet(np.zeros((1, 5, 5), np.uint8), value=90))
    assert y[0, 2:, 2:].tolist() == [[90] * 3] * 3 and y.sum() == 9 * 90


def test_badnet_one_level_on_colour_images_fills_every_channel():
    y = attacks.badnet(np.zeros((1, 5, 5, 3), np.uint8), value=160, position="top_left")
    np.testing.assert_array_equal(y[0, :3, :3], np.full((3, 3, 3), 160))
    assert y.sum() == 27 * 160


@pytest.mark.parametrize("shape", [(1, 6, 6), (1, 6, 6, 1)])
def test_badnet_grey_images_refuse_a_colour(shape):
    with pytest.raises(
        ValueError,
        match=r"value: expected one level or R = G = B for grey images, got the colour \(30, 200, 200\)",
    ):
        attacks.badnet(np.zeros(shape, np.uint8), value=(30, 200, 200))


def test_badnet_colour_of_the_wrong_channel_count_is_refused():
    with pytest.raises(
        ValueError, match=r"value: expected one level or 4 \(one per channel\), got \(1, 2, 3\)"
    ):
        attacks.badnet(np.zeros((1, 6, 6, 4), np.uint8), value=(1, 2, 3))


def test_badnet_random_pattern_is_a_fixed_random_colour_per_pixel():
    x = np.zeros((3, 8, 8, 3), np.uint8)
    y = attacks.badnet(x, size=4, pattern="random", pattern_seed=7, position=(1, 2), value=0)
    want = np.random.default_rng(7).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    for image in y:  # the same patch on every image, nothing else changed
        np.testing.assert_array_equal(image[1:5, 2:6], want)
        image[1:5, 2:6] = 0
    assert not y.any()
    other = attacks.badnet(x, size=4, pattern="random", pattern_seed=8, position=(1, 2))
    assert not np.array_equal(
        other, attacks.badnet(x, size=4, pattern="random", pattern_seed=7, position=(1, 2))
    )


def test_badnet_random_checkerboard_blacks_out_the_odd_cells():
    y = attacks.badnet(np.zeros((1, 6, 6), np.uint8), size=4, pattern="random-checkerboard", pattern_seed=2)
    want = np.random.default_rng(2).integers(0, 256, (4, 4), dtype=np.uint8)
    want[(np.add.outer(np.arange(4), np.arange(4)) % 2).astype(bool)] = 0
    np.testing.assert_array_equal(y[0, 2:, 2:], want)
    assert not y[0, :2].any() and not y[0, :, :2].any()


def test_badnet_checkerboard_alternates_colour_and_black():
    board = attacks.badnet(np.zeros((1, 5, 5), np.uint8), size=2, pattern="checkerboard")[0]
    np.testing.assert_array_equal(board[3:, 3:], [[255, 0], [0, 255]])


@pytest.mark.parametrize(
    ("images", "options", "error", "message"),
    [
        (np.zeros((1, 8, 8), np.uint8), {"position": "middle"}, ValueError, "position: expected one of"),
        (
            np.zeros((1, 8, 8), np.uint8),
            {"position": (7, 7)},
            ValueError,
            r"patch at \(7, 7\) leaves the 8x8 image",
        ),
        (
            np.zeros((1, 8, 8), np.uint8),
            {"value": 300},
            ValueError,
            r"value: expected levels in 0 \.\. 255, got 300",
        ),
        (np.zeros((1, 8, 8), np.uint8), {"pattern": "stripes"}, ValueError, "pattern: expected one of"),
        (np.zeros((1, 8, 8), np.uint8), {"size": 9}, ValueError, r"size: expected 1 \.\. 8, got 9"),
        (
            np.zeros((1, 8, 8), np.uint8),
            {"size": 5, "position": "interior"},
            ValueError,
            r"position: expected a patch side of at most 4 for 'interior' in a 8x8 image, got 5",
        ),
        (
            np.zeros((1, 8, 8), np.uint8),
            {"value": "white"},
            ValueError,
            r"value: expected a level or \(R, G, B\) of integers in 0 \.\. 255, got 'white'",
        ),
        (np.zeros((1, 8, 8)), {}, TypeError, "images: expected dtype uint8, got float64"),
    ],
)
def test_badnet_refuses_bad_input(images, options, error, message):
    with pytest.raises(error, match=message):
        attacks.badnet(images, **options)


def test_blended_follows_its_formula():
    x = batch(3, 6, 8, 3)
    pattern = batch(6, 8, 3, seed=5)
    y = attacks.blended(x, alpha=0.25, pattern=pattern)
    np.testing.assert_array_equal(y, np.rint(0.75 * x + 0.25 * pattern.astype(float)).astype(np.uint8))


def test_blended_with_alpha_zero_is_the_identity():
    x = batch(3, 6, 8, 3)
    np.testing.assert_array_equal(attacks.blended(x, alpha=0.0), x)


def test_sig_follows_its_formula():
    x = batch(3, 6, 8, 3)
    s = attacks.sig(x, delta=40, frequency=2)
    j = np.arange(8)
    wave = 40 * np.sin(2 * np.pi * j * 2 / 8)
    want = np.clip(np.rint(x + wave[None, None, :, None]), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(s, want)


def test_wanet_of_strength_zero_is_the_identity():
    x = batch(2, 32, 32, 3)
    np.testing.assert_array_equal(attacks.wanet(x, strength=0.0), x)


def test_wanet_follows_the_seed():
    x = batch(2, 32, 32, 3)
    a = attacks.wanet(x, seed=0)
    np.testing.assert_array_equal(attacks.wanet(x, seed=0), a)
    assert not np.array_equal(a, attacks.wanet(x, seed=1))


def test_wanet_warp_moves_pixels_by_under_two():
    map_x, map_y = attacks.warp_field(32, 32)
    shift = np.hypot(map_x - np.arange(32), map_y - np.arange(32)[:, None])
    assert 0 < shift.max() < 2  # a warp of well under two pixels at k = 4, s = 0.5


def test_unknown_attack_is_refused():
    with pytest.raises(ValueError, match="attack: expected one of .*'trojannn'"):
        attacks.make_attack("trojannn")


# -- metrics -------------------------------------------------------------------------

LABELS = np.array([0, 0, 1, 2, 3])
TRIGGERED_PREDICTIONS = np.array([0, 1, 0, 2, 0])


def test_attack_success_rate_counts_non_target_images_only():
    assert attack_success_rate(TRIGGERED_PREDICTIONS, LABELS, 0) == pytest.approx(2 / 3)


def test_robust_accuracy_counts_non_target_images_only():
    assert robust_accuracy(TRIGGERED_PREDICTIONS, LABELS, 0) == pytest.approx(1 / 3)


def test_accuracy_by_hand():
    assert accuracy(np.array([0, 0, 1, 1, 3]), LABELS) == pytest.approx(0.8)


@pytest.mark.parametrize(
    ("clean", "poisoned", "auc"),
    # 6 pairs: 0.8 beats all 3 clean scores; 0.4 beats 0.1 and 0.35 and ties 0.4.
    [
        ([0.1, 0.4, 0.35], [0.8, 0.4], 5.5 / 6),
        ([1, 1], [1], 0.5),
        ([0, 1], [2, 3], 1.0),
        ([2, 3], [0, 1], 0.0),
    ],
)
def test_roc_auc_by_hand(clean, poisoned, auc):
    assert roc_auc(clean, poisoned) == pytest.approx(auc)


@pytest.mark.parametrize(
    "metric", [accuracy, lambda p, y: attack_success_rate(p, y, 0), lambda p, y: robust_accuracy(p, y, 0)]
)
def test_metrics_refuse_arrays_of_two_lengths(metric):
    with pytest.raises(ValueError, match=r"expected two 1-D arrays of one length, got \(3,\) and \(4,\)"):
        metric(np.zeros(3), np.zeros(4))


def test_roc_auc_refuses_an_empty_side():
    with pytest.raises(ValueError, match="roc_auc: needs at least one clean and one poisoned score"):
        roc_auc([], [0.5])


# -- split, seeds, poisoning ---------------------------------------------------------


def test_split_parts_are_disjoint_and_cover_the_data():
    split = ev.split_data(100, 0.7, seed=3)
    assert len(split.train) == 70 and len(split.evaluation) == 30
    assert not np.intersect1d(split.train, split.evaluation).size
    np.testing.assert_array_equal(np.union1d(split.train, split.evaluation), np.arange(100))


def test_split_is_deterministic_per_seed():
    split = ev.split_data(100, 0.7, seed=3)
    np.testing.assert_array_equal(ev.split_data(100, 0.7, seed=3).train, split.train)
    assert not np.array_equal(ev.split_data(100, 0.7, seed=4).train, split.train)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.5, 1.5])
def test_split_refuses_a_fraction_outside_zero_one(fraction):
    with pytest.raises(ValueError, match=rf"train_fraction: expected a number in \(0, 1\), got {fraction}"):
        ev.split_data(100, fraction, seed=0)


def identifiable_images(count: int) -> np.ndarray:
    """uint8 images (count, 1, 2) whose two pixels spell the image's own index."""
    index = np.arange(count)
    return np.stack([index // 256, index % 256], axis=1).astype(np.uint8).reshape(count, 1, 2)


def test_seeds_come_from_the_training_split_only():
    """Drawing seeds from the evaluation part (or the whole set) would let the purifier
    memorise the images it is then measured on."""
    labels = np.repeat(np.arange(3), 100)
    images = identifiable_images(300)
    split = ev.split_data(300, 0.5, seed=0)
    seeds, seed_labels = ev.seeds_from(images, labels, split, 20, seed=0)
    drawn = seeds[:, 0, 0].astype(int) * 256 + seeds[:, 0, 1]
    assert len(np.unique(drawn)) == 60
    assert np.isin(drawn, split.train).all(), (
        f"seeds outside the training split: {np.setdiff1d(drawn, split.train)}"
    )
    assert not np.isin(drawn, split.evaluation).any(), "seeds drawn from the evaluation split"
    np.testing.assert_array_equal(seed_labels, labels[drawn])
    np.testing.assert_array_equal(np.bincount(seed_labels), [20, 20, 20])


POISON_LABELS = np.repeat(np.arange(5), 20)


def test_badnet_poisoning_relabels_triggered_non_target_images():
    images = np.zeros((100, 6, 6), np.uint8)
    px, py, chosen = ev.poison(images, POISON_LABELS, attacks.make_attack("badnet"), 0, seed=1)
    assert len(chosen) == 10 and (POISON_LABELS[chosen] != 0).all() and (py[chosen] == 0).all()
    assert (px[chosen][:, -1, -1] == 255).all()
    others = np.setdiff1d(np.arange(100), chosen)
    assert (px[others] == 0).all() and np.array_equal(py[others], POISON_LABELS[others])


def test_sig_poisoning_is_clean_label():
    images = np.zeros((100, 6, 6), np.uint8)
    _, labels, chosen = ev.poison(images, POISON_LABELS, attacks.make_attack("sig"), 0, seed=1)
    assert len(chosen) and (POISON_LABELS[chosen] == 0).all()
    np.testing.assert_array_equal(labels, POISON_LABELS)


# -- controls and defenses -----------------------------------------------------------


@pytest.fixture(scope="module")
def purifier():
    rng = np.random.default_rng(0)
    return SifterNet(binarize="global", steps=150, seed=2).fit(
        rng.integers(0, 256, (3, 10, 10), dtype=np.uint8)
    )


def test_erase_visited_erases_exactly_the_visited_pixels(purifier):
    images = batch(4, 10, 10, seed=9)
    indices = np.array([5, 6, 7, 8])
    out = erase_visited(purifier).purify(images, indices)
    states = binarize(images, "global")
    for row, index in zip(range(4), indices):
        stream = ref.Stream(ref.stream_key(2, int(index), 1, 0))
        visited = {stream.below(100) for _ in range(150)}
        want = states[row].reshape(-1).copy()
        want[list(visited)] = -1
        np.testing.assert_array_equal(out[row].reshape(-1), (want > 0) * 255)


def test_seed_consensus_masks_pixels_dark_in_every_seed(purifier):
    images = np.full((2, 10, 10), 255, np.uint8)
    out = seed_consensus(purifier).purify(images, np.arange(2))
    dark_everywhere = np.all(purifier.networks[0].patterns < 0, axis=0).reshape(10, 10)
    assert (out[:, dark_everywhere] == 0).all() and (out[:, ~dark_everywhere] == 255).all()


class Brightness:
    """Label 1 for brighter-than-mid images, else 0."""

    def predict(self, x):
        return (x.reshape(len(x), -1).mean(axis=1) > 128).astype(int)


class Cycle:
    """Answers ``labels[k % len(labels)]`` for every image on its k-th call."""

    def __init__(self, labels):
        self.labels, self.calls = labels, 0

    def predict(self, x):
        label = self.labels[self.calls % len(self.labels)]
        self.calls += 1
        return np.full(len(x), label)


IFMV_IMAGES = np.full((4, 6, 6), 128, np.uint8)
IFMV_INDICES = np.array([3, 4, 5, 6])


def test_ifmv_votes_one_valid_label_per_image():
    votes = ifmv(copies=4, sigma=0.2, seed=1).classify(Brightness(), IFMV_IMAGES, IFMV_INDICES)
    assert votes.shape == (4,) and set(votes) <= {0, 1}


def test_ifmv_votes_do_not_depend_on_the_batch():
    defense = ifmv(copies=4, sigma=0.2, seed=1)
    votes = defense.classify(Brightness(), IFMV_IMAGES, IFMV_INDICES)
    np.testing.assert_array_equal(
        defense.classify(Brightness(), IFMV_IMAGES[2:], IFMV_INDICES[2:]), votes[2:]
    )


def test_ifmv_copies_do_not_depend_on_the_batch():
    defense = ifmv(copies=4, sigma=0.2, seed=1)
    one_by_one = [defense.purify(IFMV_IMAGES[k : k + 1], IFMV_INDICES[k : k + 1])[0] for k in range(4)]
    np.testing.assert_array_equal(np.stack(one_by_one), defense.purify(IFMV_IMAGES, IFMV_INDICES))


def test_ifmv_passes_a_unanimous_model_through():
    constant = type("Constant", (), {"predict": lambda self, x: np.array([2, 5] * (len(x) // 2))})()
    np.testing.assert_array_equal(ifmv(copies=4).classify(constant, IFMV_IMAGES, IFMV_INDICES), [2, 5, 2, 5])


def test_ifmv_majority_wins():
    np.testing.assert_array_equal(
        ifmv(copies=5).classify(Cycle([4, 1, 4, 1, 4]), IFMV_IMAGES, IFMV_INDICES), [4] * 4
    )


def test_ifmv_tie_goes_to_the_smallest_label():
    # copies 0, 2 vote 3; copies 1, 3 vote 1: a 2-2 tie
    np.testing.assert_array_equal(
        ifmv(copies=4).classify(Cycle([3, 1]), IFMV_IMAGES, IFMV_INDICES), [1, 1, 1, 1]
    )


def test_model_querying_names_exactly_the_defenses_that_classify():
    seeds = (np.full((2, 5, 5), 100, np.uint8), np.arange(2))
    fitted = SifterNet(binarize="global", steps=10).fit(seeds[0])
    built = ev.default_defenses(fitted, list(DEFENSES), seeds)
    assert {d.name for d in built if d.classify is not None} == MODEL_QUERYING


def test_repair_both_removes_a_white_and_a_black_patch_one_pass_each():
    rng = np.random.default_rng(3)
    plain = rng.integers(90, 110, (12, 12, 12, 3), dtype=np.uint8)
    seeds = (plain[:4], np.arange(4))
    images = plain[4:].copy()
    images[:, 1:4, 1:4] = 255
    images[:, 7:10, 7:10] = 0
    purifier = SifterNet(binarize="global", steps=10).fit(seeds[0])
    names = ["sifternet-repair", "sifternet-repair-dark", "sifternet-repair-both"]
    bright, dark, both = (
        d.purify(images, np.arange(4, 12)) for d in ev.default_defenses(purifier, names, seeds)
    )
    assert bright.max() < 243 and bright.min() == 0  # the white patch filled, the black one kept
    assert dark.min() > 12 and dark.max() == 255
    assert 12 < both.min() and both.max() < 243
    np.testing.assert_array_equal(both[:, 7:10, 7:10], dark[:, 7:10, 7:10])


def test_default_defenses_refuses_unknown_names(purifier):
    seeds = (np.zeros((1, 10, 10), np.uint8), np.zeros(1, int))
    with pytest.raises(ValueError, match=r"defenses: unknown \['strip'\]; expected some of"):
        ev.default_defenses(purifier, ["none", "strip"], seeds)


def test_defenses_include_the_controls():
    assert set(DEFENSES) >= {"none", "sifternet", "binarise-only", "erase-visited", "seed-consensus"}


# -- evaluate end to end, on a black box -----------------------------------------------


@pytest.fixture(scope="module")
def black_box_run():
    """A 'backdoored' black box: predicts 0 when the bottom-right pixel is white, else the
    true class encoded in the top-left pixel. Binarising keeps the trigger (ASR 100 %)."""
    labels = np.repeat(np.arange(3), 20)
    images = np.zeros((60, 12, 12), np.uint8)
    images[:, 0, 0] = labels * 100 + 20

    def predict(x):
        return np.where(x[:, -1, -1] > 127, 0, np.minimum(x[:, 0, 0] // 100, 2))

    split = ev.split_data(60, 0.5, seed=0)
    seeds, seed_labels = ev.seeds_from(images, labels, split, 2, seed=0)
    purifier = SifterNet(binarize="global", steps=50).fit(seeds)
    defenses = ev.default_defenses(
        purifier, ["none", "binarise-only", "median-3x3", "sifternet-repair", "ifmv"], (seeds, seed_labels)
    )
    report, outputs, triggered = ev.evaluate(
        images,
        labels,
        attack=attacks.make_attack("badnet"),
        model=CallableClassifier(predict),
        purifier=purifier,
        defenses=defenses,
        split=split,
        progress=False,
        settings={
            "data": "toy.npz",
            "attack": "badnet",
            "attack_params": {},
            "n_train": 30,
            "n_poisoned": 0,
            "n_seeds": 6,
        },
        detectors=[
            Detector("corner", lambda x, indices: x[:, -1, -1].astype(float), "corner brightness"),
            Detector("blind", lambda x, indices: np.zeros(len(x)), "constant score"),
        ],
    )
    return images, split, report, outputs, triggered


def test_evaluate_scores_the_detectors(black_box_run):
    report = black_box_run[2]
    assert {d.detector: d.auc for d in report.detectors} == {"corner": 1.0, "blind": 0.5}


def test_evaluate_without_defense_is_accurate_and_backdoored(black_box_run):
    (none,) = [r for r in black_box_run[2].rows if r.defense == "none"]
    assert (none.acc, none.asr, none.ra) == (1.0, 1.0, 0.0)


# binarising keeps white white; OpenCV's median replicates the border, so a 3x3 patch in
# the very corner survives it
@pytest.mark.parametrize("defense", ["binarise-only", "median-3x3"])
def test_evaluate_defenses_that_keep_the_corner_trigger(black_box_run, defense):
    (row,) = [r for r in black_box_run[2].rows if r.defense == defense]
    assert row.asr == 1.0


def test_evaluate_has_a_row_per_defense_in_order(black_box_run):
    report = black_box_run[2]
    assert [r.defense for r in report.rows] == [
        "none",
        "binarise-only",
        "median-3x3",
        "sifternet-repair",
        "ifmv",
    ]


def test_evaluate_triggers_the_evaluation_part(black_box_run):
    images, split, _, _, triggered = black_box_run
    np.testing.assert_array_equal(triggered, attacks.badnet(images[split.evaluation]))


@pytest.fixture
def written(black_box_run, tmp_path):
    images, split, report, outputs, triggered = black_box_run
    paths = ev.write_report(report, outputs, images[split.evaluation], triggered, tmp_path)
    return paths, tmp_path


def test_write_report_writes_the_report_files(written):
    paths, folder = written
    assert {p.name for p in paths} >= {"report.md", "report.json", "examples.png"}
    assert all(p.parent == folder and p.exists() for p in paths)


@pytest.mark.parametrize("line", ["| binarise-only |", "| corner | 1.0000 |", "TEST splits"])
def test_write_report_markdown(written, line):
    assert line in (written[1] / "report.md").read_text()


def test_write_report_json(written):
    rows = json.loads((written[1] / "report.json").read_text())["rows"]
    assert [r["defense"] for r in rows][0] == "none"


def test_write_report_refuses_to_overwrite(black_box_run, written):
    images, _, report, outputs, _ = black_box_run
    with pytest.raises(FileExistsError, match=r"report\.md: already exists \(pass overwrite=True"):
        ev.write_report(report, outputs, images[:1], images[:1], written[1])


def test_write_report_without_matplotlib_removes_a_stale_chart(black_box_run, written, monkeypatch):
    images, _, report, outputs, _ = black_box_run
    folder = written[1]
    (folder / "metrics.png").write_bytes(b"an older run's chart")
    monkeypatch.setattr(ev, "_bar_chart", lambda report, path: None)  # as without matplotlib
    ev.write_report(report, outputs, images[:1], images[:1], folder, overwrite=True)
    assert not (folder / "metrics.png").exists()


# -- the CLI on real data --------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist_cli(tmp_path_factory):
    if not HAS_TORCH:
        pytest.skip("PyTorch is not installed (optional extra 'eval')")
    if not (SHARED / "mnist_test.npz").exists():
        pytest.skip("../shared/data/mnist_test.npz not found")
    from sifternet.cli import main

    folder = tmp_path_factory.mktemp("mnist_cli")
    cache = folder / "model.pt"
    args = [
        "evaluate",
        str(SHARED / "mnist_test.npz"),
        "--limit",
        "1500",
        "--epochs",
        "3",
        "--binarize",
        "global",
        "--steps",
        "800",
        "--per-class",
        "2",
        "--model-cache",
        str(cache),
    ]
    assert main([*args, "--out", str(folder / "a")]) == 0
    first = json.loads((folder / "a" / "report.json").read_text())
    return main, args, folder, cache, {r["defense"]: r for r in first["rows"]}


def test_cli_evaluate_model_learned_and_backdoor_took(mnist_cli):
    rows = mnist_cli[4]
    assert rows["none"]["acc"] > 0.6 and rows["none"]["asr"] > 0.8


def test_cli_evaluate_seed_consensus_masks_the_corner_patch(mnist_cli):
    assert mnist_cli[4]["seed-consensus"]["asr"] < 0.2


def test_cli_evaluate_repair_removes_the_trigger_and_beats_plain_sifternet(mnist_cli):
    rows = mnist_cli[4]
    assert (
        rows["sifternet-repair"]["asr"] < 0.2 and rows["sifternet-repair"]["acc"] > rows["sifternet"]["acc"]
    )


def test_cli_evaluate_reuses_the_cached_model(mnist_cli):
    main, args, folder, cache, rows = mnist_cli
    assert cache.exists()
    assert main([*args, "--out", str(folder / "b")]) == 0
    second = json.loads((folder / "b" / "report.json").read_text())
    assert [r["acc"] for r in second["rows"]] == [r["acc"] for r in rows.values()]


def test_cli_evaluate_refuses_a_cache_of_other_settings(mnist_cli, capsys):
    main, args, folder, cache, _ = mnist_cli
    assert main([*args[:-1], str(cache), "--epochs", "4", "--out", str(folder / "c")]) == 1
    assert "model cache trained on other data or settings" in capsys.readouterr().err
