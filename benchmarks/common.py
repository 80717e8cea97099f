"""Helpers shared by the benchmark modules: the shared data sets, W1's purifier, and the
record of each benchmark's best time for the closing summary (conftest.py prints it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sifternet import SifterNet, select_seeds

#: The project's shared data sets, beside the repository: ../shared/data.
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
GTSRB = SHARED / "gtsrb.npz"

#: "group | name" -> (images processed, best seconds, group); filled by :func:`record`.
RESULTS: dict[str, tuple[int, float, str]] = {}


def load_gtsrb(path: Path = GTSRB) -> tuple[np.ndarray, np.ndarray]:
    """The GTSRB test set: uint8 images (B, 32, 32, 3) and their labels."""
    with np.load(path) as data:
        return data["images"], data["labels"]


def w1_purifier(images: np.ndarray, labels: np.ndarray) -> SifterNet:
    """W1's purifier: 2 seeds x 43 classes = 86 patterns, local mean k = 11, 500 steps."""
    seeds, seed_labels = select_seeds(images, labels, 2, seed=0)
    return SifterNet(block_size=11, steps=500).fit(seeds, seed_labels)


def record(benchmark, name: str, count: int, group: str) -> None:
    """Keep a finished benchmark's best time for the summary and its extra_info."""
    benchmark.extra_info["images"] = count
    if benchmark.stats is None:  # --benchmark-disable: ran once, nothing timed
        return
    best = benchmark.stats.stats.min
    benchmark.extra_info["images_per_s"] = count / best
    RESULTS[f"{group} | {name}"] = (count, best, group)


def summary_lines() -> list[str]:
    """Items per second of every recorded benchmark, with its ratio to the baseline of its
    group (a name containing "baseline") measured in the same run."""
    if not RESULTS:
        return []
    lines = ["", "sifternet throughput (best of the rounds; ratios within this run):"]
    baselines = {group: key for key, (_, _, group) in RESULTS.items() if "baseline" in key}
    for key, (count, best, group) in sorted(RESULTS.items()):
        name = key.split(" | ", 1)[1]
        line = f"  {group:10s} {name:32s} {count / best:12,.0f} items/s {best * 1e3:9.1f} ms"
        base = baselines.get(group)
        if base and base != key:
            b_count, b_best, _ = RESULTS[base]
            line += f"  x{(count / best) / (b_count / b_best):6.1f} vs {base.split(' | ', 1)[1]}"
        lines.append(line)
    return lines
