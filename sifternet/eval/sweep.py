"""Sweeps: Acc and ASR of the purified images over the recall's steps, the seeds per class
and the local-mean block size, as in the paper's Fig. 4 (its appendix D.2).

One purifier is fitted per (seeds per class, block size); every steps value reuses its
memories (:meth:`SifterNet.with_options`). Each point purifies the clean and the
triggered evaluation images with their global indices, so a point equals the
``sifternet`` row of ``sifternet evaluate`` with the same settings.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
from tqdm import tqdm

from sifternet.eval.attacks import Attack
from sifternet.eval.evaluate import TEST_SPLIT_NOTE, Split, seeds_from
from sifternet.eval.metrics import accuracy, attack_success_rate, robust_accuracy
from sifternet.eval.models import Classifier
from sifternet.modelfile import PathLike, atomic_path, write_atomically
from sifternet.purifier import PurifierConfig, SifterNet

#: A recommended interval of the paper: (low, high, where it was measured).
Range = tuple[int, int, str]

#: The paper's recommended ranges (appendix D.2) by data set: steps (its RemoveTime) for
#: its self-built CNN and for BackdoorBench, and the local-mean block size (its k-size).
PAPER_RANGES: dict[str, dict[str, list[Range]]] = {
    "mnist": {"steps": [(800, 1200, "self-built CNN")]},
    "fashionmnist": {"steps": [(800, 1000, "self-built CNN")]},
    "cifar10": {
        "steps": [(900, 1200, "self-built CNN"), (50, 500, "BackdoorBench")],
        "block_size": [(15, 25, "BackdoorBench")],
    },
    "gtsrb": {
        "steps": [(1, 500, "self-built CNN"), (50, 500, "BackdoorBench")],
        "block_size": [(5, 15, "BackdoorBench")],
    },
}

#: The files :func:`write_sweep` may write into its folder.
SWEEP_FILES: tuple[str, ...] = ("sweep.md", "sweep.json", "sweep.png", "sweep-block.png")


def paper_ranges(data: str) -> dict[str, list[Range]]:
    """The paper's ranges for the data set a file name names ("fashion_mnist_test.npz" is
    Fashion-MNIST, "cifar-10.npz" CIFAR-10); empty for data sets the paper does not cover."""
    key = re.sub(r"[^a-z0-9]", "", Path(data).stem.lower())
    known = [name for name in PAPER_RANGES if name in key]
    return PAPER_RANGES[max(known, key=len)] if known else {}


@dataclass
class SweepPoint:
    """One purifier setting's results (fractions in [0, 1]; seconds for clean + triggered)."""

    per_class: int
    block_size: Optional[int]  # None: the binarisation has no block size
    steps: int
    acc: float
    asr: float
    ra: float
    seconds: float


@dataclass
class SweepResult:
    """A sweep's points, the undefended model's figures and the settings that reproduce it."""

    settings: dict[str, Any]
    baseline: dict[str, float]
    points: list[SweepPoint] = field(default_factory=list)
    ranges: dict[str, list[Range]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def grid(self, name: str) -> list[int]:
        """The sorted values of ``per_class``, ``block_size`` or ``steps`` in the points."""
        return sorted({getattr(p, name) for p in self.points})

    def to_markdown(self) -> str:
        s, b = self.settings, self.baseline
        lines = [
            f"### Sweep, {Path(s['data']).name}: {s['attack']} {s['attack_params'] or ''}".rstrip(),
            "",
            f"{s['n_eval']} evaluation images, target class {s['target']}; purifier options "
            f"{s['options'] or 'default'}. No defense: Acc {100 * b['acc']:.2f} %, "
            f"ASR {100 * b['asr']:.2f} %, RA {100 * b['ra']:.2f} %.",
            "",
            "| seeds/class | block size | steps | Acc % | ASR % | RA % | time s |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        lines += [
            f"| {p.per_class} | {'-' if p.block_size is None else p.block_size} | {p.steps} "
            f"| {100 * p.acc:.2f} | {100 * p.asr:.2f} | "
            f"{100 * p.ra:.2f} | {p.seconds:.2f} |"
            for p in self.points
        ]
        lines += ["", *[f"- {note}" for note in self.notes]]
        return "\n".join(lines) + "\n"

    def to_json(self) -> str:
        return json.dumps(
            {
                "settings": self.settings,
                "baseline": self.baseline,
                "points": [asdict(p) for p in self.points],
                "ranges": self.ranges,
                "notes": self.notes,
            },
            indent=2,
            default=str,
        )


def _grid(name: str, values: Sequence[int], low: int) -> list[int]:
    if len(values) == 0 or any(
        isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low for v in values
    ):
        raise ValueError(f"{name}: expected a non-empty list of integers >= {low}, got {list(values)}")
    return sorted({int(v) for v in values})


def sweep(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    attack: Attack,
    model: Classifier,
    split: Split,
    steps: Sequence[int],
    per_class: Sequence[int],
    block_sizes: Sequence[int] = (),
    options: Optional[dict[str, Any]] = None,
    target: int = 0,
    seed: int = 0,
    num_threads: Optional[int] = None,
    settings: Optional[dict[str, Any]] = None,
    progress: bool = True,
) -> SweepResult:
    """Acc, ASR and RA of ``model`` on the purified evaluation images for every
    (seeds per class, block size, steps) of the grids.

    Seeds come from the clean training part (:func:`seeds_from` with ``seed``);
    ``options`` are the other :class:`SifterNet` options. Without ``block_sizes`` the
    block size is ``options``' (or the default); block sizes act on local-mean
    binarisation only. ``settings`` (with at least ``data``, ``attack`` and
    ``attack_params``) is kept in the result; its ``data`` picks the paper's ranges.
    """
    options = dict(options or {})
    if "steps" in options:
        raise ValueError("options: steps is the sweep's grid; pass it as steps=")
    steps, per_class = _grid("steps", steps, 0), _grid("per_class", per_class, 1)
    local_mean = options.get("binarize", PurifierConfig.binarize) == "local_mean"
    blocks: list[Optional[int]]
    if len(block_sizes):
        if "block_size" in options:
            raise ValueError("options: block_size is the sweep's grid when block_sizes are given")
        if not local_mean:
            raise ValueError(
                f"block_sizes: the block size acts on local_mean binarisation only, got "
                f"binarize={options['binarize']!r}"
            )
        blocks = list(_grid("block_sizes", block_sizes, 1))
    else:  # the one block size, or None when the binarisation has none
        blocks = [options.pop("block_size", PurifierConfig.block_size) if local_mean else None]
    settings = dict(settings or {})
    clean, truth = images[split.evaluation], labels[split.evaluation]
    triggered = attack.apply(clean)

    def measure(on_clean: np.ndarray, on_triggered: np.ndarray) -> dict[str, float]:
        return {
            "acc": accuracy(on_clean, truth),
            "asr": attack_success_rate(on_triggered, truth, target),
            "ra": robust_accuracy(on_triggered, truth, target),
        }

    result = SweepResult(
        settings={
            **settings,
            "target": target,
            "n_eval": len(clean),
            "options": options,
            "selection_seed": seed,
        },
        baseline=measure(model.predict(clean), model.predict(triggered)),
        ranges=paper_ranges(settings.get("data", "")),
    )
    with tqdm(
        total=len(per_class) * len(blocks) * len(steps),
        desc="sweep",
        unit="setting",
        disable=not progress or None,
    ) as bar:
        for count in per_class:
            seeds = seeds_from(images, labels, split, count, seed)
            for block in blocks:
                sized: dict[str, Any] = {} if block is None else {"block_size": block}
                fitted = SifterNet(num_threads=num_threads, **options, **sized).fit(*seeds)
                for value in steps:
                    purifier = fitted.with_options(steps=value)
                    start = time.perf_counter()
                    purified_clean = purifier.purify(clean, indices=split.evaluation)
                    purified_triggered = purifier.purify(triggered, indices=split.evaluation)
                    seconds = time.perf_counter() - start
                    figures = measure(model.predict(purified_clean), model.predict(purified_triggered))
                    result.points.append(SweepPoint(count, block, value, seconds=seconds, **figures))
                    bar.update()
    named = {"steps": "steps", "block_size": "block size"}
    result.notes += [
        f"The paper recommends {named[what]} in [{low}, {high}] ({where})"
        for what, spans in result.ranges.items()
        for low, high, where in spans
    ]
    if not result.ranges:
        result.notes.append("The paper recommends no range for this data set")
    result.notes.append(TEST_SPLIT_NOTE)
    return result


def write_sweep(result: SweepResult, folder: PathLike, *, overwrite: bool = False) -> list[Path]:
    """sweep.md, sweep.json and, when matplotlib is installed, sweep.png (Acc and ASR
    against steps, one line per seeds per class, one column per block size) and, for two
    or more block sizes, sweep-block.png (against block size, one line per steps value)."""
    folder = Path(folder)
    if not overwrite:
        for name in SWEEP_FILES:
            if (folder / name).exists():
                raise FileExistsError(f"{folder / name}: already exists (pass overwrite=True to replace it)")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        result.notes.append("sweep.png skipped: matplotlib is not installed")
    else:
        written.append(
            _plot(plt, result, folder / "sweep.png", x="steps", columns="block_size", lines="per_class")
        )
        if len(result.grid("block_size")) > 1:
            written.append(
                _plot(
                    plt,
                    result,
                    folder / "sweep-block.png",
                    x="block_size",
                    columns="per_class",
                    lines="steps",
                )
            )
    for name, text in (("sweep.md", result.to_markdown()), ("sweep.json", result.to_json())):
        write_atomically(folder / name, text.encode(), overwrite=True)
        written.append(folder / name)
    for stale in set(SWEEP_FILES) - {path.name for path in written}:  # a figure an earlier run left
        (folder / stale).unlink(missing_ok=True)
    return written


#: How the paper's ranges are drawn: the first filled, a second one (overlapping) hatched.
SHADES = (
    {"color": "tab:green", "alpha": 0.15},
    {"facecolor": "none", "edgecolor": "tab:orange", "hatch": "//", "alpha": 0.6},
)
_AXES = {"steps": "steps (RemoveTime)", "block_size": "block size (k-size)"}
_NAMES = {"steps": "{} steps", "block_size": "block size {}", "per_class": "{} seed(s)/class"}


def _plot(plt: Any, result: SweepResult, path: Path, *, x: str, columns: str, lines: str) -> Path:
    """A 2 x len(columns) grid of Acc (top) and ASR (bottom) against ``x``, one line per
    value of ``lines``, the paper's ranges for ``x`` shaded, the undefended model dashed."""
    column_values, line_values, xs = result.grid(columns), result.grid(lines), result.grid(x)
    colours = plt.get_cmap("viridis" if lines == "steps" else "tab10")
    fig, axes = plt.subplots(
        2, len(column_values), figsize=(4.2 * len(column_values) + 1.4, 6.4), squeeze=False, sharex=True
    )
    pad = 0.04 * (xs[-1] - xs[0]) or 1
    for col, fixed in enumerate(column_values):
        for row, (metric, what) in enumerate(
            (("acc", "Acc, purified clean"), ("asr", "ASR, purified triggered"))
        ):
            ax = axes[row, col]
            for style, (low, high, where) in zip(SHADES, result.ranges.get(x, [])):
                ax.axvspan(low, high, **style, label=f"paper [{low}, {high}], {where}")
            ax.axhline(
                100 * result.baseline[metric], color="grey", linestyle="--", linewidth=1, label="no defense"
            )
            for k, value in enumerate(line_values):
                points = sorted(
                    (getattr(p, x), 100 * getattr(p, metric))
                    for p in result.points
                    if getattr(p, columns) == fixed and getattr(p, lines) == value
                )
                colour = colours(k / max(1, len(line_values) - 1)) if lines == "steps" else colours(k)
                ax.plot(*zip(*points), marker="o", color=colour, label=_NAMES[lines].format(value))
            ax.set_xlim(xs[0] - pad, xs[-1] + pad)
            ax.set_ylim(-2, 102)
            ax.grid(alpha=0.3)
            ax.set_ylabel(f"{what} %")
            if fixed is not None:
                ax.set_title(_NAMES[columns].format(fixed), fontsize="medium")
            if row == 1:
                ax.set_xlabel(_AXES[x])
    handles, names = axes[0, 0].get_legend_handles_labels()
    ncol = min(len(names), 2 * len(column_values))
    fig.legend(handles, names, loc="lower center", ncol=ncol, fontsize="small", frameon=False)
    s = result.settings
    fig.suptitle(f"{Path(s['data']).name}: {s['attack']}, {s['n_eval']} evaluation images")
    fig.tight_layout(rect=(0, 0.015 + 0.04 * -(-len(names) // ncol), 1, 1))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


__all__ = ["PAPER_RANGES", "SWEEP_FILES", "SweepPoint", "SweepResult", "paper_ranges", "sweep", "write_sweep"]
