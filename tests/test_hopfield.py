"""The C++ kernel against the NumPy reference, and HopfieldNetwork's contract."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
    margin=st.sampled_from([0.0, 0.0, 0.5, 2.0, 7.25]),
    agreement=st.sampled_from([0.0, 0.0, 0.1, 0.35, 0.8]),
    data=st.randoms(use_true_random=False),
)
def test_kernel_equals_reference(
    n, p, b, steps, order, seed, offset, rule, representation, with_thresholds, margin,
    agreement, data,
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
    assert_matches_reference(network, states, representation="overlap", steps=steps, order="sweep", seed=5,
                             agreement=agreement, max_sweeps=4)


@pytest.mark.parametrize("n", [784, 1024])
@pytest.mark.parametrize("p", [1, 86, 1100])
@pytest.mark.parametrize("representation", ["dense", "overlap"])
def test_image_sizes_equal_reference(n, p, representation):
    rng = np.random.default_rng(n + p)
    network = HopfieldNetwork().fit(spins(rng, p, n))
    for order in ("random", "sweep"):
        assert_matches_reference(
            network, spins(rng, 2, n), representation=representation, steps=1200, order=order,
            seed=7,
        )


@pytest.mark.parametrize("rule", ["storkey", "projection"])
def test_float_rules_equal_reference_at_image_size(rule):
    rng = np.random.default_rng(1)
    network = HopfieldNetwork().fit(spins(rng, 20, 784), rule=rule)
    assert_matches_reference(network, spins(rng, 2, 784), steps=900, seed=3)


def test_learning_rules_equal_reference():
    rng = np.random.default_rng(2)
    patterns = spins(rng, 37, 65)
    np.testing.assert_array_equal(_core.hebbian_weights(patterns, 2), ref.hebbian_weights(patterns))
    np.testing.assert_allclose(
        _core.storkey_weights(patterns, 2), ref.storkey_weights(patterns), rtol=1e-12, atol=1e-12
    )
    network = HopfieldNetwork().fit(patterns, rule="projection")
    np.testing.assert_allclose(network.weights, ref.projection_weights(patterns), atol=1e-10)
    hebbian = HopfieldNetwork().fit(patterns)
    np.testing.assert_allclose(hebbian.weights, ref.hebbian_weights(patterns) / 65)


def test_representations_are_bit_identical():
    rng = np.random.default_rng(3)
    network = HopfieldNetwork().fit(spins(rng, 43, 1024))
    states = spins(rng, 50, 1024)
    dense = network.recall(states, steps=500, seed=9, representation="dense")
    overlap = network.recall(states, steps=500, seed=9, representation="overlap")
    for field in ("states", "flips", "steps", "converged", "energy"):
        np.testing.assert_array_equal(getattr(dense, field), getattr(overlap, field))


@pytest.mark.parametrize("rule", ["hebbian", "storkey", "projection"])
def test_stored_patterns_are_fixed_points_and_noise_is_repaired(rule):
    rng = np.random.default_rng(4)
    patterns = spins(rng, 5, 400)
    network = HopfieldNetwork().fit(patterns, rule=rule)
    fixed = network.recall(patterns, steps=2000)
    np.testing.assert_array_equal(fixed.states, patterns)
    assert fixed.converged.all() and not fixed.flips.any()
    noisy = flip_fraction(rng, patterns, 0.10)
    repaired = network.recall(noisy, steps=None, order="sweep")
    np.testing.assert_array_equal(repaired.states, patterns)
    assert repaired.converged.all()


def test_margin_only_ever_reduces_flips():
    rng = np.random.default_rng(11)
    network = HopfieldNetwork().fit(spins(rng, 20, 300))
    states = spins(rng, 30, 300)
    flips = [network.recall(states, steps=300, margin=m).flips.sum() for m in (0.0, 0.1, 0.3, 21.0)]
    assert flips[0] > flips[1] > flips[2] and flips[3] == 0  # |W s| <= P = 20
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


@pytest.mark.parametrize("representation", ["dense", "overlap"])
def test_thread_count_and_batch_split_do_not_change_results(representation):
    rng = np.random.default_rng(7)
    network = HopfieldNetwork().fit(spins(rng, 30, 256))
    states = spins(rng, 601, 256)  # above the kernel's serial cut-off: threads really run
    options = dict(steps=500, seed=11, representation=representation, index_offset=1000)
    one = network.recall(states, num_threads=1, **options)
    for threads in (2, 8):
        many = network.recall(states, num_threads=threads, **options)
        np.testing.assert_array_equal(many.states, one.states)
        np.testing.assert_array_equal(many.flips, one.flips)
    cuts = [0, 1, 77, 200, 601]
    chunks = [
        network.recall(
            states[a:z], num_threads=2, **{**options, "index_offset": 1000 + a}
        ).states
        for a, z in zip(cuts, cuts[1:])
    ]
    np.testing.assert_array_equal(np.concatenate(chunks), one.states)
    order = rng.permutation(601)
    shuffled = network.recall(
        states[order], indices=1000 + order, **{k: v for k, v in options.items() if k != "index_offset"}
    )
    np.testing.assert_array_equal(shuffled.states, one.states[order])


def test_streams_follow_method_md():
    # Values fixed by METHOD.md's formulas, checked against a direct transcription.
    assert ref.mix(0) == 0xE220A8397B1DCDAF
    key = ref.stream_key(seed=1, index=2, channels=3, channel=1)
    assert key == ref.mix(ref.mix(1) ^ 7)


def test_openmp_is_built_in():
    import os

    if os.environ.get("SIFTERNET_ALLOW_SERIAL") == "1":
        pytest.skip("SIFTERNET_ALLOW_SERIAL=1: a serial build is accepted")
    assert _core.has_openmp(), "the extension was built without OpenMP (see setup.py's warning)"


def test_input_is_not_modified_and_odd_layouts_are_accepted():
    rng = np.random.default_rng(8)
    network = HopfieldNetwork().fit(spins(rng, 4, 64))
    base = spins(rng, 10, 128)
    strided = base[:, ::2]
    fortran = np.asfortranarray(base[:, :64])
    readonly = base[:, :64].copy()
    readonly.flags.writeable = False
    before = base.copy()
    want = network.recall(np.ascontiguousarray(strided), steps=100).states
    np.testing.assert_array_equal(network.recall(strided, steps=100).states, want)
    want = network.recall(np.ascontiguousarray(fortran), steps=100).states
    np.testing.assert_array_equal(network.recall(fortran, steps=100).states, want)
    network.recall(readonly, steps=100)
    np.testing.assert_array_equal(base, before)
    big_endian = network.patterns.astype(">i1")
    HopfieldNetwork().fit(big_endian)


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


@pytest.mark.parametrize(("states", "error", "message"), BAD_STATES)
def test_bad_states_are_refused(states, error, message):
    network = HopfieldNetwork().fit(np.ones((2, 8), np.int8))
    for representation in ("dense", "overlap"):
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
        ({"order": "spiral"}, ValueError, "order: expected 'random' or 'sweep', got 'spiral'"),
        ({"seed": -1}, ValueError, r"seed: expected an integer in \[0, 2\*\*64\), got -1"),
        ({"seed": 2**64}, ValueError, "seed: expected an integer"),
        ({"channel": 3, "channels": 3}, ValueError, "channel: expected 0 <= channel < channels"),
        ({"thresholds": np.zeros(7)}, ValueError, r"thresholds: expected shape \(8,\), got \(7,\)"),
        ({"thresholds": np.full(8, np.nan)}, ValueError, "thresholds: expected finite values"),
        ({"thresholds": np.zeros(8, np.float32)}, TypeError, "thresholds: expected dtype float64"),
        ({"max_sweeps": 0}, ValueError, "max_sweeps: expected at least 1"),
        ({"margin": -1.0}, ValueError, "margin: expected a finite number >= 0"),
        ({"margin": float("inf")}, ValueError, "margin: expected a finite number >= 0"),
        ({"agreement": 1.0}, ValueError, r"agreement: expected a fraction in \[0, 1\)"),
        ({"agreement": 0.5, "representation": "dense"}, ValueError, "agreement: needs the overlap form"),
        ({"num_threads": 0}, ValueError, "num_threads: expected a positive count"),
        ({"num_threads": 1.5}, TypeError, "num_threads: expected an int or None"),
        ({"index_offset": -3}, ValueError, "index_offset: expected a non-negative integer"),
        ({"indices": np.arange(3)}, ValueError, r"indices: expected shape \(2,\)"),
        ({"indices": np.array([0, -1])}, ValueError, "indices: expected non-negative values"),
        ({"indices": np.zeros(2), "steps": 1}, TypeError, "indices: expected an integer array"),
        ({"representation": "sparse"}, ValueError, "representation: expected one of"),
    ],
)
def test_bad_options_are_refused(options, error, message):
    network = HopfieldNetwork().fit(np.ones((2, 8), np.int8))
    options = {"steps": 5, **options}
    with pytest.raises(error, match=message):
        network.recall(np.ones((2, 8), np.int8), **options)


def test_misuse_of_the_network():
    with pytest.raises(RuntimeError, match="not fitted"):
        HopfieldNetwork().recall(np.ones((1, 4), np.int8))
    with pytest.raises(ValueError, match="rule: expected one of"):
        HopfieldNetwork().fit(np.ones((1, 4), np.int8), rule="oja")
    network = HopfieldNetwork().fit(np.ones((1, 4), np.int8), rule="storkey")
    with pytest.raises(ValueError, match="representation='overlap' needs rule='hebbian'"):
        network.recall(np.ones((1, 4), np.int8), representation="overlap")
    with pytest.raises(MemoryError, match="use rule='hebbian' with representation='overlap'"):
        HopfieldNetwork().fit(np.ones((1, 40_000), np.int8), rule="storkey")


@pytest.mark.parametrize("rule", ["hebbian", "storkey", "projection"])
def test_pickle_and_dict_round_trip(rule):
    rng = np.random.default_rng(9)
    network = HopfieldNetwork(num_threads=1).fit(spins(rng, 6, 40), rule=rule)
    states = spins(rng, 5, 40)
    want = network.recall(states, steps=60, seed=4).states
    for copy in (pickle.loads(pickle.dumps(network)), HopfieldNetwork.from_dict(network.to_dict())):
        assert copy.rule == rule and copy.n_patterns == 6 and copy.n_neurons == 40
        np.testing.assert_array_equal(copy.recall(states, steps=60, seed=4).states, want)
    assert "unfitted" in repr(pickle.loads(pickle.dumps(HopfieldNetwork())))
    assert repr(network) == (
        f"HopfieldNetwork(rule={rule!r}, n_neurons=40, n_patterns=6, num_threads=1)"
    )


def test_tampered_dict_is_refused():
    state = HopfieldNetwork().fit(np.ones((2, 6), np.int8), rule="storkey").to_dict()
    with pytest.raises(ValueError, match="weights: expected a float64 array of shape"):
        HopfieldNetwork.from_dict({**state, "weights": np.zeros((5, 5))})
    with pytest.raises(ValueError, match="rule: expected one of"):
        HopfieldNetwork.from_dict({**state, "rule": "oja"})


def test_stats_off_reports_unknowns():
    network = HopfieldNetwork().fit(np.ones((1, 16), np.int8))
    result = network.recall(-np.ones((3, 16), np.int8), steps=20, stats=False)
    assert result.converged is None and result.energy is None
    assert (result.steps == 20).all()
