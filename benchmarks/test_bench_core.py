"""Workload W1: GTSRB test set per channel, N = 1024, P = 86, 500 random steps;
Hebbian training for P = 4300, N = 1024 against NumPy's float32 X^T X."""

from __future__ import annotations

import numpy as np
import pytest
from baselines import numpy_recall
from common import record

from sifternet import _core

STEPS = 500
BASELINE_IMAGES = 1000  # the NumPy baseline runs on a slice; rates are per image


@pytest.fixture(scope="module")
def w1(gtsrb, gtsrb_purifier):
    """W1's recall inputs: the binarised GTSRB test images, one (B, N) plane per channel."""
    images, _ = gtsrb
    states = gtsrb_purifier.to_states(images)
    planes = [np.ascontiguousarray(states[..., c].reshape(len(images), -1)) for c in range(states.shape[3])]
    return gtsrb_purifier.networks, planes


def recall_all(networks, planes, threads):
    return [
        net.recall(
            plane,
            steps=STEPS,
            seed=0,
            channel=c,
            channels=3,
            stats=False,
            representation="overlap",
            num_threads=threads,
        ).states
        for c, (net, plane) in enumerate(zip(networks, planes))
    ]


@pytest.mark.parametrize("threads", [1, 2])
def test_w1_kernel(benchmark, w1, threads):
    networks, planes = w1
    benchmark.group = "W1 recall"
    out = benchmark.pedantic(recall_all, args=(networks, planes, threads), rounds=5, warmup_rounds=1)
    count = len(planes) * planes[0].shape[0]
    head = slice(0, BASELINE_IMAGES)
    want = numpy_recall(
        networks[1].patterns,
        planes[1][head],
        steps=STEPS,
        seed=0,
        indices=np.arange(BASELINE_IMAGES),
        channel=1,
        channels=3,
    )
    assert np.array_equal(out[1][head], want)
    record(benchmark, f"kernel, {threads} thread(s)", count, "W1")


def test_w1_numpy_baseline(benchmark, w1):
    networks, planes = w1
    benchmark.group = "W1 recall"
    head = planes[0][:BASELINE_IMAGES]
    benchmark.pedantic(
        numpy_recall,
        args=(networks[0].patterns, head),
        kwargs=dict(steps=STEPS, seed=0, indices=np.arange(BASELINE_IMAGES), channel=0, channels=3),
        rounds=2,
    )
    record(benchmark, "baseline: NumPy overlap form", BASELINE_IMAGES, "W1")


@pytest.fixture(scope="module")
def training_patterns():
    return np.random.default_rng(0).choice(np.array([-1, 1], np.int8), size=(4300, 1024))


@pytest.mark.parametrize("threads", [1, 2])
def test_hebbian_training_kernel(benchmark, training_patterns, threads):
    benchmark.group = "Hebbian training P=4300 N=1024"
    weights = benchmark.pedantic(
        _core.hebbian_weights, args=(training_patterns, threads), rounds=5, warmup_rounds=1
    )
    x = training_patterns[:, :64].astype(np.int64)
    expected = x.T @ x
    np.fill_diagonal(expected, 0)
    assert np.array_equal(weights[:64, :64], expected)
    record(benchmark, f"kernel, {threads} thread(s)", 1, "training")


def test_hebbian_training_numpy_baseline(benchmark, training_patterns):
    benchmark.group = "Hebbian training P=4300 N=1024"
    x = training_patterns.astype(np.float32)
    benchmark.pedantic(lambda: x.T @ x, rounds=5, warmup_rounds=1)
    record(benchmark, "baseline: NumPy float32 X^T X", 1, "training")


def _recall_halves_in_python_threads(networks, planes, python_threads):
    """W1's channel 0, split between ``python_threads`` Python threads, each calling the
    kernel with one OpenMP thread: they overlap only if the GIL is released."""
    from concurrent.futures import ThreadPoolExecutor

    plane = planes[0]
    bounds = np.linspace(0, len(plane), python_threads + 1).astype(int)

    def part(k):
        a, z = bounds[k], bounds[k + 1]
        return (
            networks[0]
            .recall(
                plane[a:z], steps=STEPS, index_offset=a, channel=0, channels=3, stats=False, num_threads=1
            )
            .states
        )

    with ThreadPoolExecutor(python_threads) as pool:
        return np.concatenate(list(pool.map(part, range(python_threads))))


@pytest.mark.parametrize("python_threads", [1, 2])
def test_gil_is_released(benchmark, w1, python_threads):
    networks, planes = w1
    benchmark.group = "GIL: Python threads"
    out = benchmark.pedantic(
        _recall_halves_in_python_threads, args=(networks, planes, python_threads), rounds=5, warmup_rounds=1
    )
    assert np.array_equal(out[:50], recall_all(networks, [p[:50] for p in planes], 1)[0])
    name = "baseline: 1 Python thread" if python_threads == 1 else "2 Python threads"
    record(benchmark, name, len(planes[0]), "GIL")
