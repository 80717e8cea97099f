"""Tests of sifternet.binarize against plain per-image NumPy / OpenCV references."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable

import cv2
import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sifternet.binarize import BORDERS, METHODS, binarize, states_to_pixels

# The module itself (``sifternet.binarize`` as an attribute is the re-exported function).
binarize_module = importlib.import_module("sifternet.binarize")

NP_PAD_MODE = {"zero": "constant", "replicate": "edge", "reflect": "reflect"}


# ---------------------------------------------------------------- references (one 2-D plane)


def ref_global(plane: np.ndarray, t: float) -> np.ndarray:
    x = 2 * plane.astype(np.float64) / 255 - 1
    return np.where(x > t, 1, -1).astype(np.int8)


def ref_local_mean(plane: np.ndarray, k: int, c: float, border: str) -> np.ndarray:
    before, after = k // 2, k - 1 - k // 2
    widths = ((before, after), (before, after))
    padded = np.pad(plane.astype(np.int64), widths, mode=NP_PAD_MODE[border])
    height, width = plane.shape
    sums = np.array([[padded[i : i + k, j : j + k].sum() for j in range(width)] for i in range(height)])
    p = plane.astype(np.int64)
    return np.where(k * k * p > sums - k * k * c, 1, -1).astype(np.int8)


def ref_otsu(plane: np.ndarray) -> np.ndarray:
    plane = np.ascontiguousarray(plane)
    t, _ = cv2.threshold(plane, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    return np.where(plane > t, 1, -1).astype(np.int8)


def per_plane(images: np.ndarray, ref: Callable[..., np.ndarray], *args: object) -> np.ndarray:
    """Apply a 2-D reference to every image and channel of a batch."""
    batch = images if images.ndim == 4 else images[..., None]
    out = np.empty(batch.shape, np.int8)
    for b in range(batch.shape[0]):
        for ch in range(batch.shape[3]):
            out[b, :, :, ch] = ref(batch[b, :, :, ch], *args)
    return out.reshape(images.shape)


# ---------------------------------------------------------------- strategies


@st.composite
def batches(draw, max_batch: int = 3, max_side: int = 20) -> np.ndarray:
    shape = (
        draw(st.integers(1, max_batch)),
        draw(st.integers(1, max_side)),
        draw(st.integers(1, max_side)),
    )
    channels = draw(st.sampled_from([None, 1, 2, 3, 4]))
    if channels is not None:
        shape += (channels,)
    # Few distinct levels make flat regions, i.e. exact ties with the local mean.
    levels = draw(st.sampled_from([256, 3]))
    values = hnp.arrays(np.uint8, shape, elements=st.integers(0, 255))
    if levels == 256:
        return draw(values)
    palette = np.array(draw(st.lists(st.integers(0, 255), min_size=1, max_size=levels)), np.uint8)
    return palette[draw(values) % len(palette)]


offsets = st.one_of(
    st.floats(-300, 300, allow_nan=False),
    st.integers(-40, 40).map(lambda v: v / 4),  # exact multiples: ties k*k*p == S - k*k*c
    st.sampled_from([0.0, 0.1, -0.1, 1 / 3]),
)
thresholds = st.one_of(
    st.floats(-1.5, 1.5, allow_nan=False),
    st.integers(0, 255).map(lambda p: 2 * p / 255 - 1),  # exactly on a level: a tie
)


def check_states(states: np.ndarray, images: np.ndarray) -> None:
    assert states.dtype == np.int8 and states.shape == images.shape
    assert states.flags.c_contiguous
    assert np.isin(states, (-1, 1)).all()


# ---------------------------------------------------------------- methods vs references


@settings(max_examples=150, deadline=None)
@given(batches(), st.integers(1, 25), offsets, st.sampled_from(BORDERS))
def test_local_mean_matches_reference(images, k, c, border):
    states = binarize(images, "local_mean", block_size=k, offset=c, border=border)
    check_states(states, images)
    np.testing.assert_array_equal(states, per_plane(images, ref_local_mean, k, c, border))


@settings(max_examples=100, deadline=None)
@given(batches(), thresholds)
def test_global_matches_reference(images, t):
    states = binarize(images, "global", threshold=t)
    check_states(states, images)
    np.testing.assert_array_equal(states, per_plane(images, ref_global, t))


@settings(max_examples=100, deadline=None)
@given(batches())
def test_otsu_matches_cv2_per_image_and_channel(images):
    states = binarize(images, "otsu")
    check_states(states, images)
    np.testing.assert_array_equal(states, per_plane(images, ref_otsu))


@pytest.mark.parametrize("value", [0, 1, 77, 254, 255])
@pytest.mark.parametrize("shape", [(2, 6, 5), (2, 6, 5, 3), (1, 1, 1)])
def test_otsu_constant_images(shape, value):
    images = np.full(shape, value, np.uint8)
    np.testing.assert_array_equal(binarize(images, "otsu"), per_plane(images, ref_otsu))


@pytest.mark.parametrize("low, high", [(0, 255), (0, 1), (100, 101), (3, 200), (254, 255)])
def test_otsu_two_level_images(low, high):
    rng = np.random.default_rng(low * 256 + high)
    images = np.where(rng.random((4, 9, 7, 2)) < 0.3, high, low).astype(np.uint8)
    states = binarize(images, "otsu")
    np.testing.assert_array_equal(states, per_plane(images, ref_otsu))
    np.testing.assert_array_equal(states, np.where(images == high, 1, -1))


@pytest.mark.parametrize("threads", ["1", "2"])
@pytest.mark.parametrize("chunk_bytes", [1, 3000])
@pytest.mark.parametrize("border", BORDERS)
def test_local_mean_chunks_and_threads(monkeypatch, threads, chunk_bytes, border):
    """Work split over threads and chunks (a short last one) changes nothing."""
    monkeypatch.setenv("OMP_NUM_THREADS", threads)
    monkeypatch.setattr(binarize_module, "_CHUNK_BYTES", chunk_bytes)
    images = np.random.default_rng(5).integers(0, 256, (11, 7, 6, 3), dtype=np.uint8)
    states = binarize(images, "local_mean", block_size=4, offset=1.5, border=border)
    np.testing.assert_array_equal(states, per_plane(images, ref_local_mean, 4, 1.5, border))


def test_local_mean_more_channels_than_opencv_carries():
    images = np.random.default_rng(6).integers(0, 256, (2, 5, 4, 130), dtype=np.uint8)
    states = binarize(images, "local_mean", block_size=3, border="reflect")
    np.testing.assert_array_equal(states, per_plane(images, ref_local_mean, 3, 0.0, "reflect"))


@pytest.mark.parametrize("k", [17, 40])  # 255*k*k beyond uint16
def test_local_mean_large_block_uses_int32_sums(k):
    images = np.random.default_rng(7).integers(0, 256, (2, 12, 9), dtype=np.uint8)
    states = binarize(images, "local_mean", block_size=k, offset=-2.25, border="replicate")
    np.testing.assert_array_equal(states, per_plane(images, ref_local_mean, k, -2.25, "replicate"))


# ---------------------------------------------------------------- ties and window placement


@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("value", [0, 1, 128, 255])
def test_flat_image_is_a_tie(border, value):
    """Window mean == pixel everywhere (zero border: only where no padding enters)."""
    images = np.full((1, 9, 9), value, np.uint8)
    states = binarize(images, block_size=3, border=border)
    if border == "zero" and value > 0:
        assert (states[0, 1:-1, 1:-1] == -1).all() and (states[0, 0] == 1).all()
    else:
        assert (states == -1).all()


@pytest.mark.parametrize("k, offset", [(3, 2.0), (2, 0.25), (4, -1.0), (5, 0.0)])
def test_exact_tie_is_minus_one(k, offset):
    """Centre pixel p with window sum S such that k*k*p == S - k*k*offset exactly."""
    p = 10
    image = _window_with_sum(k, p, k * k * p + round(k * k * offset))
    centre = (0, k // 2, k // 2)
    assert binarize(image, block_size=k, offset=offset)[centre] == -1
    assert binarize(image, block_size=k, offset=offset + 1e-9)[centre] == 1
    assert binarize(image, block_size=k, offset=offset - 1e-9)[centre] == -1


def _window_with_sum(k: int, p: int, total: int) -> np.ndarray:
    """A batch of one k x k image: p at (k//2, k//2), pixels summing to `total`."""
    image = np.zeros((k, k), np.int64)
    image[k // 2, k // 2] = p
    rest = total - p
    for i, j in np.ndindex(k, k):
        if (i, j) != (k // 2, k // 2):
            image[i, j] = min(rest, 255)
            rest -= image[i, j]
    assert rest == 0
    return image.astype(np.uint8)[None]


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 6])
def test_window_placement(k):
    """The window spans rows and columns i - k//2 .. i + k - 1 - k//2."""
    image = np.zeros((1, 13, 13), np.uint8)
    image[0, 6, 6] = 200
    # offset 1: a dark pixel is +1 unless the bright one is in its window (mean >= 200/k**2).
    states = binarize(image, block_size=k, offset=1.0)[0]
    rows, cols = np.nonzero(states == -1)
    first, last = 6 - (k - 1 - k // 2), 6 + k // 2
    window = {(i, j) for i in range(first, last + 1) for j in range(first, last + 1)}
    assert set(zip(rows.tolist(), cols.tolist())) == window - {(6, 6)}


# ---------------------------------------------------------------- batches and memory layouts


@pytest.mark.parametrize("method", METHODS)
def test_single_image_equals_its_row_in_a_batch(method):
    images = np.random.default_rng(1).integers(0, 256, (6, 10, 8, 3), dtype=np.uint8)
    full = binarize(images, method, block_size=5, border="reflect")
    for i in range(len(images)):
        single = binarize(images[i : i + 1], method, block_size=5, border="reflect")
        np.testing.assert_array_equal(single, full[i : i + 1])


def _layouts(images: np.ndarray) -> dict[str, np.ndarray]:
    read_only = images.copy()
    read_only.flags.writeable = False
    return {
        "strided": images[:, ::2, 1:],
        "reversed": images[::-1, :, ::-1],
        "fortran": np.asfortranarray(images),
        "read_only": read_only,
        "channel_view": images[..., 1] if images.ndim == 4 else images.transpose(0, 2, 1),
    }


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("shape", [(4, 12, 10), (4, 12, 10, 3)])
@pytest.mark.parametrize("layout", ["strided", "reversed", "fortran", "read_only", "channel_view"])
def test_memory_layouts_give_the_contiguous_result(method, shape, layout):
    images = np.random.default_rng(2).integers(0, 256, shape, dtype=np.uint8)
    view = _layouts(images)[layout]
    before = view.copy()
    states = binarize(view, method, block_size=4, border="replicate")
    expected = binarize(np.ascontiguousarray(view), method, block_size=4, border="replicate")
    np.testing.assert_array_equal(states, expected)
    np.testing.assert_array_equal(view, before)
    np.testing.assert_array_equal(_layouts(images)[layout], before)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("shape", [(0, 5, 5), (0, 5, 5, 3), (2, 0, 5), (2, 5, 5, 0)])
def test_empty_input(method, shape):
    states = binarize(np.zeros(shape, np.uint8), method)
    assert states.shape == shape and states.dtype == np.int8


# ---------------------------------------------------------------- errors


GOOD = np.zeros((1, 4, 4), np.uint8)


@pytest.mark.parametrize(
    "args, kwargs, error, message",
    [
        ((GOOD.astype(np.float32),), {}, TypeError, "images: expected dtype uint8, got float32"),
        ((GOOD.astype(np.int8),), {}, TypeError, "images: expected dtype uint8, got int8"),
        (([[[0]]],), {}, TypeError, "images: expected a numpy uint8 array, got list"),
        (
            (GOOD[0],),
            {},
            ValueError,
            "images: expected shape (B, H, W) or (B, H, W, C), got 2-D shape (4, 4)",
        ),
        ((GOOD[..., None, None],), {}, ValueError, "got 5-D shape (1, 4, 4, 1, 1)"),
        (
            (GOOD, "mean"),
            {},
            ValueError,
            "method: expected one of 'global', 'local_mean', 'otsu'; got 'mean'",
        ),
        (
            (GOOD,),
            {"border": "wrap"},
            ValueError,
            "border: expected one of 'zero', 'replicate', 'reflect'; got 'wrap'",
        ),
        ((GOOD,), {"offset": float("-inf")}, ValueError, "offset: expected a finite number"),
        ((GOOD,), {"offset": float("nan")}, ValueError, "offset: expected a finite number"),
        ((GOOD,), {"offset": "1"}, TypeError, "offset: expected a real number, got str"),
        (
            (GOOD, "global"),
            {"threshold": float("inf")},
            ValueError,
            "threshold: expected a finite number, got inf",
        ),
    ],
)
def test_bad_input_raises(args, kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        binarize(*args, **kwargs)


@pytest.mark.parametrize(
    "block_size, error, message",
    [
        (0, ValueError, "an int >= 1 and <= 2901, got 0"),
        (-1, ValueError, "an int >= 1 and <= 2901, got -1"),
        (2902, ValueError, "an int >= 1 and <= 2901, got 2902"),
        (2.5, TypeError, "an int, got float"),
        (True, TypeError, "an int, got bool"),
    ],
)
def test_bad_block_size_raises(block_size, error, message):
    with pytest.raises(error, match=re.escape(f"block_size: expected {message}")):
        binarize(GOOD, block_size=block_size)


def test_numpy_scalars_are_accepted():
    images = np.random.default_rng(3).integers(0, 256, (2, 7, 7), dtype=np.uint8)
    np.testing.assert_array_equal(
        binarize(images, block_size=np.int64(3), offset=np.float32(0.5)),
        binarize(images, block_size=3, offset=0.5),
    )


# ---------------------------------------------------------------- states_to_pixels


def test_states_to_pixels_values():
    pixels = states_to_pixels(np.array([[-1, 1], [1, -1]], np.int8))
    assert pixels.dtype == np.uint8
    np.testing.assert_array_equal(pixels, [[0, 255], [255, 0]])


@settings(max_examples=30, deadline=None)
@given(batches())
def test_states_to_pixels_round_trip(images):
    states = binarize(images, "local_mean", block_size=3)
    pixels = states_to_pixels(states)
    assert pixels.shape == states.shape
    np.testing.assert_array_equal(binarize(pixels, "global"), states)
    np.testing.assert_array_equal(binarize(pixels, "otsu"), np.where(pixels == 255, 1, -1))


def test_states_to_pixels_rejects_non_int8():
    with pytest.raises(TypeError, match="states: expected an int8 numpy.ndarray, got int64"):
        states_to_pixels(np.array([1, -1]))
