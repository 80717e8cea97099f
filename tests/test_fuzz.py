"""Property fuzzing of every public entry point (issue 7): whatever arrives, each call
returns a correct result or raises a documented exception (TypeError, ValueError,
MemoryError); a crash would take this test process down."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sifternet import HopfieldNetwork, SifterNet, _core
from sifternet.binarize import binarize
from sifternet.eval import attacks

DOCUMENTED = (TypeError, ValueError, MemoryError)
DTYPES = st.one_of(
    hnp.scalar_dtypes(), hnp.byte_string_dtypes(max_len=3), hnp.unicode_string_dtypes(max_len=3),
    st.just(np.dtype(object)),
)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def arrays(dtype=DTYPES, max_dims=5, max_side=6):
    return hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=0, max_side=max_side))


def layouts(array: np.ndarray) -> list[np.ndarray]:
    """The array as given, Fortran-ordered, strided (every other row, doubled) and read-only."""
    out = [array, np.asfortranarray(array)]
    if array.ndim:
        out.append(np.repeat(array, 2, axis=0)[::2])
    frozen = array.copy()
    frozen.flags.writeable = False
    return out + [frozen]


def spins_or_error(call):
    try:
        return call()
    except DOCUMENTED:
        return None


@FUZZ
@given(arrays())
def test_kernel_bindings_take_anything(array):
    network = HopfieldNetwork().fit(np.ones((2, 4), np.int8))
    for candidate in layouts(array):
        spins_or_error(lambda: _core.check_patterns(candidate))
        spins_or_error(lambda: _core.hebbian_weights(candidate, 1))
        for representation in ("dense", "overlap"):
            result = spins_or_error(lambda: network.recall(candidate, steps=3, representation=representation))
            if result is not None:  # accepted: then it was a valid (B, 4) spin array
                assert candidate.dtype == np.int8 and candidate.shape[1:] == (4,)
                assert set(np.unique(result.states)) <= {-1, 1}


@FUZZ
@given(
    hnp.arrays(np.int8, st.tuples(st.integers(0, 5), st.integers(1, 9)), elements=st.sampled_from([-1, 1])),
    st.one_of(st.none(), st.integers(-3, 50)),
    st.sampled_from(["random", "sweep", "", "RANDOM"]),
    st.one_of(st.none(), hnp.arrays(np.float64, st.integers(0, 10), elements=st.floats(allow_nan=True, allow_infinity=True))),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.integers(-(2**65), 2**65),
)
def test_recall_options_fuzz(states, steps, order, thresholds, margin, seed):
    network = HopfieldNetwork().fit(np.ones((3, states.shape[1]), np.int8))
    result = spins_or_error(lambda: network.recall(
        states, steps=steps, order=order, thresholds=thresholds, margin=margin, seed=seed, max_sweeps=3))
    if result is not None:
        assert result.states.shape == states.shape


@FUZZ
@given(arrays(), st.sampled_from(["binary", "restore", "inpaint", "blur"]), st.integers(-2, 9), st.booleans())
def test_repair_takes_anything(array, output, fill_size, joint):
    for candidate in layouts(array):
        states = np.ones(candidate.shape, np.int8)
        result = spins_or_error(lambda: _core.repair(
            candidate, states, -states, output=output, fill_size=fill_size,
            joint_channels=joint, num_threads=2))
        if result is not None:  # accepted: then it was a valid (B, H, W, C) uint8 batch
            assert candidate.dtype == np.uint8 and result.shape == candidate.shape


@FUZZ
@given(arrays(max_dims=5, max_side=7), st.sampled_from(["global", "local_mean", "otsu"]), st.integers(-2, 40))
def test_binarize_takes_anything(array, method, block_size):
    for candidate in layouts(array):
        out = spins_or_error(lambda: binarize(candidate, method, block_size=block_size))
        if out is not None:
            assert candidate.dtype == np.uint8 and out.shape == candidate.shape and out.dtype == np.int8
            assert set(np.unique(out)) <= {-1, 1}


@pytest.fixture(scope="module")
def purifier():
    rng = np.random.default_rng(0)
    return SifterNet(block_size=3, steps=20).fit(rng.integers(0, 256, (3, 5, 6, 3), dtype=np.uint8))


@FUZZ
@given(arrays(max_dims=5, max_side=7))
def test_purify_and_fit_take_anything(purifier, array):
    for candidate in layouts(array):
        out = spins_or_error(lambda: purifier.purify(candidate))
        if out is not None:
            assert out.shape == candidate.shape and out.dtype == np.uint8
        fitted = spins_or_error(lambda: SifterNet(steps=5).fit(candidate))
        if fitted is not None:
            assert fitted.image_shape == candidate.shape[1:]


@FUZZ
@given(arrays(max_dims=5, max_side=7), st.sampled_from(sorted(attacks.ATTACKS)))
def test_attacks_take_anything(array, name):
    out = spins_or_error(lambda: attacks.make_attack(name).apply(array))
    if out is not None:
        assert out.shape == array.shape and out.dtype == np.uint8


def test_memory_mapped_inputs(tmp_path, purifier):
    path = tmp_path / "images.npy"
    data = np.random.default_rng(1).integers(0, 256, (7, 5, 6, 3), dtype=np.uint8)
    np.save(path, data)
    mapped = np.load(path, mmap_mode="r")
    np.testing.assert_array_equal(purifier.purify(mapped), purifier.purify(data))


def test_absurd_requests_fail_fast_with_advice():
    wide = np.ones((1, 50_000), np.int8)
    network = HopfieldNetwork().fit(wide)  # the overlap form needs no N x N matrix
    assert network.recall(wide, steps=10).states.shape == (1, 50_000)
    with pytest.raises(MemoryError, match="use rule='hebbian' with representation='overlap'"):
        network.recall(wide, steps=10, representation="dense")
    with pytest.raises(MemoryError, match="use rule='hebbian'"):
        HopfieldNetwork().fit(wide, rule="projection")


def test_shared_purifier_from_eight_threads_equals_serial(purifier):
    images = np.random.default_rng(2).integers(0, 256, (64, 5, 6, 3), dtype=np.uint8)
    serial = purifier.purify(images)
    results: dict[int, np.ndarray] = {}

    def work(k: int) -> None:
        results[k] = purifier.purify(images[k * 8 : (k + 1) * 8], index_offset=k * 8, num_threads=2)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    np.testing.assert_array_equal(np.concatenate([results[k] for k in range(8)]), serial)
