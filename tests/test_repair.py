"""The repair kernel: every output mode equals the NumPy oracle
(``sifternet.reference.repair``), whatever the thread count; bad arguments are refused."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sifternet import _core
from sifternet import reference as ref
from sifternet.repair import OUTPUTS, flipped_pixels, repair, suspicion


def case(seed: int, shape: tuple[int, ...], flip_rate: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images, binarised states and recalled states with about ``flip_rate`` flipped."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=shape, dtype=np.uint8)
    binarised = rng.choice(np.array([-1, 1], np.int8), size=shape)
    recalled = np.where(rng.random(shape) < flip_rate, -binarised, binarised).astype(np.int8)
    return images, binarised, recalled


@settings(max_examples=120, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.tuples(st.integers(1, 3), st.integers(1, 9), st.integers(1, 9), st.sampled_from([1, 3])),
    st.sampled_from([0.0, 0.05, 0.3, 0.9, 1.0]),
    st.sampled_from(OUTPUTS),
    st.integers(1, 12),
    st.booleans(),
)
def test_repair_equals_the_reference(seed, shape, flip_rate, output, fill_size, joint):
    images, binarised, recalled = case(seed, shape, flip_rate)
    want = ref.repair(output, images, binarised, recalled, fill_size, joint)
    np.testing.assert_array_equal(repair(output, images, binarised, recalled, fill_size, joint), want)


@pytest.fixture(scope="module")
def batch_of_300():
    """300 images (above the kernel's serial cut-off) and, per output mode, their repair
    on one thread."""
    images, binarised, recalled = case(7, (300, 16, 16, 3), 0.2)
    one = {output: repair(output, images, binarised, recalled, 7, True, num_threads=1) for output in OUTPUTS}
    return images, binarised, recalled, one


@pytest.mark.parametrize("output", OUTPUTS)
def test_repair_is_the_same_for_any_thread_count(batch_of_300, output):
    images, binarised, recalled, one = batch_of_300
    np.testing.assert_array_equal(
        repair(output, images, binarised, recalled, 7, True, num_threads=2), one[output]
    )


@pytest.mark.parametrize("output", OUTPUTS)
def test_repair_of_one_image_is_its_row_of_the_batch(batch_of_300, output):
    images, binarised, recalled, one = batch_of_300
    np.testing.assert_array_equal(
        repair(output, images[5:6], binarised[5:6], recalled[5:6], 7, True), one[output][5:6]
    )


@pytest.mark.parametrize("output", OUTPUTS)
def test_threaded_repair_equals_the_reference(batch_of_300, output):
    images, binarised, recalled, one = batch_of_300
    np.testing.assert_array_equal(
        one[output][:4], ref.repair(output, images[:4], binarised[:4], recalled[:4], 7, True)
    )


@pytest.mark.parametrize(
    "layout",
    [np.asfortranarray, lambda a: np.repeat(a, 2, axis=0)[::2], lambda a: a[::-1][::-1]],
    ids=["fortran", "strided", "reversed-twice"],
)
def test_repair_takes_strided_and_fortran_inputs(layout):
    images, binarised, recalled = case(3, (6, 9, 8, 3), 0.3)
    want = ref.repair("inpaint", images, binarised, recalled, 4, True)
    got = repair("inpaint", layout(images), layout(binarised), layout(recalled), 4, True)
    np.testing.assert_array_equal(got, want)


BAD_ARGUMENTS = [
    (lambda i, b, r: (b, b, r, {}), TypeError, "images: expected dtype uint8, got int8"),
    (lambda i, b, r: (i, i, r, {}), TypeError, "binarised: expected dtype int8, got uint8"),
    (lambda i, b, r: ([i], b, r, {}), TypeError, "images: expected a numpy array of dtype uint8, got list"),
    (
        lambda i, b, r: (i, b, r[..., :1], {}),
        ValueError,
        r"recalled: expected the images' shape \(2, 4, 5, 3\), got \(2, 4, 5, 1\)",
    ),
    (lambda i, b, r: (i, b[0], r, {}), ValueError, r"binarised: expected a 4-D array, got shape \(4, 5, 3\)"),
    (
        lambda i, b, r: (i, b, r, {"output": "blur"}),
        ValueError,
        "output: expected 'binary', 'restore' or 'inpaint', got 'blur'",
    ),
    (lambda i, b, r: (i, b, r, {"fill_size": 0}), ValueError, "fill_size: expected at least 1, got 0"),
    (
        lambda i, b, r: (i, b, r, {"num_threads": 0}),
        ValueError,
        "num_threads: expected a positive count, got 0",
    ),
]


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    BAD_ARGUMENTS,
    ids=[
        "images-int8",
        "binarised-uint8",
        "images-list",
        "recalled-shape",
        "binarised-3d",
        "output",
        "fill-size",
        "threads",
    ],
)
def test_kernel_refuses_bad_arguments(arguments, error, message):
    images, binarised, recalled, changes = arguments(*case(1, (2, 4, 5, 3), 0.5))
    options = {"output": "inpaint", "fill_size": 3, "joint_channels": False, "num_threads": 1, **changes}
    with pytest.raises(error, match=message):
        _core.repair(images, binarised, recalled, **options)


@pytest.mark.parametrize("output", OUTPUTS)
def test_empty_batch_gives_an_empty_batch(output):
    images, binarised, recalled = case(1, (2, 4, 5, 3), 0.5)
    empty = repair(output, images[:0], binarised[:0], recalled[:0], 3)
    assert empty.shape == (0, 4, 5, 3) and empty.dtype == np.uint8


def test_empty_batch_of_huge_images_allocates_no_scratch():
    huge = np.zeros((0, 40000, 40000, 3), np.uint8)  # no pixel: no scratch is allocated
    assert repair("inpaint", huge, huge.view(np.int8), huge.view(np.int8), 3).shape == huge.shape


def brute_suspicion(flipped: np.ndarray, window: int) -> np.ndarray:
    """The largest share of flipped pixels in any window x window square, by loops."""
    batch, height, width = flipped.shape
    side = min(window, height, width)
    return np.array(
        [
            max(
                int(mask[r : r + side, c : c + side].sum())
                for r in range(height - side + 1)
                for c in range(width - side + 1)
            )
            / side**2
            for mask in flipped
        ]
    )


@settings(max_examples=80, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.tuples(st.integers(0, 3), st.integers(1, 9), st.integers(1, 9)),
    st.sampled_from([0.0, 0.1, 0.5, 1.0]),
    st.integers(1, 5),
)
def test_suspicion_equals_a_window_count_by_loops(seed, shape, rate, window):
    flipped = np.random.default_rng(seed).random(shape) < rate
    np.testing.assert_array_equal(suspicion(flipped, window), brute_suspicion(flipped, window))


def test_suspicion_is_one_on_a_flipped_square_and_low_on_scattered_flips():
    flipped = np.zeros((2, 16, 16), bool)
    flipped[0, 5:8, 9:12] = True  # a removed 3x3 patch
    flipped[1, ::4, ::4] = True  # 16 scattered flips
    np.testing.assert_array_equal(suspicion(flipped), [1.0, 1 / 9])


def test_flipped_pixels_are_any_channel_and_need_matching_states():
    before = np.ones((1, 2, 2, 3), np.int8)
    after = before.copy()
    after[0, 1, 0, 2] = -1
    np.testing.assert_array_equal(flipped_pixels(before, after), [[[False, False], [True, False]]])
    with pytest.raises(ValueError, match=r"states: expected two arrays of one shape"):
        flipped_pixels(before, after[:, :1])
