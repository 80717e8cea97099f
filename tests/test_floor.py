"""The floor defenses: ShrinkPad, JPEG, bit-depth reduction and a Gaussian blur."""

import cv2
import numpy as np
import pytest

from sifternet import SifterNet
from sifternet.eval.defenses import (
    DEFAULT_DEFENSES,
    DEFENSES,
    FLOOR_DEFENSES,
    bit_depth,
    gaussian_blur,
    jpeg,
    shrinkpad,
)

SEEDS = (np.full((2, 5, 5), 100, np.uint8), np.arange(2))
RNG = np.random.default_rng(11)
GREY = RNG.integers(0, 256, (6, 12, 12), dtype=np.uint8)
COLOUR = RNG.integers(0, 256, (6, 12, 12, 3), dtype=np.uint8)
INDICES = np.arange(100, 106)


def floor(name, seed=0):
    """The floor defense ``name`` as the evaluation builds it."""
    return DEFENSES[name](SifterNet(seed=seed), SEEDS)


def test_floor_names_are_registered_and_run_by_default():
    assert FLOOR_DEFENSES == ("shrinkpad", "jpeg-75", "jpeg-50", "bits-3", "bits-5", "blur-1")
    assert set(FLOOR_DEFENSES) <= set(DEFAULT_DEFENSES)
    assert [floor(name).name for name in FLOOR_DEFENSES] == list(FLOOR_DEFENSES)


def test_descriptions_name_the_parameters():
    described = {name: floor(name).description for name in FLOOR_DEFENSES}
    assert "4 pixels" in described["shrinkpad"] and "area" in described["shrinkpad"]
    assert "quality 75" in described["jpeg-75"] and "quality 50" in described["jpeg-50"]
    assert "3 bits" in described["bits-3"] and "5 bits" in described["bits-5"]
    assert "sigma 1 (7 x 7 kernel)" in described["blur-1"]


# -- every floor defense --------------------------------------------------------------


@pytest.mark.parametrize("name", FLOOR_DEFENSES)
@pytest.mark.parametrize("images", [GREY, COLOUR, COLOUR[..., :1]], ids=["grey", "colour", "one-channel"])
def test_chunked_equals_whole_and_repeats(name, images):
    defense = floor(name)
    before = images.copy()
    whole = defense.purify(images, INDICES)
    chunks = [defense.purify(images[i : i + 2], INDICES[i : i + 2]) for i in range(0, len(images), 2)]
    assert whole.shape == images.shape and whole.dtype == np.uint8
    np.testing.assert_array_equal(np.concatenate(chunks), whole)
    np.testing.assert_array_equal(defense.purify(images, INDICES), whole)
    np.testing.assert_array_equal(images, before)  # the input is left alone


@pytest.mark.parametrize("name", FLOOR_DEFENSES)
@pytest.mark.parametrize("shape", [(0, 8, 8), (0, 8, 8, 3)])
def test_empty_batch(name, shape):
    out = floor(name).purify(np.zeros(shape, np.uint8), np.arange(0))
    assert out.shape == shape and out.dtype == np.uint8


@pytest.mark.parametrize("name", FLOOR_DEFENSES)
def test_refuses_bad_batches(name):
    defense = floor(name)
    with pytest.raises(TypeError, match=rf"{name}: expected dtype uint8, got float64"):
        defense.purify(GREY.astype(float), INDICES)
    with pytest.raises(ValueError, match=rf"{name}: expected shape \(B, H, W\) or \(B, H, W, C\)"):
        defense.purify(GREY[0], INDICES[:1])
    with pytest.raises(ValueError, match=rf"{name}: expected 6 indices, one per image, got shape \(5,\)"):
        defense.purify(GREY, INDICES[:5])


@pytest.mark.parametrize(
    "factory, argument", [(shrinkpad, -1), (jpeg, 101), (jpeg, -1), (bit_depth, 0), (bit_depth, 9)]
)
def test_refuses_bad_parameters(factory, argument):
    with pytest.raises(ValueError):
        factory(argument)


def test_blur_refuses_a_non_positive_sigma():
    with pytest.raises(ValueError, match=r"blur sigma: expected > 0, got 0.0"):
        gaussian_blur(0.0)


# -- bit-depth reduction --------------------------------------------------------------


def test_bits_known_values():
    x = np.array([[[0, 18, 19, 36, 127, 128, 254, 255]]], np.uint8)
    # 3 bits, 7 steps of 255 / 7 = 36.43: 18 -> 0.49 steps -> 0; 19 -> 0.52 -> 1 -> 36;
    # 127 -> 3.49 -> 3 -> 109.29 -> 109; 128 -> 3.51 -> 4 -> 145.71 -> 146
    np.testing.assert_array_equal(
        floor("bits-3").purify(x, np.arange(1)), [[[0, 0, 36, 36, 109, 146, 255, 255]]]
    )
    # 5 bits, 31 steps of 8.23: 4 -> 0; 5 -> 1 -> 8; 127 -> 15.44 -> 15 -> 123.39 -> 123
    x = np.array([[[0, 4, 5, 127, 128, 255]]], np.uint8)
    np.testing.assert_array_equal(floor("bits-5").purify(x, np.arange(1)), [[[0, 0, 8, 123, 132, 255]]])


@pytest.mark.parametrize("bits", range(1, 9))
def test_bits_match_integer_arithmetic_on_every_level(bits):
    levels = 2**bits - 1
    x = np.arange(256)
    # 2^b - 1 and 255 are odd, so neither rounding ever meets a tie: round half up is exact
    steps = (2 * x * levels + 255) // 510
    expected = (2 * steps * 255 + levels) // (2 * levels)
    out = bit_depth(bits).purify(x.astype(np.uint8).reshape(1, 16, 16), np.arange(1))
    np.testing.assert_array_equal(out.ravel(), expected)
    assert len(np.unique(out)) == levels + 1


def test_eight_bits_is_the_identity_and_colour_is_per_pixel():
    np.testing.assert_array_equal(bit_depth(8).purify(COLOUR, INDICES), COLOUR)
    np.testing.assert_array_equal(
        floor("bits-3").purify(COLOUR, INDICES).reshape(-1),
        floor("bits-3").purify(COLOUR.reshape(1, 1, -1), INDICES[:1]).reshape(-1),
    )


# -- ShrinkPad ------------------------------------------------------------------------


def _bright(images):
    """``images`` with no zero pixel, so the zero padding is the only zeros."""
    return np.maximum(images, 1)


@pytest.mark.parametrize("images", [_bright(GREY), _bright(COLOUR)], ids=["grey", "colour"])
def test_shrinkpad_is_the_area_resized_image_at_an_offset_in_zeros(images):
    out = floor("shrinkpad").purify(images, INDICES)
    for image, purified in zip(images, out):
        content = purified.reshape(12, 12, -1).max(axis=2) > 0
        rows, cols = np.flatnonzero(content.any(axis=1)), np.flatnonzero(content.any(axis=0))
        top, left = rows[0], cols[0]
        assert 0 <= top <= 4 and 0 <= left <= 4 and len(rows) == len(cols) == 8
        expected = cv2.resize(image, (8, 8), interpolation=cv2.INTER_AREA)
        np.testing.assert_array_equal(purified[top : top + 8, left : left + 8], expected)
        pad = np.ones((12, 12), bool)
        pad[top : top + 8, left : left + 8] = False
        assert (purified[pad] == 0).all()


def test_shrinkpad_offsets_vary_with_the_index_and_seed_only():
    images = np.full((40, 12, 12), 200, np.uint8)

    def offsets(seed, indices):
        out = shrinkpad(4, seed=seed).purify(images, indices)
        return [tuple(np.argwhere(o)[0]) for o in out]

    first = offsets(0, np.arange(40))
    assert len(set(first)) > 10
    assert {t for t, _ in first} == {0, 1, 2, 3, 4} and {c for _, c in first} == {0, 1, 2, 3, 4}
    assert offsets(0, np.arange(40)[::-1]) == first[::-1]  # the index, not the batch position
    assert offsets(1, np.arange(40)) != first
    assert offsets(0, np.arange(40)) == first


def test_shrinkpad_takes_the_seed_from_the_purifier_and_scales():
    np.testing.assert_array_equal(
        floor("shrinkpad", seed=5).purify(GREY, INDICES), shrinkpad(4, seed=5).purify(GREY, INDICES)
    )
    out = shrinkpad(8).purify(np.full((3, 32, 32, 3), 9, np.uint8), np.arange(3))
    assert [(o > 0).all(axis=2).sum() for o in out] == [24 * 24] * 3
    np.testing.assert_array_equal(shrinkpad(0).purify(COLOUR, INDICES), COLOUR)


def test_shrinkpad_refuses_images_no_larger_than_the_shrink():
    with pytest.raises(ValueError, match=r"shrinkpad: expected images larger than 4 pixels, got 4 x 9"):
        floor("shrinkpad").purify(np.zeros((1, 4, 9), np.uint8), np.arange(1))


# -- JPEG ---------------------------------------------------------------------------


def _round_trip(image, quality, flags):
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(encoded, flags)


@pytest.mark.parametrize("quality", [75, 50])
def test_jpeg_is_opencvs_round_trip_in_bgr(quality):
    out = floor(f"jpeg-{quality}").purify(COLOUR, INDICES)
    for image, purified in zip(COLOUR, out):
        bgr = np.ascontiguousarray(image[..., ::-1])
        np.testing.assert_array_equal(purified, _round_trip(bgr, quality, cv2.IMREAD_COLOR)[..., ::-1])
    # without the conversion the luma and chroma would be wrong, and the output differs
    unconverted = np.stack([_round_trip(image, quality, cv2.IMREAD_COLOR) for image in COLOUR])
    assert (out != unconverted).mean() > 0.5


@pytest.mark.parametrize("quality", [75, 50])
def test_jpeg_grey_and_one_channel(quality):
    out = floor(f"jpeg-{quality}").purify(GREY, INDICES)
    expected = np.stack([_round_trip(image, quality, cv2.IMREAD_GRAYSCALE) for image in GREY])
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(floor(f"jpeg-{quality}").purify(GREY[..., None], INDICES), out[..., None])


def test_jpeg_quality_matters_and_four_channels_are_refused():
    assert (floor("jpeg-50").purify(COLOUR, INDICES) != floor("jpeg-75").purify(COLOUR, INDICES)).any()
    with pytest.raises(ValueError, match=r"jpeg-75: expected 1 or 3 channels, got 4"):
        floor("jpeg-75").purify(np.zeros((1, 8, 8, 4), np.uint8), np.arange(1))


# -- Gaussian blur --------------------------------------------------------------------


@pytest.mark.parametrize("images", [GREY, COLOUR], ids=["grey", "colour"])
def test_blur_is_opencvs_gaussian_blur_with_a_reflected_border(images):
    out = floor("blur-1").purify(images, INDICES)
    for image, purified in zip(images, out):
        expected = cv2.GaussianBlur(image, (0, 0), 1, borderType=cv2.BORDER_REFLECT)
        np.testing.assert_array_equal(purified, expected)
        assert (purified != cv2.GaussianBlur(image, (0, 0), 1, borderType=cv2.BORDER_REFLECT_101)).any()


@pytest.mark.parametrize("sigma", [0.5, 1.3, 2.3])
def test_blur_kernel_size_is_opencvs_choice(sigma):
    out = gaussian_blur(sigma).purify(GREY, INDICES)
    expected = [cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REFLECT) for image in GREY]
    np.testing.assert_array_equal(out, np.stack(expected))


def test_blur_keeps_a_constant_image():
    images = np.full((2, 9, 9, 3), 77, np.uint8)
    np.testing.assert_array_equal(floor("blur-1").purify(images, np.arange(2)), images)
