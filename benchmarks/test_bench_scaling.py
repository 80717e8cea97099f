"""The paper's cost appendix (D.6, Fig. 6) for this package: work per
representation and the kernel's choice, purification against CNN inference over sample
counts, and scaling in threads, P, steps and image size."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from baselines import numpy_recall, python_loop_recall
from common import record

from sifternet import HopfieldNetwork

SPINS = np.array([-1, 1], np.int8)
HAS_TORCH = importlib.util.find_spec("torch") is not None


def random_network(n: int, p: int, seed: int = 0) -> HopfieldNetwork:
    return HopfieldNetwork().fit(np.random.default_rng(seed).choice(SPINS, (p, n)))


def work_per_image(n: int, p: int, steps: int) -> dict[str, float]:
    """Arithmetic per image and channel (multiply-adds counted as 2 FLOPs, as the paper):
    dense 2N per step; overlap 2P per step plus P*N/64 XOR+popcount words to start."""
    return {"dense": 2.0 * n * steps, "overlap": 2.0 * p * steps + p * n / 64}


@pytest.mark.parametrize("n", [784, 1024, 3072])
@pytest.mark.parametrize("p", [10, 43, 86, 430, 1024])
@pytest.mark.parametrize("representation", ["dense", "overlap"])
def test_representation_cost(benchmark, n, p, representation):
    """Per-image time of each representation; extra_info carries the FLOP model and which
    one ``auto`` picks, so the report can check the cost model against the clock."""
    steps, count = 500, 400
    network = random_network(n, p)
    states = np.random.default_rng(1).choice(SPINS, (count, n))
    network.recall(states[:1], steps=1, representation=representation)  # builds dense W once
    benchmark.group = f"representation N={n}"
    benchmark.extra_info.update(
        n=n,
        p=p,
        representation=representation,
        picked=network.representation_for(steps),
        flops_per_step=work_per_image(n, p, 1)[representation],
        flops_per_image=work_per_image(n, p, steps)[representation],
        paper_flops_per_sweep=2 * n * n,
    )
    benchmark.pedantic(
        network.recall,
        args=(states,),
        kwargs=dict(steps=steps, representation=representation, stats=False, num_threads=1),
        rounds=3,
    )
    record(benchmark, f"N={n} P={p} {representation}", count, f"cost N={n}")


SAMPLES = [10, 100, 1000, 12630]


@pytest.mark.parametrize("count", SAMPLES)
@pytest.mark.parametrize("threads", [1, 2])
def test_purify_vs_samples(benchmark, gtsrb, gtsrb_purifier, count, threads):
    images, _ = gtsrb
    benchmark.group = "Fig. 6: purify vs samples"
    benchmark.extra_info.update(samples=count, threads=threads, stage="purify")
    benchmark.pedantic(
        gtsrb_purifier.purify,
        args=(images[:count],),
        kwargs={"num_threads": threads},
        rounds=3,
        warmup_rounds=1,
    )
    record(benchmark, f"purify {count} images, {threads} thread(s)", count, "samples")


@pytest.mark.skipif(not HAS_TORCH, reason="PyTorch is not installed (optional extra 'eval')")
@pytest.mark.parametrize("count", SAMPLES)
@pytest.mark.parametrize("threads", [1, 2])
def test_inference_vs_samples(benchmark, gtsrb, count, threads):
    """Inference of the paper's small CNN (untrained weights: the cost is the same)."""
    import torch

    from sifternet.eval.models import TorchClassifier, small_cnn

    images, _ = gtsrb
    torch.manual_seed(0)
    model = TorchClassifier(small_cnn(3, 32, 32, 43))
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        benchmark.group = "Fig. 6: inference vs samples"
        benchmark.extra_info.update(samples=count, threads=threads, stage="inference")
        benchmark.pedantic(model.predict, args=(images[:count],), rounds=3, warmup_rounds=1)
    finally:
        torch.set_num_threads(before)
    record(benchmark, f"CNN inference {count} images, {threads} thread(s)", count, "samples")


@pytest.mark.parametrize("steps", [50, 200, 500, 1200])
def test_steps_scaling(benchmark, steps):
    network = random_network(1024, 86)
    states = np.random.default_rng(2).choice(SPINS, (2000, 1024))
    benchmark.group = "scaling: steps"
    benchmark.extra_info.update(steps=steps)
    benchmark.pedantic(network.recall, args=(states,), kwargs=dict(steps=steps, stats=False), rounds=3)
    record(benchmark, f"steps={steps}", len(states), "steps")


@pytest.mark.parametrize("side", [16, 28, 32, 64])
def test_image_size_scaling(benchmark, side):
    n = side * side
    network = random_network(n, 86)
    states = np.random.default_rng(3).choice(SPINS, (2000, n))
    benchmark.group = "scaling: image size"
    benchmark.extra_info.update(n=n)
    benchmark.pedantic(network.recall, args=(states,), kwargs=dict(steps=500, stats=False), rounds=3)
    record(benchmark, f"{side}x{side} (N={n})", len(states), "image size")


def test_python_loop_baseline(benchmark):
    """The per-image Python loop (20 images only), beside the kernel on the same rows."""
    network = random_network(1024, 86)
    states = np.random.default_rng(4).choice(SPINS, (20, 1024))
    indices = np.arange(20)
    benchmark.group = "baselines on 20 images"
    out = benchmark.pedantic(
        python_loop_recall,
        args=(network.weights, states),
        kwargs=dict(steps=500, seed=0, indices=indices),
        rounds=1,
    )
    want = network.recall(states, steps=500, seed=0).states
    assert np.array_equal(out, want)
    assert np.array_equal(numpy_recall(network.patterns, states, steps=500, seed=0, indices=indices), want)
    record(benchmark, "baseline: per-image Python loop", len(states), "loop")


def test_kernel_on_the_loop_rows(benchmark):
    network = random_network(1024, 86)
    states = np.random.default_rng(4).choice(SPINS, (20, 1024))
    benchmark.group = "baselines on 20 images"
    benchmark.pedantic(
        network.recall, args=(states,), kwargs=dict(steps=500, seed=0, stats=False, num_threads=1), rounds=20
    )
    record(benchmark, "kernel, 1 thread", len(states), "loop")
