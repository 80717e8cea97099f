"""Property fuzzing of every public entry point, both ways: whatever arrives, each call
returns a correct result or raises a documented exception (TypeError, ValueError,
MemoryError), and every valid input is accepted with the documented shape and dtype. A
crash would take this test process down."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sifternet import HopfieldNetwork, NearestSeedRepair, SifterNet, _core
from sifternet import reference as ref
from sifternet.binarize import BORDERS, METHODS, binarize
from sifternet.eval import attacks
from sifternet.repair import OUTPUTS

DOCUMENTED = (TypeError, ValueError, MemoryError)
DTYPES = st.one_of(
    hnp.scalar_dtypes(),
    hnp.byte_string_dtypes(max_len=3),
    hnp.unicode_string_dtypes(max_len=3),
    st.just(np.dtype(object)),
)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VALID = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
N = 4  # neurons of the fuzzed network
IMAGE = (5, 6, 3)  # the fuzzed purifier's image shape


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


def result_or_none(call):
    """The call's result, or None for a documented exception (anything else propagates)."""
    try:
        return call()
    except DOCUMENTED:
        return None


def is_array(candidate, dtype, ndims) -> bool:
    return isinstance(candidate, np.ndarray) and candidate.dtype == dtype and candidate.ndim in ndims


def is_spins(candidate, ndims=(2,)) -> bool:
    return is_array(candidate, np.int8, ndims) and bool(np.isin(candidate, (-1, 1)).all())


def spin_arrays(shape):
    return hnp.arrays(np.int8, shape, elements=st.sampled_from([-1, 1]))


def spin_cases(max_n, max_patterns, max_states, *more):
    """(patterns, states, *more): 1..max_patterns patterns and 0..max_states states of the
    same N spins, N in 1..max_n, then a draw from ``strategy(N)`` for each of ``more``."""
    return st.integers(1, max_n).flatmap(
        lambda n: st.tuples(
            spin_arrays(st.tuples(st.integers(1, max_patterns), st.just(n))),
            spin_arrays(st.tuples(st.integers(0, max_states), st.just(n))),
            *(strategy(n) for strategy in more),
        )
    )


def uint8_arrays(shape):
    return hnp.arrays(np.uint8, shape, elements=st.integers(0, 255))


def batch_shapes(min_side=0, max_side=7, min_channels=0):
    """(B, H, W) or (B, H, W, C) with B in 0..4."""
    side = st.integers(min_side, max_side)
    grey = st.tuples(st.integers(0, 4), side, side)
    colour = st.tuples(st.integers(0, 4), side, side, st.integers(min_channels, 5))
    return st.one_of(grey, colour)


def assert_recall_result(result, states: np.ndarray, *, converged: bool = True, energy: bool = True) -> None:
    """``result`` is recall's answer for ``states``: shapes and dtypes of every field,
    ``converged`` / ``energy`` present exactly when computed."""
    b = len(states)
    assert result.states.shape == states.shape and result.states.dtype == np.int8
    assert np.isin(result.states, (-1, 1)).all()
    assert (result.converged is not None) == converged and (result.energy is not None) == energy
    fields = {"flips": np.int64, "steps": np.int64, "converged": np.bool_, "energy": np.float64}
    for field, dtype in fields.items():
        value = getattr(result, field)
        assert value is None or (value.shape == (b,) and value.dtype == dtype), field
    assert (result.flips <= result.steps).all() and (result.flips >= 0).all()


@pytest.fixture(scope="module")
def network():
    return HopfieldNetwork().fit(np.ones((2, N), np.int8))


@pytest.fixture(scope="module")
def purifier():
    rng = np.random.default_rng(0)
    return SifterNet(block_size=3, steps=20).fit(rng.integers(0, 256, (3,) + IMAGE, dtype=np.uint8))


@pytest.fixture(scope="module")
def nearest():
    rng = np.random.default_rng(0)
    return NearestSeedRepair().fit(rng.integers(0, 256, (3,) + IMAGE, dtype=np.uint8))


# -- anything: a result or a documented exception; valid ones always accepted ---------


@FUZZ
@given(arrays())
def test_check_patterns_takes_anything(array):
    for candidate in layouts(array):
        checked = result_or_none(lambda: _core.check_patterns(candidate))
        valid = is_spins(candidate) and 0 not in candidate.shape
        assert (checked is not None) == valid
        if valid:
            assert checked.flags.c_contiguous and checked.dtype == np.int8
            np.testing.assert_array_equal(checked, candidate)


@FUZZ
@given(arrays())
def test_hebbian_weights_take_anything(array):
    for candidate in layouts(array):
        weights = result_or_none(lambda: _core.hebbian_weights(candidate, 1))
        valid = is_spins(candidate) and 0 not in candidate.shape
        assert (weights is not None) == valid
        if valid:
            assert weights.shape == (candidate.shape[1],) * 2 and weights.dtype == np.int32


@FUZZ
@given(arrays())
@pytest.mark.parametrize("representation", ["dense", "overlap"])
def test_recall_takes_anything(network, representation, array):
    for candidate in layouts(array):
        result = result_or_none(lambda: network.recall(candidate, steps=3, representation=representation))
        valid = is_spins(candidate) and candidate.shape[1] == N
        assert (result is not None) == valid
        if valid:
            assert_recall_result(result, candidate)


@FUZZ
@given(
    hnp.arrays(np.int8, st.tuples(st.integers(0, 5), st.integers(1, 9)), elements=st.sampled_from([-1, 1])),
    st.one_of(st.none(), st.integers(-3, 50)),
    st.sampled_from(["random", "sweep", "", "RANDOM"]),
    st.one_of(
        st.none(),
        hnp.arrays(np.float64, st.integers(0, 10), elements=st.floats(allow_nan=True, allow_infinity=True)),
    ),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.integers(-(2**65), 2**65),
)
def test_recall_options_fuzz(states, steps, order, thresholds, margin, seed):
    network = HopfieldNetwork().fit(np.ones((3, states.shape[1]), np.int8))
    result = result_or_none(
        lambda: network.recall(
            states, steps=steps, order=order, thresholds=thresholds, margin=margin, seed=seed, max_sweeps=3
        )
    )
    if result is not None:
        assert_recall_result(result, states)


@FUZZ
@given(arrays(), st.sampled_from(["binary", "restore", "inpaint", "blur"]), st.integers(-2, 9), st.booleans())
def test_repair_takes_anything(array, output, fill_size, joint):
    for candidate in layouts(array):
        states = np.ones(candidate.shape, np.int8)
        result = result_or_none(
            lambda: _core.repair(
                candidate,
                states,
                -states,
                output=output,
                fill_size=fill_size,
                joint_channels=joint,
                num_threads=2,
            )
        )
        valid = is_array(candidate, np.uint8, (4,)) and output in OUTPUTS and fill_size >= 1
        assert (result is not None) == valid
        if valid:
            assert result.shape == candidate.shape and result.dtype == np.uint8


@FUZZ
@given(arrays(max_dims=5, max_side=7), st.sampled_from(["global", "local_mean", "otsu"]), st.integers(-2, 40))
def test_binarize_takes_anything(array, method, block_size):
    for candidate in layouts(array):
        out = result_or_none(lambda: binarize(candidate, method, block_size=block_size))
        valid = is_array(candidate, np.uint8, (3, 4)) and block_size >= 1
        assert (out is not None) == valid
        if valid:
            assert out.shape == candidate.shape and out.dtype == np.int8
            assert set(np.unique(out)) <= {-1, 1}


@FUZZ
@given(arrays(max_dims=5, max_side=7))
def test_purify_takes_anything(purifier, nearest, array):
    for model, candidate in itertools.product((purifier, nearest), layouts(array)):
        out = result_or_none(lambda: model.purify(candidate))
        valid = (
            is_array(candidate, np.uint8, (3, 4, 5)) and candidate.shape[-3:] == IMAGE and candidate.ndim <= 4
        )
        assert (out is not None) == valid
        if valid:
            assert out.shape == candidate.shape and out.dtype == np.uint8


@FUZZ
@given(arrays(max_dims=5, max_side=7))
def test_fit_takes_anything(array):
    for make, candidate in itertools.product((lambda: SifterNet(steps=5), NearestSeedRepair), layouts(array)):
        fitted = result_or_none(lambda: make().fit(candidate))
        valid = is_array(candidate, np.uint8, (3, 4)) and 0 not in candidate.shape
        assert (fitted is not None) == valid
        if valid:
            assert fitted.image_shape == candidate.shape[1:]


@FUZZ
@given(arrays(max_dims=5, max_side=7), st.sampled_from(sorted(attacks.ATTACKS)))
def test_attacks_take_anything(array, name):
    out = result_or_none(lambda: attacks.make_attack(name).apply(array))
    if out is not None:
        assert out.shape == array.shape and out.dtype == np.uint8
    if is_array(array, np.uint8, (3, 4)) and min(array.shape[1:]) >= 3:  # room for BadNet's 3x3 patch
        assert out is not None


# -- valid inputs: always accepted, with the documented shapes and dtypes --------------


@VALID
@given(spin_arrays(st.tuples(st.integers(1, 6), st.integers(1, 40))))
def test_valid_patterns_are_accepted(patterns):
    for candidate in layouts(patterns):
        checked = _core.check_patterns(candidate)
        assert checked.flags.c_contiguous and checked.dtype == np.int8
        np.testing.assert_array_equal(checked, patterns)
        weights = _core.hebbian_weights(candidate, 2)
        assert weights.dtype == np.int32
        np.testing.assert_array_equal(weights, ref.hebbian_weights(patterns))


@VALID
@given(
    spin_cases(40, 6, 5),
    st.sampled_from(["hebbian", "storkey", "projection"]),
    st.booleans(),
)
def test_valid_spins_are_fitted_and_recalled(patterns_and_states, rule, stats):
    patterns, states = patterns_and_states
    network = HopfieldNetwork().fit(patterns, rule=rule)
    assert (network.n_patterns, network.n_neurons, network.rule) == (*patterns.shape, rule)
    for candidate in layouts(states):
        assert_recall_result(
            network.recall(candidate, steps=10, stats=stats), states, converged=stats, energy=stats
        )


@st.composite
def recall_options(draw, n: int):
    """Every option of HopfieldNetwork.recall, drawn from its valid range."""
    representation = draw(st.sampled_from(["auto", "dense", "overlap"]))
    channels = draw(st.integers(1, 4))
    options = dict(
        steps=draw(st.one_of(st.none(), st.integers(0, 60))),
        order=draw(st.sampled_from(["random", "sweep"])),
        seed=draw(st.integers(0, 2**64 - 1)),
        channels=channels,
        channel=draw(st.integers(0, channels - 1)),
        thresholds=draw(st.one_of(st.none(), hnp.arrays(np.float64, n, elements=st.floats(-5, 5)))),
        margin=draw(st.floats(0.0, 0.99)),  # a fraction of P
        agreement=draw(st.floats(0.0, 0.99)) if representation == "overlap" else 0.0,
        max_sweeps=draw(st.integers(1, 4)),
        representation=representation,
        stats=draw(st.booleans()),
        num_threads=draw(st.sampled_from([None, 1, 2])),
    )
    if draw(st.booleans()):
        options["index_offset"] = draw(st.integers(0, 2**40))
    return options


@VALID
@given(spin_cases(12, 5, 4, recall_options))
def test_valid_recall_options_are_accepted(case):
    patterns, states, options = case
    result = HopfieldNetwork().fit(patterns).recall(states, **options)
    stats = options["stats"]
    assert_recall_result(result, states, converged=stats or options["steps"] is None, energy=stats)


@VALID
@given(
    st.tuples(st.integers(0, 3), st.integers(0, 7), st.integers(0, 7), st.integers(0, 4)).flatmap(
        lambda shape: st.tuples(uint8_arrays(shape), spin_arrays(shape), spin_arrays(shape))
    ),
    st.sampled_from(OUTPUTS),
    st.integers(1, 12),
    st.booleans(),
)
def test_valid_repair_batches_are_accepted(arrays3, output, fill_size, joint):
    images, binarised, recalled = arrays3
    want = ref.repair(output, images, binarised, recalled, fill_size, joint)
    for candidate in layouts(images):
        out = _core.repair(
            candidate,
            binarised,
            recalled,
            output=output,
            fill_size=fill_size,
            joint_channels=joint,
            num_threads=2,
        )
        assert out.shape == images.shape and out.dtype == np.uint8
        np.testing.assert_array_equal(out, want)


@VALID
@given(
    batch_shapes().flatmap(uint8_arrays),
    st.sampled_from(METHODS),
    st.integers(1, 2901),
    st.floats(-300, 300),
    st.floats(-2, 2),
    st.sampled_from(BORDERS),
)
def test_valid_images_are_binarised(images, method, block_size, offset, threshold, border):
    for candidate in layouts(images):
        out = binarize(
            candidate, method, block_size=block_size, offset=offset, threshold=threshold, border=border
        )
        assert out.shape == images.shape and out.dtype == np.int8
        assert np.isin(out, (-1, 1)).all()


@VALID
@given(
    st.one_of(uint8_arrays(st.just(IMAGE)), uint8_arrays(st.tuples(st.integers(1, 6), *map(st.just, IMAGE))))
)
def test_valid_batches_are_purified(purifier, images):
    for candidate in layouts(images):
        out = purifier.purify(candidate)
        assert out.shape == images.shape and out.dtype == np.uint8


@pytest.mark.parametrize(
    "shape",
    [(0, 5, 6), (0, 5, 6, 3)],
    ids=["grey", "colour"],
)
def test_empty_batch_is_purified(shape):
    rng = np.random.default_rng(3)
    fitted = SifterNet(block_size=3, steps=20).fit(rng.integers(0, 256, (2,) + shape[1:], dtype=np.uint8))
    out = fitted.purify(np.zeros(shape, np.uint8))
    assert out.shape == shape and out.dtype == np.uint8


@VALID
@given(
    batch_shapes(min_side=1, min_channels=1)
    .map(lambda shape: (max(shape[0], 1),) + shape[1:])
    .flatmap(uint8_arrays),
    st.booleans(),
)
def test_valid_seed_images_are_fitted(seeds, with_labels):
    labels = np.arange(len(seeds)) if with_labels else None
    for candidate in layouts(seeds):
        fitted = SifterNet(steps=5).fit(candidate, labels)
        assert fitted.is_fitted and fitted.image_shape == seeds.shape[1:]
        assert len(fitted.networks) == (seeds.shape[3] if seeds.ndim == 4 else 1)
        out = fitted.purify(candidate)
        assert out.shape == seeds.shape and out.dtype == np.uint8


@VALID
@given(
    batch_shapes(min_side=3, max_side=9, min_channels=1).flatmap(uint8_arrays),
    st.sampled_from(sorted(attacks.ATTACKS)),
)
def test_valid_batches_are_attacked(images, name):
    for candidate in layouts(images):
        out = attacks.make_attack(name).apply(candidate)
        assert out.shape == images.shape and out.dtype == np.uint8


# -- inputs the fuzzers hit rarely ---------------------------------------------------


@pytest.mark.parametrize(
    "shape", [(2, 0, 5), (2, 5, 0, 3), (2, 5, 5, 0)], ids=["no-rows", "no-columns", "no-channels"]
)
def test_wanet_on_images_without_pixels_gives_a_result_or_a_documented_error(shape):
    out = result_or_none(lambda: attacks.wanet(np.zeros(shape, np.uint8)))
    assert out is None or (out.shape == shape and out.dtype == np.uint8)


def test_memory_mapped_inputs(tmp_path, purifier):
    path = tmp_path / "images.npy"
    data = np.random.default_rng(1).integers(0, 256, (7,) + IMAGE, dtype=np.uint8)
    np.save(path, data)
    mapped = np.load(path, mmap_mode="r")
    np.testing.assert_array_equal(purifier.purify(mapped), purifier.purify(data))


def test_wide_network_recalls_in_the_overlap_form():
    wide = np.ones((1, 50_000), np.int8)
    network = HopfieldNetwork().fit(wide)  # the overlap form needs no N x N matrix
    assert network.recall(wide, steps=10).states.shape == (1, 50_000)


def test_absurd_dense_recall_fails_fast_with_advice():
    wide = np.ones((1, 50_000), np.int8)
    with pytest.raises(MemoryError, match="use rule='hebbian' with representation='overlap'"):
        HopfieldNetwork().fit(wide).recall(wide, steps=10, representation="dense")


def test_absurd_projection_fit_fails_fast_with_advice():
    with pytest.raises(MemoryError, match="use rule='hebbian' with representation='overlap'"):
        HopfieldNetwork().fit(np.ones((1, 50_000), np.int8), rule="projection")


def test_shared_purifier_from_eight_threads_equals_serial(purifier):
    images = np.random.default_rng(2).integers(0, 256, (64,) + IMAGE, dtype=np.uint8)
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
