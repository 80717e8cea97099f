"""The C++ kernel against the NumPy reference, and HopfieldNetwork's contract."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sifternet
from sifternet import HopfieldNetwork, _core
from sifternet import reference as ref

SPINS = np.array([-1, 1], dtype=np.int8)


def spins(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.choice(SPINS, size=shape)


def flip_fraction(rng: np.random.Generator, patterns: np.ndarray, fraction: float) -> np.ndarray:
    noisy = patterns.copy()
    for row in noisy:
        idx = rng.choice(row.size, int(fraction * row.size), replace=False)
        row[idx] *= -1
    return noisy


def reference_weights(network: HopfieldNetwork) -> np.ndarray:
    """The dense weights the reference recalls with: its own for Hebbian, else the net's."""
    if network.rule == "hebbian":
        return ref.hebbian_weights(network.patterns)
    return network._dense_weights()


def assert_matches_reference(network, states, *, representation="auto", **options):
    got = network.recall(states, representation=representation, stats=True, **options)
    offset = options.pop("index_offset", 0)
    options["margin"] = options.get("margin", 0.0) * network.n_patterns  # the reference's is absolute
    want = ref.recall(
        reference_weights(network),
        states,
        indices=np.arange(offset, offset + len(states)),
        patterns=network.patterns,
        **options,
    )
    np.testing.assert_array_equal(got.states, want.states)
    np.testing.assert_array_equal(got.flips, want.flips)
    np.testing.assert_array_equal(got.steps, want.steps)
    np.testing.assert_array_equal(got.converged, want.converged)
    np.testing.assert_allclose(got.energy, want.energy, rtol=1e-9, atol=1e-9)


@settings(max_examples=120, deadline=None)
@given(
    n=st.integers(1, 48),
    p=st.integers(1, 70),
    b=st.integers(0, 5),
    steps=st.one_of(st.none(), st.integers(0, 200)),
    order=st.sampled_from(["random", "sweep"]),
    seed=st.integers(0, 2**64 - 1),
    offset=st.integers(0, 2**40),
    rule=st.sampled_from(["hebbian", "storkey", "projection"]),
    representation=st.sampled_from(["auto", "dense", "overlap"]),
    with_thresholds=st.booleans(),
    margin=st.sampled_from([0.0, 0.0, 0.05, 0.2, 0.6]),
    agreement=st.sampled_from([0.0, 0.0, 0.1, 0.35, 0.8]),
    data=st.randoms(use_true_random=False),
)
def test_kernel_equals_reference(
    n,
    p,
    b,
    steps,
    order,
    seed,
    offset,
    rule,
    representation,
    with_thresholds,
    margin,
    agreement,
    data,
):
    rng = np.random.default_rng(data.getrandbits(32))
    network = HopfieldNetwork(num_threads=2).fit(spins(rng, p, n), rule=rule)
    if rule != "hebbian":
        representation, agreement = "dense", 0.0
    elif agreement > 0:
        representation = "overlap"
    thresholds = rng.normal(0.0, 0.2, n) if with_thresholds else None
    assert_matches_reference(
        network,
        spins(rng, b, n),
        representation=representation,
        steps=steps,
        order=order,
        seed=seed,
        index_offset=offset,
        thresholds=thresholds,
        margin=margin if rule == "hebbian" else margin / 8,
        agreement=agreement,
        channel=int(rng.integers(0, 3)),
        channels=3,
    )


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 40),
    p=st.integers(1, 90),
    plus=st.sampled_from([0.01, 0.05, 0.95, 0.99]),
    steps=st.one_of(st.none(), st.integers(0, 200)),
    agreement=st.sampled_from([0.0, 0.5, 0.9]),
    data=st.randoms(use_true_random=False),
)
def test_sparse_memories_equal_reference(n, p, plus, steps, agreement, data):
    """Memories that nearly all agree at a neuron (the repair preset's highlights) take
    the kernel's minority sums; the result stays the reference's."""
    rng = np.random.default_rng(data.getrandbits(32))
    patterns = np.where(rng.random((p, n)) < plus, 1, -1).astype(np.int8)
    network = HopfieldNetwork().fit(patterns)
    states = np.where(rng.random((4, n)) < plus, 1, -1).astype(np.int8)
    states[:, rng.integers(0, n, 3)] *= -1
    assert_matches_reference(
        network,
        states,
        representation="overlap",
        steps=steps,
        order="sweep",
        seed=5,
        agreement=agreement,
        max_sweeps=4,
    )


@pytest.mark.parametrize("n", [784, 1024])
@pytest.mark.parametrize("p", [1, 86, 1100])
@pytest.mark.parametrize("representation", ["dense", "overlap"])
def test_image_sizes_equal_reference(n, p, representation):
    rng = np.random.default_rng(n + p)
    network = HopfieldNetwork().fit(spins(rng, p, n))
    for order in ("random", "sweep"):
        assert_matches_reference(
            network,
            spins(rng, 2, n),
            representation=representation,
            steps=1200,
            order=order,
            seed=7,
        )


@pytest.mark.parametrize("rule", ["storkey", "projection"])
def test_float_rules_equal_reference_at_image_size(rule):
    rng = np.random.default_rng(1)
    network = HopfieldNetwork().fit(spins(rng, 20, 784), rule=rule)
    assert_matches_reference(network, spins(rng, 2, 784), steps=900, seed=3)


LEARNING_PATTERNS = spins(np.random.default_rng(2), 37, 65)


def test_hebbian_kernel_weights_equal_reference():
    np.testing.assert_array_equal(
        _core.hebbian_weights(LEARNING_PATTERNS, 2), ref.hebbian_weights(LEARNING_PATTERNS)
    )


def test_storkey_kernel_weights_equal_reference():
    np.testing.assert_allclose(
        _core.storkey_weights(LEARNING_PATTERNS, 2),
        ref.storkey_weights(LEARNING_PATTERNS),
        rtol=1e-12,
        atol=1e-12,
    )


def test_projection_weights_equal_reference():
    network = HopfieldNetwork().fit(LEARNING_PATTERNS, rule="projection")
    np.testing.assert_allclose(network.weights, ref.projection_weights(LEARNING_PATTERNS), atol=1e-10)


def test_hebbian_weights_property_is_the_kernel_sum_over_n():
    network = HopfieldNetwork().fit(LEARNING_PATTERNS)
    np.testing.assert_allclose(network.weights, ref.hebbian_weights(LEARNING_PATTERNS) / 65)


def test_representations_are_bit_identical():
    rng = np.random.default_rng(3)
    network = HopfieldNetwork().fit(spins(rng, 43, 1024))
    states = spins(rng, 50, 1024)
    dense = network.recall(states, steps=500, seed=9, representation="dense")
    overlap = network.recall(states, steps=500, seed=9, representation="overlap")
    for field in ("states", "flips", "steps", "converged", "energy"):
        np.testing.assert_array_equal(getattr(dense, field), getattr(overlap, field))


FEW_PATTERNS = spins(np.random.default_rng(4), 5, 400)


@pytest.mark.parametrize("rule", ["hebbian", "storkey", "projection"])
def test_stored_patterns_are_fixed_points(rule):
    network = HopfieldNetwork().fit(FEW_PATTERNS, rule=rule)
    fixed = network.recall(FEW_PATTERNS, steps=2000)
    np.testing.assert_array_equal(fixed.states, FEW_PATTERNS)
    assert fixed.converged.all() and not fixed.flips.any()


@pytest.mark.parametrize("rule", ["hebbian", "storkey", "projection"])
def test_ten_percent_noise_is_repaired(rule):
    network = HopfieldNetwork().fit(FEW_PATTERNS, rule=rule)
    noisy = flip_fraction(np.random.default_rng(4), FEW_PATTERNS, 0.10)
    repaired = network.recall(noisy, steps=None, order="sweep")
    np.testing.assert_array_equal(repaired.states, FEW_PATTERNS)
    assert repaired.converged.all()


def gate_case():
    rng = np.random.default_rng(11)
    return HopfieldNetwork().fit(spins(rng, 20, 300)), spins(rng, 30, 300)


def test_margin_only_ever_reduces_flips():
    network, states = gate_case()
    flips = [network.recall(states, steps=300, margin=m).flips.sum() for m in (0.0, 0.005, 0.015, 0.999)]
    assert flips[0] > flips[1] > flips[2] and flips[3] == 0  # |W s| < P = 20 < 0.999 P + |theta|


def test_agreement_only_ever_reduces_flips():
    network, states = gate_case()
    gated = [network.recall(states, steps=300, agreement=k).flips.sum() for k in (0.0, 0.2, 0.5, 0.99)]
    assert gated[0] > gated[1] > gated[2] >= gated[3]


@pytest.mark.parametrize("order", ["random", "sweep"])
def test_energy_never_increases(order):
    rng = np.random.default_rng(5)
    network = HopfieldNetwork().fit(spins(rng, 12, 200))
    state = spins(rng, 1, 200)
    thresholds = rng.normal(0, 0.1, 200)
    energies = [network.energy(state, thresholds=thresholds)[0]]
    for steps in range(1, 600, 7):  # same stream, growing prefixes of one run
        after = network.recall(state, steps=steps, order=order, thresholds=thresholds)
        energies.append(after.energy[0])
    assert np.all(np.diff(energies) <= 1e-9)


def test_energy_matches_quadratic_form():
    rng = np.random.default_rng(6)
    network = HopfieldNetwork().fit(spins(rng, 9, 50))
    states = spins(rng, 4, 50)
    theta = rng.normal(size=50)
    w = network.weights
    expected = [-0.5 * s @ w @ s + theta @ s for s in states.astype(float)]
    np.testing.assert_allclose(network.energy(states, thresholds=theta), expected)


@pytest.fixture(scope="module")
def serial_run():
    """A batch above the kernel's serial cut-off (threads really run) and, per
    representation, its one-thread recall of rows keyed 1000 .. 1600."""
    rng = np.random.default_rng(7)
    network = HopfieldNetwork().fit(spins(rng, 30, 256))
    states = spins(rng, 601, 256)
    one = {
        representation: network.recall(
            states, steps=500, seed=11, representation=representation, index_offset=1000, num_threads=1
        )
        for representation in ("dense", "overlap")
    }
    return network, states, one


@pytest.mark.parametrize("threads", [2, 8])
@pytest.mark.parametrize("representation", ["dense", "overlap"])
def test_thread_count_does_not_change_results(serial_run, representation, threads):
    network, states, one = serial_run
    many = network.recall(
        states, steps=500, seed=11, representation=representation, index_offset=1000, num_threads=threads
    )
    np.testing.assert_array_equal(many.states, one[representation].states)
    np.testing.assert_array_equal(many.flips, one[representation].flips)


@pytest.mark.parametrize("representation", ["dense", "overlap"])
def test_batch_split_does_not_change_results(serial_run, representation):
    network, states, one = serial_run
    cuts = [0, 1, 77, 200, 601]
    chunks = [
        network.recall(
            states[a:z],
            steps=500,
            seed=11,
            representation=representation,
            index_offset=1000 + a,
            num_threads=2,
        ).states
        for a, z in zip(cuts, cuts[1:])
    ]
    np.testing.assert_array_equal(np.concatenate(chunks), one[representation].states)


@pytest.mark.parametrize("representation", ["dense", "overlap"])
def test_shuffled_rows_with_their_indices_give_the_same_rows(serial_run, representation):
    network, states, one = serial_run
    order = np.random.default_rng(8).permutation(601)
    shuffled = network.recall(
        states[order], steps=500, seed=11, representation=representation, indices=1000 + order
    )
    np.testing.assert_array_equal(shuffled.states, one[representation].states[order])


def test_streams_follow_method_md():
    # Values fixed by the formulas of docs/method.md (Random streams), checked against a direct transcription.
    assert ref.mix(0) == 0xE220A8397B1DCDAF
    key = ref.stream_key(seed=1, index=2, channels=3, channel=1)
    assert key == ref.mix(ref.mix(1) ^ 7)


def test_openmp_is_built_in():
    import os

    if os.environ.get("SIFTERNET_ALLOW_SERIAL") == "1":
        pytest.skip("SIFTERNET_ALLOW_SERIAL=1: a serial build is accepted")
    assert _core.has_openmp(), "the extension was built without OpenMP (see setup.py's warning)"


def read_only(array: np.ndarray) -> np.ndarray:
    frozen = array.copy()
    frozen.flags.writeable = False
    return frozen


LAYOUTS = {
    "strided": lambda base: base[:, ::2],
    "reversed": lambda base: base[::-1, 64:0:-1],
    "fortran": lambda base: np.asfortranarray(base[:, :64]),
    "read_only": lambda base: read_only(base[:, :64]),
}


@pytest.fixture(scope="module")
def layout_case():
    rng = np.random.default_rng(8)
    return HopfieldNetwork().fit(spins(rng, 4, 64)), spins(rng, 10, 128)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_odd_state_layouts_give_the_contiguous_result(layout_case, layout):
    network, base = layout_case
    states = LAYOUTS[layout](base)
    want = network.recall(np.ascontiguousarray(states), steps=100).states
    np.testing.assert_array_equal(network.recall(states, steps=100).states, want)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_odd_pattern_layouts_give_the_contiguous_network(layout_case, layout):
    _, base = layout_case
    patterns = LAYOUTS[layout](base)
    states = base[:3, :64].copy()
    want = HopfieldNetwork().fit(np.ascontiguousarray(patterns)).recall(states, steps=100).states
    np.testing.assert_array_equal(HopfieldNetwork().fit(patterns).recall(states, steps=100).states, want)


@pytest.mark.parametrize("layout", ["strided", "reversed", "fortran"])
def test_recall_does_not_modify_its_input(layout_case, layout):
    network, base = layout_case
    base = base.copy()
    before = base.copy()
    network.recall(LAYOUTS[layout](base), steps=100)
    np.testing.assert_array_equal(base, before)


# -- byte order: every multi-byte array the API takes, big-endian, gives the native result


def big_endian(array: np.ndarray) -> np.ndarray:
    swapped = array.astype(array.dtype.newbyteorder(">"))
    assert not swapped.dtype.isnative and swapped.dtype.itemsize > 1  # really byte-swapped
    return swapped


@pytest.fixture(scope="module")
def byte_order_case():
    """A network, states, thresholds that change the result, and indices beyond 2**32."""
    rng = np.random.default_rng(13)
    network = HopfieldNetwork(num_threads=1).fit(spins(rng, 6, 48))
    states = spins(rng, 5, 48)
    thresholds = rng.normal(0.0, 0.4, 48)
    indices = np.array([3, 2**40 + 1, 77, 2**33, 9], np.uint64)
    plain = network.recall(states, steps=200, indices=indices).states
    assert not np.array_equal(
        network.recall(states, steps=200, indices=indices, thresholds=thresholds).states, plain
    )
    return network, states, thresholds, indices


def assert_same_recall(got, want):
    for field in ("states", "flips", "steps", "converged", "energy"):
        np.testing.assert_array_equal(getattr(got, field), getattr(want, field))


@pytest.mark.parametrize("representation", ["dense", "overlap"])
def test_big_endian_thresholds_equal_native(byte_order_case, representation):
    network, states, thresholds, indices = byte_order_case
    options = dict(steps=200, indices=indices, representation=representation)
    want = network.recall(states, thresholds=thresholds, **options)
    assert_same_recall(network.recall(states, thresholds=big_endian(thresholds), **options), want)


@pytest.mark.parametrize("dtype", [">u8", ">i8", ">u4", ">i4", ">u2", ">i2"])
@pytest.mark.parametrize("representation", ["dense", "overlap"])
def test_big_endian_indices_equal_native(byte_order_case, representation, dtype):
    network, states, _, indices = byte_order_case
    indices = indices if np.dtype(dtype).itemsize == 8 else indices % 1000  # what the type holds
    want = network.recall(states, steps=200, indices=indices, representation=representation)
    got = network.recall(states, steps=200, indices=indices.astype(dtype), representation=representation)
    assert_same_recall(got, want)


def test_energy_takes_big_endian_thresholds(byte_order_case):
    network, states, thresholds, _ = byte_order_case
    np.testing.assert_array_equal(
        network.energy(states, thresholds=big_endian(thresholds)),
        network.energy(states, thresholds=thresholds),
    )


def kernel_recall(kernel, memory, states, indices, thresholds):
    return kernel(
        memory,
        states,
        indices,
        steps=200,
        order="random",
        seed=3,
        channel=0,
        channels=1,
        thresholds=thresholds,
        margin=0.0,
        agreement=0.0,
        max_sweeps=5,
        stats=True,
        num_threads=1,
    )


@pytest.mark.parametrize("rule", ["hebbian", "storkey"])  # int32 and float64 dense weights
def test_dense_kernel_takes_big_endian_weights_indices_and_thresholds(byte_order_case, rule):
    _, states, thresholds, indices = byte_order_case
    network = HopfieldNetwork().fit(byte_order_case[0].patterns, rule=rule)
    weights = network._dense_weights()
    want = kernel_recall(_core.recall_dense, weights, states, indices, thresholds)
    got = kernel_recall(
        _core.recall_dense, big_endian(weights), states, big_endian(indices), big_endian(thresholds)
    )
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_overlap_kernel_takes_big_endian_indices_and_thresholds(byte_order_case):
    network, states, thresholds, indices = byte_order_case
    want = kernel_recall(_core.recall_overlap, network.patterns, states, indices, thresholds)
    got = kernel_recall(
        _core.recall_overlap, network.patterns, states, big_endian(indices), big_endian(thresholds)
    )
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("rule", ["storkey", "projection"])
def test_from_dict_takes_big_endian_weights(byte_order_case, rule):
    network, states, _, indices = byte_order_case
    fitted = HopfieldNetwork().fit(network.patterns, rule=rule)
    state = fitted.to_dict()
    copy = HopfieldNetwork.from_dict({**state, "weights": big_endian(state["weights"])})
    np.testing.assert_array_equal(copy.weights, fitted.weights)
    assert_same_recall(
        copy.recall(states, steps=200, indices=indices), fitted.recall(states, steps=200, indices=indices)
    )


def test_empty_batch():
    network = HopfieldNetwork().fit(np.ones((1, 8), np.int8))
    result = network.recall(np.ones((0, 8), np.int8), steps=10)
    assert result.states.shape == (0, 8) and result.flips.shape == (0,)


BAD_STATES = [
    (np.ones((2, 8), np.float32), TypeError, "states: expected dtype int8, got float32"),
    ([[1] * 8], TypeError, "states: expected a numpy array of dtype int8, got list"),
    (np.ones(8, np.int8), ValueError, r"states: expected a 2-D array, got shape \(8,\)"),
    (np.ones((2, 7), np.int8), ValueError, r"expected shape \(B, 8\) .* got \(2, 7\)"),
    (np.zeros((2, 8), np.int8), ValueError, "values must be -1 or \\+1, found 0 at flat index 0"),
]


@pytest.mark.parametrize("representation", ["dense", "overlap"])
@pytest.mark.parametrize(("states", "error", "message"), BAD_STATES)
def test_bad_states_are_refused(states, error, message, representation):
    network = HopfieldNetwork().fit(np.ones((2, 8), np.int8))
    with pytest.raises(error, match=message):
        network.recall(states, steps=5, representation=representation)


@pytest.mark.parametrize(
    ("patterns", "error", "message"),
    [
        (np.ones((0, 8), np.int8), ValueError, r"P >= 1 and N >= 1, got \(0, 8\)"),
        (np.ones((2, 0), np.int8), ValueError, r"P >= 1 and N >= 1, got \(2, 0\)"),
        (np.ones((2, 8), np.int64), TypeError, "patterns: expected dtype int8, got int64"),
        (np.full((2, 8), 3, np.int8), ValueError, "patterns: values must be -1 or \\+1"),
        (np.ones((2, 2, 2), np.int8), ValueError, "patterns: expected a 2-D array"),
    ],
)
@pytest.mark.parametrize("rule", ["hebbian", "storkey", "projection"])
def test_bad_patterns_are_refused(patterns, error, message, rule):
    with pytest.raises(error, match=message):
        HopfieldNetwork().fit(patterns, rule=rule)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"steps": -1}, ValueError, "steps: expected a non-negative count or None, got -1"),
        ({"order": "spiral"}, ValueError, "order: expected one of 'random', 'sweep'; got 'spiral'"),
        ({"seed": -1}, ValueError, r"seed: expected an integer in \[0, 2\*\*64\), got -1"),
        ({"seed": 2**64}, ValueError, "seed: expected an integer"),
        ({"channel": 3, "channels": 3}, ValueError, "channel: expected 0 <= channel < channels"),
        ({"thresholds": np.zeros(7)}, ValueError, r"thresholds: expected shape \(8,\), got \(7,\)"),
        ({"thresholds": np.full(8, np.nan)}, ValueError, "thresholds: expected finite values"),
        ({"thresholds": np.zeros(8, np.float32)}, TypeError, "thresholds: expected dtype float64"),
        ({"max_sweeps": 0}, ValueError, "max_sweeps: expected at least 1"),
        ({"margin": -1.0}, ValueError, r"margin: expected a fraction in \[0, 1\), got -1.0"),
        ({"margin": 1.0}, ValueError, r"margin: expected a fraction in \[0, 1\), got 1.0"),
        ({"margin": float("inf")}, ValueError, "margin: expected a finite number, got inf"),
        ({"agreement": 1.0}, ValueError, r"agreement: expected a fraction in \[0, 1\)"),
        ({"agreement": 0.5, "representation": "dense"}, ValueError, "agreement: needs the overlap form"),
        ({"num_threads": 0}, ValueError, "num_threads: expected a positive count"),
        ({"num_threads": 1.5}, TypeError, "num_threads: expected an int or None"),
        (
            {"index_offset": -3},
            ValueError,
            r"index_offset: expected global indices in \[0, 2\*\*64\), got -3..-2",
        ),
        ({"indices": np.arange(3)}, ValueError, r"indices: expected shape \(2,\)"),
        ({"indices": np.array([0, -1])}, ValueError, r"indices: expected global indices in .*, got -1..0"),
        ({"indices": np.zeros(2), "steps": 1}, TypeError, "indices: expected an integer array"),
        ({"representation": "sparse"}, ValueError, "representation: expected one of"),
    ],
)
def test_bad_options_are_refused(options, error, message):
    network = HopfieldNetwork().fit(np.ones((2, 8), np.int8))
    options = {"steps": 5, **options}
    with pytest.raises(error, match=message):
        network.recall(np.ones((2, 8), np.int8), **options)


def test_unfitted_network_refuses_recall():
    with pytest.raises(RuntimeError, match=r"not fitted yet: call fit\(patterns\)"):
        HopfieldNetwork().recall(np.ones((1, 4), np.int8))


def test_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="rule: expected one of .*'oja'"):
        HopfieldNetwork().fit(np.ones((1, 4), np.int8), rule="oja")


@pytest.mark.parametrize("rule", ["storkey", "projection"])
def test_overlap_form_needs_the_hebbian_rule(rule):
    network = HopfieldNetwork().fit(np.ones((1, 4), np.int8), rule=rule)
    with pytest.raises(ValueError, match=f"representation='overlap' needs rule='hebbian', not '{rule}'"):
        network.recall(np.ones((1, 4), np.int8), representation="overlap")


def test_too_large_dense_weights_are_refused_with_advice():
    with pytest.raises(MemoryError, match="use rule='hebbian' with representation='overlap'"):
        HopfieldNetwork().fit(np.ones((1, 40_000), np.int8), rule="storkey")


@pytest.fixture(scope="module", params=["hebbian", "storkey", "projection"])
def round_trip_case(request):
    """(rule, network, states, the states it recalls)."""
    rng = np.random.default_rng(9)
    network = HopfieldNetwork(num_threads=1).fit(spins(rng, 6, 40), rule=request.param)
    states = spins(rng, 5, 40)
    return request.param, network, states, network.recall(states, steps=60, seed=4).states


@pytest.mark.parametrize(
    "copy",
    [lambda n: pickle.loads(pickle.dumps(n)), lambda n: HopfieldNetwork.from_dict(n.to_dict())],
    ids=["pickle", "dict"],
)
def test_round_trip_keeps_the_network(round_trip_case, copy):
    rule, network, states, want = round_trip_case
    restored = copy(network)
    assert (restored.rule, restored.n_patterns, restored.n_neurons) == (rule, 6, 40)
    np.testing.assert_array_equal(restored.recall(states, steps=60, seed=4).states, want)


def test_unfitted_network_pickles():
    assert "unfitted" in repr(pickle.loads(pickle.dumps(HopfieldNetwork())))


def test_repr_names_rule_size_and_threads(round_trip_case):
    rule, network, _, _ = round_trip_case
    assert repr(network) == f"HopfieldNetwork(rule={rule!r}, n_neurons=40, n_patterns=6, num_threads=1)"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"weights": np.zeros((5, 5))}, r"weights: expected a float64 array of shape \(6, 6\)"),
        ({"weights": np.full((6, 6), np.inf)}, "weights: expected finite values"),
        ({"rule": "oja"}, "rule: expected one of .*'oja'"),
    ],
)
def test_tampered_dict_is_refused(change, message):
    state = HopfieldNetwork().fit(np.ones((2, 6), np.int8), rule="storkey").to_dict()
    with pytest.raises(ValueError, match=message):
        HopfieldNetwork.from_dict({**state, **change})


def test_stats_off_reports_unknowns():
    network = HopfieldNetwork().fit(np.ones((1, 16), np.int8))
    result = network.recall(-np.ones((3, 16), np.int8), steps=20, stats=False)
    assert result.converged is None and result.energy is None
    assert (result.steps == 20).all()


IMPORT_PROBE = """
try:
    import sifternet
except ImportError as error:
    print(type(error).__name__, type(error.__cause__).__name__, sep="|")
    print(error)
else:
    print("imported", sifternet.__file__)
"""


def test_import_without_the_compiled_kernel_gives_a_build_hint(tmp_path):
    """A source tree without the compiled kernel (what `python -m pytest` imports from the
    repository root when the package is installed non-editable) names the fix."""
    copy = tmp_path / "sifternet"
    shutil.copytree(
        Path(sifternet.__file__).parent, copy, ignore=shutil.ignore_patterns("_core*", "__pycache__", "data")
    )
    assert not list(copy.glob("_core*"))
    # -S and no PYTHON* variables: no installed (or editable) kernel can be found instead
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    result = subprocess.run(
        [sys.executable, "-S", "-c", IMPORT_PROBE],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    kinds, message = result.stdout.rstrip("\n").split("\n")
    assert kinds == "ImportError|ModuleNotFoundError"  # the hint, raised from the original error
    assert message == (
        f"sifternet's compiled kernel (sifternet._core) is not built in {copy}: install with "
        "`pip install .` and run `pytest` (not `python -m pytest`) from the repository root, or "
        "build in place with `python setup.py build_ext --inplace`"
    )
