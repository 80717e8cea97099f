"""Shared data and a closing summary (images per second, ratios within this run)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sifternet import SifterNet, select_seeds

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
#: name -> (images processed, best seconds, group); filled by the benchmarks.
RESULTS: dict[str, tuple[int, float, str]] = {}  # key: "group | name"


def record(benchmark, name: str, count: int, group: str) -> None:
    """Keep a finished benchmark's best time for the summary and its extra_info."""
    benchmark.extra_info["images"] = count
    if benchmark.stats is None:  # --benchmark-disable: ran once, nothing timed
        return
    best = benchmark.stats.stats.min
    benchmark.extra_info["images_per_s"] = count / best
    RESULTS[f"{group} | {name}"] = (count, best, group)


@pytest.fixture(scope="session")
def gtsrb():
    path = SHARED / "gtsrb.npz"
    if not path.exists():
        pytest.skip(f"{path} not found: the benchmarks use the project's shared data sets")
    with np.load(path) as data:
        return data["images"], data["labels"]


@pytest.fixture(scope="session")
def gtsrb_purifier(gtsrb):
    """W1's purifier: 2 seeds x 43 classes = 86 patterns, local mean k = 11, 500 steps."""
    images, labels = gtsrb
    seeds, seed_labels = select_seeds(images, labels, 2, seed=0)
    return SifterNet(block_size=11, steps=500).fit(seeds, seed_labels)


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    write = terminalreporter.write_line
    write("")
    write("sifternet throughput (best of the rounds; ratios within this run):")
    baselines = {group: key for key, (_, _, group) in RESULTS.items() if "baseline" in key}
    for key, (count, best, group) in sorted(RESULTS.items()):
        name = key.split(" | ", 1)[1]
        line = f"  {group:10s} {name:32s} {count / best:12,.0f} items/s {best * 1e3:9.1f} ms"
        base = baselines.get(group)
        if base and base != key:
            b_count, b_best, _ = RESULTS[base]
            line += f"  x{(count / best) / (b_count / b_best):6.1f} vs {base.split(' | ', 1)[1]}"
        write(line)
