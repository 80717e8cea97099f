"""Nearest-seed repair: the kernel equals the NumPy oracle (``sifternet.reference``), the
result does not depend on threads or batches, a patch no seed holds is repaired and
scored, and bad input is refused."""

from __future__ import annotations

import pickle
from dataclasses import asdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sifternet import ModelFileError, SifterNet, _core
from sifternet import reference as ref
from sifternet.modelfile import pack
from sifternet.nearest import LEVELS, NearestSeedRepair, blob_limit, level_cut, nearest_score


def smooth_images(count: int, size: int, channels: int, seed: int) -> np.ndarray:
    """Gradients with random slopes and offsets: images with no sharp patch."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    out = np.empty((count, size, size, channels), np.uint8)
    for b in range(count):
        for c in range(channels):
            a, u, v = rng.uniform(40, 120), rng.uniform(-60, 60), rng.uniform(-60, 60)
            out[b, :, :, c] = np.clip(a + u * y + v * x, 0, 255)
    return out


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.tuples(*(st.integers(1, n) for n in (3, 6, 9, 9)), st.sampled_from([1, 3])),
    st.integers(1, 5),
    st.lists(st.floats(-1, 1), min_size=1, max_size=3),
    st.sampled_from([0.0, 0.5, 0.9]),
    st.sampled_from([None, 0, 30]),
    st.floats(0, 1),
    st.integers(0, 2),
    st.integers(1, 5),
    st.integers(1, 4),
    st.lists(st.sampled_from([0.9, 0.0, -0.9]), max_size=2),
)
def test_nearest_repair_equals_the_reference(
    seed, shape, neighbours, levels, agreement, tolerance, max_area, grow, fill_size, thumbnail, everyone
):
    batch, n_seeds, height, width, channels = shape
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, 256, (n_seeds, height, width, channels), dtype=np.uint8)
    images = rng.integers(0, 256, (batch, height, width, channels), dtype=np.uint8)
    images[:, : height // 2] = seeds[0, : height // 2]  # part of a seed: some support
    options = dict(
        neighbours=neighbours,
        levels=tuple(levels),
        agreement=agreement,
        tolerance=tolerance,
        max_area=max_area,
        grow=grow,
        fill_size=fill_size,
        thumbnail=thumbnail,
        all_seed_levels=tuple(everyone),
    )
    got = NearestSeedRepair(**options).fit(seeds).purify_scored(images)
    want = ref.nearest_repair(
        images,
        seeds,
        side=thumbnail,
        neighbours=neighbours,
        cuts=[level_cut(t) for t in everyone + levels],
        all_seed_levels=len(everyone),
        agreement=agreement,
        tolerance=-1 if tolerance is None else tolerance,
        max_area=blob_limit(max_area, height * width),
        grow=grow,
        fill_size=fill_size,
        window=3,
    )
    np.testing.assert_array_equal(got.images, want[0])
    np.testing.assert_array_equal(got.flipped, want[1])
    np.testing.assert_array_equal(got.scores, nearest_score(want[2], want[3], (height, width)))


def test_level_cut_is_the_global_binarisation():
    values = np.arange(256)
    for threshold in (*LEVELS, -1.0, 1.0, 0.2):
        assert np.array_equal(values > level_cut(threshold), 2 * values / 255 - 1 > threshold)


@pytest.fixture(scope="module")
def fitted():
    seeds = smooth_images(40, 16, 3, seed=0)
    noise = np.random.default_rng(1).integers(-6, 7, (300, 16, 16, 3))
    images = np.clip(seeds[np.arange(300) % 40] + noise, 0, 255).astype(np.uint8)  # seen, noisy
    return NearestSeedRepair(neighbours=8).fit(seeds), images  # 8 of 40 seeds: the nearest fifth


def test_result_is_the_same_for_any_thread_count_and_batch_split(fitted):
    purifier, images = fitted
    one = purifier.purify_scored(images, num_threads=1)
    two = purifier.purify_scored(images, num_threads=2)
    parts = [purifier.purify_scored(images[a:b], num_threads=2) for a, b in ((0, 7), (7, 150), (150, 300))]
    for got in (two,):
        np.testing.assert_array_equal(got.images, one.images)
        np.testing.assert_array_equal(got.scores, one.scores)
    np.testing.assert_array_equal(np.concatenate([p.images for p in parts]), one.images)
    np.testing.assert_array_equal(np.concatenate([p.flipped for p in parts]), one.flipped)
    np.testing.assert_array_equal(purifier.purify(images[5]), one.images[5])
    np.testing.assert_array_equal(purifier.purify(images), one.images)  # unscored: the same pixels


@pytest.mark.parametrize("colour", [(255, 255, 255), (0, 0, 0), (128, 128, 128), (220, 30, 30)])
def test_a_patch_no_seed_holds_is_repaired_and_scored(fitted, colour):
    purifier, images = fitted
    clean = images[:20]
    triggered = clean.copy()
    triggered[:, 6:9, 6:9] = colour  # a 3x3 patch inside the image, of any colour
    result = purifier.purify_scored(triggered)
    assert result.flipped[:, 6:9, 6:9].all()
    error = np.abs(result.images[:, 6:9, 6:9].astype(int) - clean[:, 6:9, 6:9]).max()
    assert error <= 40, error  # filled from the smooth surroundings, not left as the patch
    untouched = purifier.purify_scored(clean)
    assert result.scores.min() > untouched.scores.max()  # every triggered image above every clean one
    assert untouched.flipped.mean() < 0.1


def test_all_seeds_outvote_a_patch_that_biases_the_nearest_ones():
    rng = np.random.default_rng(3)
    seeds = rng.integers(20, 120, (40, 16, 16, 3), dtype=np.uint8)
    seeds[0, 4:12, 4:12] = 255  # one seed of 40 is white in the middle
    triggered = seeds[4:24].copy()
    triggered[:, 5:11, 5:11] = 255  # a 6x6 white patch: the white seed is among its nearest
    alone = NearestSeedRepair(neighbours=4, all_seed_levels=()).fit(seeds).purify_scored(triggered)
    assert not alone.flipped[:, 5:11, 5:11].all()  # the white seed supports it
    voted = NearestSeedRepair(neighbours=4).fit(seeds).purify_scored(triggered)
    assert voted.flipped[:, 5:11, 5:11].all()


def test_grey_images_and_an_empty_batch():
    seeds = smooth_images(10, 12, 1, seed=2)[..., 0]
    purifier = NearestSeedRepair().fit(seeds)
    assert purifier.purify(seeds[:3]).shape == (3, 12, 12)
    assert purifier.purify(seeds[0]).shape == (12, 12)
    empty = purifier.purify_scored(seeds[:0])
    assert empty.images.shape == (0, 12, 12) and empty.scores.shape == (0,)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"neighbours": 0}, ValueError, "neighbours: expected an int >= 1"),
        ({"levels": ()}, TypeError, "levels: expected a non-empty tuple"),
        ({"levels": (1.5,)}, ValueError, r"levels: expected thresholds in \[-1, 1\]"),
        ({"agreement": 1.0}, ValueError, r"agreement: expected a fraction in \[0, 1\)"),
        ({"tolerance": 300}, ValueError, "tolerance: expected an int >= 0 and <= 255"),
        ({"max_area": -0.1}, ValueError, "max_area: expected a share"),
        ({"fill_size": 0}, ValueError, "fill_size: expected an int >= 1"),
        ({"all_seed_levels": [0.9]}, TypeError, "all_seed_levels: expected a tuple of thresholds"),
        ({"all_seed_levels": (2.0,)}, ValueError, r"all_seed_levels: expected thresholds in \[-1, 1\]"),
        ({"colour": 1}, TypeError, "unexpected keyword argument 'colour'"),
    ],
)
def test_bad_options_are_refused(options, error, message):
    with pytest.raises(error, match=message):
        NearestSeedRepair(**options)


def test_bad_images_are_refused(fitted):
    purifier, images = fitted
    with pytest.raises(RuntimeError, match="not fitted yet"):
        NearestSeedRepair().purify(images)
    with pytest.raises(TypeError, match="expected dtype uint8, got float64"):
        purifier.purify(images.astype(float))
    with pytest.raises(ValueError, match=r"expected one image of shape \(16, 16, 3\) or a batch"):
        purifier.purify(images[:, :8])
    with pytest.raises(ValueError, match="seed_images: expected a non-empty batch"):
        NearestSeedRepair().fit(images[:0])
    with pytest.raises(ValueError, match="labels: expected 4 integers, one per seed image"):
        NearestSeedRepair().fit(images[:4], np.zeros(3))


def test_kernel_refuses_mismatched_seeds(fitted):
    purifier, images = fitted
    bits, cuts, low, high, thumbs, votes = purifier._bank
    options = dict(side=8, neighbours=4, agreement=0.9, support=True, max_area=10, grow=1)
    options.update(fill_size=5, window=3, scored=True, num_threads=1)
    with pytest.raises(ValueError, match=r"high: expected \(40, 3, 256\) for the images"):
        _core.nearest_repair(images, bits, cuts, low, high[:3], thumbs, votes, **options)
    with pytest.raises(ValueError, match="bits: expected"):
        _core.nearest_repair(images, bits[:, :, :2], cuts, low, high, thumbs, votes, **options)
    with pytest.raises(
        ValueError, match=r"cuts: expected one cut per all-seed level of votes \(1\) and per level"
    ):
        _core.nearest_repair(images, bits[:, :2], cuts, low, high, thumbs, votes, **options)
    with pytest.raises(ValueError, match="thumbs: expected"):
        _core.nearest_repair(images, bits, cuts, low, high, thumbs, votes, **{**options, "side": 4})
    with pytest.raises(ValueError, match=r"agreement: expected a fraction in \[0, 1\)"):
        _core.nearest_repair(images, bits, cuts, low, high, thumbs, votes, **{**options, "agreement": np.nan})
    with pytest.raises(ValueError, match="low: expected"):
        _core.nearest_repair(images[:, :4], bits, cuts, low, high, thumbs, votes, **options)
    with pytest.raises(ValueError, match=r"votes: expected sums of 40 seeds' states in \[-40, 40\], got 41"):
        _core.nearest_repair(images, bits, cuts, low, high, thumbs, np.full_like(votes, 41), **options)
    with pytest.raises(ValueError, match=r"votes: expected \(1, 3, 256\)"):
        _core.nearest_repair(images, bits, cuts, low, high, thumbs, votes[:, :2], **options)
    with pytest.raises(ValueError, match="cuts: expected one cut per all-seed level"):
        _core.nearest_repair(
            images, bits, cuts, low, high, thumbs, np.zeros((9, 3, 256), np.int32), **options
        )


def test_model_file_round_trip_and_pickle(fitted, tmp_path):
    purifier, images = fitted
    path = tmp_path / "nearest.npz"
    purifier.save(path)
    loaded = NearestSeedRepair.load(path)
    assert loaded.config == purifier.config
    np.testing.assert_array_equal(loaded.purify(images[:30]), purifier.purify(images[:30]))
    copy = pickle.loads(pickle.dumps(purifier))
    np.testing.assert_array_equal(copy.purify(images[:30]), purifier.purify(images[:30]))
    with pytest.raises(FileExistsError, match="already exists"):
        purifier.save(path)
    with pytest.raises(ModelFileError, match="this file holds 'nearest-seed-repair', not a SifterNet"):
        SifterNet.load(path)
    SifterNet(steps=5).fit(images[:4]).save(tmp_path / "sifternet.npz")
    with pytest.raises(ModelFileError, match="this file holds a SifterNet: use SifterNet.load"):
        NearestSeedRepair.load(tmp_path / "sifternet.npz")


def test_model_file_with_a_bad_option_is_refused(fitted, tmp_path):
    purifier, _ = fitted
    metadata = {"purifier": "nearest-seed-repair", "config": {**asdict(purifier.config), "agreement": 2.0}}
    metadata["config"]["levels"] = list(purifier.config.levels)
    data = pack({**metadata, "image_shape": [16, 16, 3]}, {"seeds": purifier._seeds})
    with pytest.raises(ModelFileError, match=r"bad.npz: invalid model content: agreement: expected"):
        NearestSeedRepair.from_bytes(data, source="bad.npz")
    data = pack({**metadata, "image_shape": [16, 8, 3]}, {"seeds": purifier._seeds})
    with pytest.raises(ModelFileError, match="invalid model content"):
        NearestSeedRepair.from_bytes(data, source="bad.npz")


def test_model_file_from_before_the_all_seed_vote_loads_without_it(fitted):
    purifier, images = fitted
    config = {key: value for key, value in asdict(purifier.config).items() if key != "all_seed_levels"}
    metadata = {
        "purifier": "nearest-seed-repair",
        "config": {**config, "levels": list(purifier.config.levels)},
    }
    data = pack({**metadata, "image_shape": [16, 16, 3]}, {"seeds": purifier._seeds})
    loaded = NearestSeedRepair.from_bytes(data)
    assert loaded.config.all_seed_levels == ()
    without = NearestSeedRepair(neighbours=8, all_seed_levels=()).fit(purifier._seeds)
    np.testing.assert_array_equal(loaded.purify(images[:20]), without.purify(images[:20]))


def test_blob_limit_rounds_down_without_float_error():
    assert blob_limit(0.57, 100) == 57 and blob_limit(0.05, 1024) == 51 and blob_limit(0.0, 1024) == 0


def test_kernel_refuses_seed_contents_outside_its_bounds(fitted):
    purifier, images = fitted
    bits, cuts, low, high, thumbs, votes = purifier._bank
    options = dict(side=8, neighbours=4, agreement=0.9, support=True, max_area=10, grow=1)
    options.update(fill_size=5, window=3, scored=True, num_threads=1)
    huge = thumbs.copy()
    huge[1, 0] = np.iinfo(np.int32).max
    with pytest.raises(ValueError, match="thumbs: expected the block sums of a seed to add up to at most"):
        _core.nearest_repair(images, bits, cuts, low, high, huge, votes, **options)
    negative = thumbs.copy()
    negative[0, 3] = -1
    with pytest.raises(ValueError, match="thumbs: expected block sums >= 0, got -1 in seed 0"):
        _core.nearest_repair(images, bits, cuts, low, high, negative, votes, **options)
    odd = NearestSeedRepair().fit(images[:4, :5, :5])  # 25 pixels: padding bits in each word
    padded = odd._bank[0].copy()
    padded[0, 0, 0, 0] |= np.uint64(1) << np.uint64(40)
    with pytest.raises(ValueError, match="bits: expected the bits past pixel 24 clear"):
        _core.nearest_repair(images[:2, :5, :5].copy(), padded, *odd._bank[1:], **options)


def test_kernel_marks_nothing_on_images_without_pixels():
    empty = np.zeros((1000, 4, 4, 0), np.uint8)  # large enough for reused, dirty memory
    options = dict(side=2, neighbours=1, agreement=0.9, support=True, max_area=1, grow=0)
    options.update(fill_size=3, window=3, scored=True, num_threads=1)
    bank = (
        np.zeros((1, 1, 0, 1), np.uint64),
        np.zeros(1, np.uint8),
        np.zeros((1, 0, 16), np.uint8),
        np.zeros((1, 0, 16), np.uint8),
        np.zeros((1, 0), np.int32),
        np.zeros((0, 0, 16), np.int32),
    )
    out, holes, marked, moved = _core.nearest_repair(empty, *bank, **options)
    assert out.shape == empty.shape and not holes.any() and not marked.any() and not moved.any()
