"""Query mode beside the no-query default it builds on, on GTSRB with the small CNN on 2
threads: a model trained here (2 epochs, a white 3 x 3 patch at the centre on 20 % of the
training part, target class 0), then clean and triggered images of the held-out part
purified (the query mode's model calls included in its time). The baseline is the default
repair of the same images, in the same run."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from common import record

from sifternet import SifterNet, select_seeds
from sifternet.query import QueryRepair, query_distribution
from sifternet.triggers import stamp_patch

HAS_TORCH = importlib.util.find_spec("torch") is not None
TRAIN, HELD_OUT = 6000, 500  # training images; clean and triggered images purified
PATCH = np.full((3, 3, 3), 255, np.uint8)


def with_patch(images: np.ndarray) -> np.ndarray:
    return stamp_patch(images, PATCH, (14, 14))


@pytest.fixture(scope="module")
def backdoored(gtsrb):
    """A small CNN trained on a poisoned part of GTSRB, its seeds and the held-out images
    (clean, then triggered)."""
    if not HAS_TORCH:
        pytest.skip("PyTorch is not installed (optional extra 'eval')")
    from sifternet.eval.models import train_small_cnn

    images, labels = gtsrb
    order = np.random.default_rng(0).permutation(len(images))
    train, rest = order[:TRAIN], order[TRAIN:][labels[order[TRAIN:]] != 0][:HELD_OUT]
    poisoned = images[train].copy()
    targets = labels[train].copy()
    chosen = np.arange(0, TRAIN, 5)
    poisoned[chosen], targets[chosen] = with_patch(poisoned[chosen]), 0
    model = train_small_cnn(poisoned, targets, n_classes=43, epochs=2, num_threads=2, progress=False)
    seeds = select_seeds(images[train], labels[train], 10, seed=0)
    held_out = np.concatenate([images[rest], with_patch(images[rest])])
    return model, seeds, held_out


@pytest.fixture(scope="module")
def two_torch_threads():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_default_repair_baseline(benchmark, backdoored, two_torch_threads):
    model, seeds, held_out = backdoored
    repair = SifterNet.repairing(num_threads=2).fit(*seeds)
    benchmark.group = "query mode, GTSRB"
    benchmark.pedantic(repair.purify, args=(held_out,), rounds=3, warmup_rounds=1)
    record(benchmark, "baseline: default repair (no queries)", len(held_out), "query")


def test_query_mode(benchmark, backdoored, two_torch_threads):
    model, seeds, held_out = backdoored
    query = QueryRepair(model.predict, SifterNet.repairing(num_threads=2).fit(*seeds))
    assert len(query.seed_labels) == len(seeds[0])  # asked once, outside the timing
    benchmark.group = "query mode, GTSRB"
    done = benchmark.pedantic(query.purify_queried, args=(held_out,), rounds=1, warmup_rounds=0)
    clean, triggered = done.queries[:HELD_OUT], done.queries[HELD_OUT:]
    benchmark.extra_info["queries_clean"] = query_distribution(clean)
    benchmark.extra_info["queries_triggered"] = query_distribution(triggered)
    predicted = model.predict(done.images[HELD_OUT:])
    benchmark.extra_info["asr_triggered"] = float(np.mean(predicted == 0))
    assert (done.queries <= query.budget).all() and done.regions[HELD_OUT:].any()
    record(benchmark, "query mode (small CNN, 2 threads)", len(held_out), "query")
