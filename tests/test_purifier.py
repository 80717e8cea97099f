"""SifterNet: fit / purify contract, reproducibility, seeds (model files and pickling:
test_modelfile.py)."""

from __future__ import annotations

import numpy as np
import pytest

from sifternet import HopfieldNetwork, NearestSeedRepair, SifterNet, select_seeds
from sifternet import reference as ref
from sifternet.binarize import binarize
from sifternet.seeds import seed_indices


def images(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


@pytest.fixture(scope="module")
def colour():
    rng = np.random.default_rng(0)
    purifier = SifterNet(block_size=5, steps=300, seed=3).fit(images(rng, 6, 12, 10, 3))
    return purifier, images(rng, 40, 12, 10, 3)


@pytest.fixture(scope="module")
def grey():
    rng = np.random.default_rng(1)
    purifier = SifterNet(binarize="global", steps=200).fit(images(rng, 4, 9, 11))
    return purifier, images(rng, 25, 9, 11)


def test_purify_equals_binarise_then_reference_recall(colour):
    purifier, batch = colour
    got = purifier.purify(batch)
    assert got.shape == batch.shape and got.dtype == np.uint8
    states = binarize(batch, "local_mean", block_size=5)
    for channel, network in enumerate(purifier.networks):
        plane = states[..., channel].reshape(len(batch), -1)
        want = ref.recall(
            ref.hebbian_weights(network.patterns),
            plane,
            steps=300,
            seed=3,
            indices=np.arange(len(batch)),
            channel=channel,
            channels=3,
        ).states
        np.testing.assert_array_equal(got[..., channel].reshape(len(batch), -1), (want > 0) * 255)


def test_seeds_are_memorised_per_channel(colour):
    purifier, _ = colour
    assert len(purifier.networks) == 3 and purifier.n_channels == 3
    assert all(net.n_patterns == 6 and net.n_neurons == 120 for net in purifier.networks)


@pytest.mark.parametrize("fixture", ["colour", "grey"])
def test_single_image_chunks_and_shuffles_equal_one_shot(fixture, request):
    purifier, batch = request.getfixturevalue(fixture)
    whole = purifier.purify(batch)
    np.testing.assert_array_equal(purifier.purify(batch[7], index_offset=7), whole[7])
    chunks = [purifier.purify(batch[a : a + 6], index_offset=a) for a in range(0, len(batch), 6)]
    np.testing.assert_array_equal(np.concatenate(chunks), whole)
    order = np.random.default_rng(2).permutation(len(batch))
    np.testing.assert_array_equal(purifier.purify(batch[order], indices=order), whole[order])
    for threads in (1, 2, 5):
        np.testing.assert_array_equal(purifier.purify(batch, num_threads=threads), whole)


def test_grey_shapes(grey):
    purifier, batch = grey
    assert purifier.image_shape == (9, 11) and purifier.n_channels == 1
    assert purifier.purify(batch).shape == (25, 9, 11)
    assert purifier.purify(batch[0]).shape == (9, 11)
    assert set(np.unique(purifier.binarize(batch))) <= {0, 255}


def test_seeds_are_fixed_points_of_purification():
    rng = np.random.default_rng(3)
    seeds = images(rng, 2, 16, 16)
    purifier = SifterNet(binarize="global", steps=2000).fit(seeds)
    np.testing.assert_array_equal(purifier.purify(seeds), purifier.binarize(seeds))


@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        (np.zeros((2, 12, 10, 3), np.float32), TypeError, "images: expected dtype uint8, got float32"),
        ([[0]], TypeError, "images: expected a numpy uint8 array, got list"),
        (np.zeros((2, 12, 11, 3), np.uint8), ValueError, r"one image of shape \(12, 10, 3\) or a batch"),
        (np.zeros((2, 12, 10, 1), np.uint8), ValueError, r"got \(2, 12, 10, 1\)"),
        (np.zeros((12, 10), np.uint8), ValueError, r"got \(12, 10\)"),
    ],
)
def test_bad_images_are_refused(colour, bad, error, message):
    purifier, _ = colour
    with pytest.raises(error, match=message):
        purifier.purify(bad)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"binarize": "sauvola"}, ValueError, "binarize: expected one of"),
        ({"block_size": 0}, ValueError, "block_size: expected an int >= 1 and <= 2901, got 0"),
        ({"block_size": 2.5}, TypeError, "block_size: expected an int, got float"),
        ({"steps": -5}, ValueError, "steps: expected an int >= 0 and <= 9223372036854775807, got -5"),
        ({"seed": -1}, ValueError, "seed: expected an int >= 0"),
        ({"offset": float("nan")}, ValueError, "offset: expected a finite number"),
        ({"rule": "oja"}, ValueError, "rule: expected one of"),
        ({"num_threads": 0}, ValueError, "num_threads: expected a positive count"),
        ({"colour": True}, TypeError, "colour"),
    ],
)
def test_bad_options_are_refused(options, error, message):
    with pytest.raises(error, match=message):
        SifterNet(**options)


def test_fit_refuses_bad_seeds():
    with pytest.raises(ValueError, match="non-empty batch"):
        SifterNet().fit(np.zeros((0, 8, 8), np.uint8))
    with pytest.raises(ValueError, match="non-empty batch"):
        SifterNet().fit(np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="labels: expected 2 integers"):
        SifterNet().fit(np.zeros((2, 8, 8), np.uint8), labels=np.zeros(3, int))
    with pytest.raises(RuntimeError, match="not fitted"):
        SifterNet().purify(np.zeros((8, 8), np.uint8))


def test_with_options_changes_recall_only(colour):
    purifier, batch = colour
    longer = purifier.with_options(steps=600)
    assert longer.config.steps == 600 and longer.networks is purifier.networks
    seeds = images(np.random.default_rng(0), 6, 12, 10, 3)  # the fixture's seeds
    want = SifterNet(block_size=5, steps=600, seed=3).fit(seeds)
    np.testing.assert_array_equal(longer.purify(batch), want.purify(batch))
    with pytest.raises(ValueError, match="block_size: shape the memories"):
        purifier.with_options(block_size=7)


def test_select_seeds_covers_every_class():
    labels = np.repeat(np.arange(4), [3, 5, 2, 4])
    data = np.arange(len(labels))
    seeds, seed_labels = select_seeds(data, labels, 2, seed=1)
    assert sorted(seed_labels.tolist()) == [0, 0, 1, 1, 2, 2, 3, 3]
    np.testing.assert_array_equal(labels[seeds], seed_labels)
    np.testing.assert_array_equal(select_seeds(data, labels, 2, seed=1)[0], seeds)
    first = seed_indices(labels, 1, strategy="first")
    np.testing.assert_array_equal(first, [0, 3, 8, 10])
    with pytest.raises(ValueError, match="class 2 has 2 image"):
        seed_indices(labels, 3)
    with pytest.raises(ValueError, match="class 4 has 0 image"):
        seed_indices(labels, 1, n_classes=5)
    with pytest.raises(ValueError, match="images and labels differ in length"):
        select_seeds(data[:3], labels, 1)
    with pytest.raises(ValueError, match="strategy: expected one of"):
        seed_indices(labels, 1, strategy="best")


def test_networks_are_hopfield_networks(grey):
    purifier, _ = grey
    assert isinstance(purifier.networks[0], HopfieldNetwork)
    assert "image_shape=(9, 11)" in repr(purifier)


def test_restore_keeps_every_pixel_the_recall_did_not_flip(colour):
    purifier, batch = colour
    restored = purifier.with_options(output="restore").purify(batch)
    binary = purifier.purify(batch)
    binarised = purifier.binarize(batch)
    flipped = binary != binarised
    assert flipped.any() and (~flipped).any()
    np.testing.assert_array_equal(restored[~flipped], batch[~flipped])
    np.testing.assert_array_equal(restored[flipped], binary[flipped])


def test_joint_channels_replace_a_pixel_flipped_in_any_channel_in_all(colour, grey):
    purifier, batch = colour
    binary, binarised = purifier.purify(batch), purifier.binarize(batch)
    flipped = binary != binarised
    anywhere = flipped.any(axis=-1)
    assert (anywhere[..., None] & ~flipped).any()  # some pixel flipped in one channel only
    joint = purifier.with_options(output="restore", joint_channels=True).purify(batch)
    np.testing.assert_array_equal(joint[anywhere], binary[anywhere])
    np.testing.assert_array_equal(joint[~anywhere], batch[~anywhere])
    grey_purifier, grey_batch = grey
    inpaint = grey_purifier.with_options(output="inpaint")
    np.testing.assert_array_equal(
        inpaint.with_options(joint_channels=True).purify(grey_batch), inpaint.purify(grey_batch)
    )
    with pytest.raises(TypeError, match="joint_channels: expected a bool"):
        SifterNet(joint_channels=1)


def test_inpaint_fills_flipped_pixels_from_unflipped_neighbours(colour):
    purifier, batch = colour
    filled = purifier.with_options(output="inpaint", fill_size=3).purify(batch)
    binary, binarised = purifier.purify(batch), purifier.binarize(batch)
    holes = binary != binarised
    np.testing.assert_array_equal(filled[~holes], batch[~holes])
    b, y, x, c = map(int, np.argwhere(holes)[0])
    window = (slice(max(0, y - 1), y + 2), slice(max(0, x - 1), x + 2))
    good = ~holes[b][window][..., c]
    values = batch[b][window][..., c][good].astype(int)
    want = (values.sum() + len(values) // 2) // len(values) if len(values) else binary[b, y, x, c]
    assert filled[b, y, x, c] == want
    np.testing.assert_array_equal(
        purifier.with_options(output="inpaint").purify(batch[5], index_offset=5), filled[5]
    )


def test_gates_reduce_flips_and_the_repair_preset_validates():
    rng = np.random.default_rng(6)
    seeds, batch = images(rng, 4, 16, 16), images(rng, 10, 16, 16)
    base = SifterNet(binarize="global", steps=256).fit(seeds)
    changed = [
        (base.with_options(**gate).purify(batch) != base.binarize(batch)).sum()
        for gate in ({}, {"agreement": 0.3}, {"agreement": 0.9}, {"margin": 0.5})
    ]
    assert changed[0] > changed[1] > changed[2] and changed[0] > changed[3]
    one_sweep = SifterNet.repairing("highlights", binarize="otsu", agreement=0.5).fit(seeds)
    np.testing.assert_array_equal(
        one_sweep.purify(batch), one_sweep.with_options(steps=16 * 16).purify(batch)
    )
    assert (one_sweep.purify(batch) != one_sweep.with_options(max_sweeps=100).purify(batch)).any()
    with pytest.raises(ValueError, match="max_sweeps: expected an int >= 1"):
        SifterNet(max_sweeps=0)
    preset = SifterNet.repairing("highlights", fill_size=3).config
    assert (
        preset.binarize,
        preset.threshold,
        preset.agreement,
        preset.joint_channels,
        preset.fill_size,
        preset.output,
    ) == ("global", 0.9, 0.9, True, 3, "inpaint")
    dark = SifterNet.repairing("shadows").config
    assert (dark.binarize, dark.threshold, dark.agreement, dark.output) == ("global", -0.9, 0.95, "inpaint")
    repair = SifterNet.repairing("highlights", steps=100)
    assert repair.config.output == "inpaint" and repair.config.steps == 100
    default = SifterNet.repairing(neighbours=4)
    assert isinstance(default, NearestSeedRepair) and default.config.neighbours == 4
    assert default.config.all_seed_levels == (0.9,)  # every seed votes at the highlights
    with pytest.raises(ValueError, match="preset: expected one of agnostic, highlights, shadows"):
        SifterNet.repairing("bright")
    with pytest.raises(
        TypeError, match=r"seed: not an option of the agnostic preset .*repairing\('highlights'"
    ):
        SifterNet.repairing(seed=1)
    with pytest.raises(ValueError, match=r"agreement: expected a fraction in \[0, 1\)"):
        SifterNet(agreement=1.5)
    with pytest.raises(ValueError, match="output: expected one of"):
        SifterNet(output="blur")
    with pytest.raises(ValueError, match="agreement gate needs the Hebbian rule"):
        SifterNet(rule="storkey", agreement=0.5)
    with pytest.raises(ValueError, match="agreement gate needs the Hebbian rule"):
        SifterNet(rule="projection").fit(seeds).with_options(agreement=0.5)


@pytest.mark.parametrize("fixture", ["colour", "grey"])
def test_purify_scored_is_purify_with_its_flips_and_scores_per_image(fixture, request):
    purifier, batch = request.getfixturevalue(fixture)
    purifier = purifier.with_options(output="inpaint", joint_channels=True)
    whole = purifier.purify_scored(batch)
    np.testing.assert_array_equal(whole.images, purifier.purify(batch))
    states = purifier.to_states(batch)
    flipped = (states != purifier.recall_states(states)).any(axis=3)
    np.testing.assert_array_equal(whole.flipped, flipped)
    assert whole.flipped.any() and not whole.flipped.all()  # the check can tell
    # inpaint changes exactly the flipped pixels' values (where a neighbour fills them)
    assert not (whole.images != batch).reshape(flipped.shape + (-1,)).any(-1)[~flipped].any()
    chunk = purifier.purify_scored(batch[10:20], index_offset=10)
    np.testing.assert_array_equal(chunk.flipped, whole.flipped[10:20])
    np.testing.assert_array_equal(chunk.scores, whole.scores[10:20])
    one = purifier.purify_scored(batch[3], index_offset=3)
    assert one.images.shape == (1, *batch.shape[1:]) and one.scores[0] == whole.scores[3]
    assert purifier.purify_scored(batch[:0]).scores.shape == (0,)


def test_the_score_is_one_where_the_repair_preset_removes_a_corner_patch():
    rng = np.random.default_rng(4)
    seeds = rng.integers(0, 200, size=(8, 16, 16, 3), dtype=np.uint8)  # never near white
    clean = rng.integers(0, 200, size=(12, 16, 16, 3), dtype=np.uint8)
    triggered = clean.copy()
    triggered[:, -3:, -3:] = 255
    purifier = SifterNet.repairing("highlights").fit(seeds)
    assert (purifier.purify_scored(triggered).scores == 1.0).all()
    assert (purifier.purify_scored(clean).scores == 0.0).all()
