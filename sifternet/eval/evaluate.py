"""``evaluate``: does purification remove a backdoor from a model, and at what cost?

Protocol (BackdoorBench's metrics, the paper's attacks): a data set is split
deterministically into a training part (target-model training and the seed pool) and an
evaluation part. The target model is trained on the training part with a fraction
poisoned (all-to-one, to ``target``), or given by the user. Seeds are drawn from the
clean training images. Every defense purifies both the clean and the triggered
evaluation images; Acc, ASR and RA are measured on the model's predictions.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
from tqdm import tqdm

from sifternet.eval.attacks import Attack
from sifternet.eval.defenses import DEFENSES, Defense
from sifternet.eval.detectors import Detector
from sifternet.eval.metrics import accuracy, attack_success_rate, robust_accuracy, roc_auc
from sifternet.eval.models import Classifier
from sifternet.io import preview_grid, write_image
from sifternet.modelfile import PathLike, atomic_path, write_atomically
from sifternet.purifier import PurifierConfig, SifterNet
from sifternet.seeds import seed_indices

TEST_SPLIT_NOTE = (
    "The data sets used here are official TEST splits only: the target model is trained on a "
    "part of a test set and evaluated on the rest, which keeps every figure here apart "
    "from the paper's train/test protocol."
)


@dataclass
class Split:
    """Indices into the data set of the training part and of the evaluation part."""

    train: np.ndarray
    evaluation: np.ndarray


def split_data(count: int, train_fraction: float, seed: int) -> Split:
    """A deterministic shuffle of ``range(count)`` cut at ``train_fraction``."""
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction: expected a number in (0, 1), got {train_fraction}")
    order = np.random.default_rng(seed).permutation(count)
    cut = int(round(train_fraction * count))
    return Split(np.sort(order[:cut]), np.sort(order[cut:]))


def poison(
    images: np.ndarray, labels: np.ndarray, attack: Attack, target: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images, labels, poisoned indices) of a training set under ``attack``'s protocol:
    a ``poison_ratio`` of non-target images triggered and relabelled to ``target``; or,
    clean-label (SIG), that many target-class images triggered with labels unchanged."""
    rng = np.random.default_rng(seed)
    pool = np.flatnonzero(labels == target) if attack.clean_label else np.flatnonzero(labels != target)
    count = min(len(pool), int(round(attack.poison_ratio * len(labels))))
    chosen = np.sort(rng.choice(pool, count, replace=False))
    images, labels = images.copy(), labels.copy()
    images[chosen] = attack.apply(images[chosen])
    labels[chosen] = target
    return images, labels, chosen


#: Added to the split seed for the adaptive attacker's own seed selection: the defender
#: draws its seeds with the split seed, the attacker with this other one.
ATTACKER_SEED_OFFSET = 1


def adaptive_poison(
    images: np.ndarray,
    labels: np.ndarray,
    train_images: np.ndarray,
    split: Split,
    defense: str,
    *,
    config: Optional[PurifierConfig] = None,
    per_class: int = 2,
    seed: int = 0,
    num_threads: Optional[int] = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """A purifier-aware attacker: ``train_images`` (the poisoned training part, clean and
    triggered, at ``split.train``) passed through ``defense`` (a name of :data:`DEFENSES`),
    built on the attacker's own ``per_class`` seeds per class from the clean training part
    (drawn with ``seed + ATTACKER_SEED_OFFSET``) and ``config`` (the ``sifternet`` defense's;
    default the paper's). Returns the purified images and what to record of the attack."""
    if defense not in DEFENSES:
        raise ValueError(f"adaptive_purifier: expected one of {tuple(DEFENSES)}, got {defense!r}")
    chosen_seed = seed + ATTACKER_SEED_OFFSET
    seeds = seeds_from(images, labels, split, per_class, chosen_seed)
    purifier = SifterNet.from_config(config or PurifierConfig(), num_threads=num_threads).fit(*seeds)
    built = DEFENSES[defense](purifier, seeds)
    if built.classify is not None:
        raise ValueError(f"adaptive_purifier: expected a defense that purifies images, got {defense!r}")
    purified = built.purify(train_images, split.train)
    info = {"defense": defense, "description": built.description, "n_seeds": len(seeds[0])}
    return purified, {**info, "seed_selection_seed": chosen_seed}


#: The defenses whose recall draws from the purifier's random stream: the ones
#: :func:`asr_over_seeds` measures over several purifier seeds.
SEEDED_DEFENSES = (
    "sifternet",
    "sifternet-repair",
    "sifternet-repair-dark",
    "sifternet-repair-both",
    "sifternet-repair-otsu",
    "sifternet-binary-gate",
)


@dataclass
class SeedRow:
    """One defense's ASR (fractions) for each purifier seed, their mean and the worst."""

    defense: str
    seeds: list[int]
    asr: list[float]
    mean: float
    worst: float


def asr_over_seeds(
    triggered: np.ndarray,
    truth: np.ndarray,
    indices: np.ndarray,
    *,
    model: Classifier,
    purifier: SifterNet,
    seeds: tuple[np.ndarray, np.ndarray],
    defenses: Sequence[str],
    n_seeds: int,
    target: int = 0,
) -> list[SeedRow]:
    """The ASR of each of ``defenses`` that is in :data:`SEEDED_DEFENSES` on the
    ``triggered`` images (global ``indices``, true labels ``truth``) with purifier seeds
    ``purifier.config.seed + k``, k < ``n_seeds`` (``with_options(seed=...)``; the repair
    presets take the seed from it); k = 0 is the report's own row."""
    if n_seeds < 1:
        raise ValueError(f"purifier_seeds: expected at least 1, got {n_seeds}")
    rows = []
    for name in (d for d in defenses if d in SEEDED_DEFENSES):
        drawn = [purifier.config.seed + k for k in range(n_seeds)]
        rates = [
            attack_success_rate(
                model.predict(
                    DEFENSES[name](purifier.with_options(seed=s), seeds).purify(triggered, indices)
                ),
                truth,
                target,
            )
            for s in drawn
        ]
        rows.append(SeedRow(name, drawn, rates, float(np.mean(rates)), max(rates)))
    return rows


@dataclass
class Row:
    """One defense's results (fractions in [0, 1]; seconds for clean + triggered)."""

    defense: str
    description: str
    acc: float
    asr: float
    ra: float
    seconds: float
    images_per_s: float


@dataclass
class DetectorRow:
    """One detector's ROC AUC on clean vs triggered evaluation images, and its time."""

    detector: str
    description: str
    auc: float
    seconds: float


@dataclass
class FineTuneRow:
    """The target model fine-tuned on one defense's purified clean training images (the
    paper's data augmentation, E.0.2), measured on that defense's output (Acc, ASR, RA)
    and on raw images (does the backdoor survive in the model?); seconds of fine-tuning."""

    defense: str
    description: str
    epochs: int
    n_images: int
    acc: float
    asr: float
    ra: float
    raw_acc: float
    raw_asr: float
    seconds: float


@dataclass
class Report:
    """Everything ``evaluate`` measured, with the settings that reproduce it."""

    settings: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    detectors: list[DetectorRow] = field(default_factory=list)
    finetuned: list[FineTuneRow] = field(default_factory=list)
    seeded: list[SeedRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        s = self.settings
        lines = [
            f"### {Path(s['data']).name}: {s['attack']} {s['attack_params'] or ''}".rstrip(),
            "",
            f"{s['n_train']} training images ({s['n_poisoned']} poisoned), {s['n_eval']} evaluation "
            f"images, target class {s['target']}, {s['n_seeds']} seeds. Purifier: {s['purifier']}.",
            "",
            "| defense | Acc % | ASR % | RA % | time s | images/s |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in self.rows:
            rate = f"{r.images_per_s:,.0f}" if r.seconds >= 1e-3 else "-"
            lines.append(
                f"| {r.defense} | {100 * r.acc:.2f} | {100 * r.asr:.2f} | {100 * r.ra:.2f} | "
                f"{r.seconds:.2f} | {rate} |"
            )
        if self.detectors:
            lines += ["", "| detector | ROC AUC | time s |", "| --- | ---: | ---: |"]
            lines += [f"| {d.detector} | {d.auc:.4f} | {d.seconds:.2f} |" for d in self.detectors]
        if self.seeded:
            lines.append("")
            lines += [
                f"- {r.defense}: ASR over {len(r.seeds)} seeds: mean {100 * r.mean:.2f} %, "
                f"worst {100 * r.worst:.2f} % (purifier seeds {r.seeds[0]} .. {r.seeds[-1]})"
                for r in self.seeded
            ]
        if self.finetuned:
            lines += [
                "",
                "Fine-tuned (the paper's data augmentation, E.0.2): the model trained further on "
                "each defense's purified CLEAN training images, then measured on that defense's "
                "output and on raw images (raw ASR: the backdoor left in the model).",
                "",
                "| fine-tuned on | epochs | images | Acc % | ASR % | RA % | raw Acc % | raw ASR % | time s |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            ]
            lines += [
                f"| {f.defense} | {f.epochs} | {f.n_images} | {100 * f.acc:.2f} | {100 * f.asr:.2f} | "
                f"{100 * f.ra:.2f} | {100 * f.raw_acc:.2f} | {100 * f.raw_asr:.2f} | {f.seconds:.2f} |"
                for f in self.finetuned
            ]
        lines += ["", *[f"- {note}" for note in self.notes]]
        return "\n".join(lines) + "\n"

    def to_json(self) -> str:
        return json.dumps(
            {
                "settings": self.settings,
                "rows": [asdict(r) for r in self.rows],
                "detectors": [asdict(d) for d in self.detectors],
                "finetuned": [asdict(f) for f in self.finetuned],
                "purifier_seeds": [asdict(r) for r in self.seeded],
                "notes": self.notes,
            },
            indent=2,
            default=str,
        )


def evaluate(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    attack: Attack,
    model: Classifier,
    purifier: SifterNet,
    defenses: Sequence[Defense],
    split: Split,
    detectors: Sequence[Detector] = (),
    detector_images: Optional[int] = None,
    target: int = 0,
    settings: Optional[dict[str, Any]] = None,
    progress: bool = True,
) -> tuple[Report, dict[str, tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """Run every defense (and detector) on the evaluation part; returns the report, per
    defense its purified (clean, triggered) evaluation images, and the triggered
    evaluation images (both for figures). Detectors score the clean images and the
    triggered images of non-target classes: at most ``detector_images`` of each, evenly
    spaced through the evaluation part (detectors query the model many times per image)."""
    clean = images[split.evaluation]
    truth = labels[split.evaluation]
    triggered = attack.apply(clean)
    report = Report(
        settings={**(settings or {}), "target": target, "n_eval": len(clean), "purifier": repr(purifier)}
    )
    outputs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for defense in tqdm(defenses, desc="defenses", unit="defense", disable=not progress or None):
        start = time.perf_counter()
        purified_clean = defense.purify(clean, split.evaluation)
        purified_triggered = defense.purify(triggered, split.evaluation)
        if defense.classify is None:
            seconds = time.perf_counter() - start
            on_clean, on_triggered = model.predict(purified_clean), model.predict(purified_triggered)
        else:  # the defense queries the model itself; its time includes those queries
            start = time.perf_counter()
            on_clean = defense.classify(model, clean, split.evaluation)
            on_triggered = defense.classify(model, triggered, split.evaluation)
            seconds = time.perf_counter() - start
            report.notes += defense.notes() if defense.notes is not None else []
        report.rows.append(
            Row(
                defense.name,
                defense.description,
                accuracy(on_clean, truth),
                attack_success_rate(on_triggered, truth, target),
                robust_accuracy(on_triggered, truth, target),
                seconds,
                2 * len(clean) / seconds if seconds > 0 else float("inf"),
            )
        )
        outputs[defense.name] = (purified_clean, purified_triggered)
    scored_clean = _evenly(np.arange(len(clean)), detector_images)
    scored_victims = _evenly(np.flatnonzero(truth != target), detector_images)
    for detector in detectors:
        start = time.perf_counter()
        auc = roc_auc(
            detector.score(clean[scored_clean], split.evaluation[scored_clean]),
            detector.score(triggered[scored_victims], split.evaluation[scored_victims]),
        )
        report.detectors.append(
            DetectorRow(detector.name, detector.description, auc, time.perf_counter() - start)
        )
    report.notes.append(TEST_SPLIT_NOTE)
    return report, outputs, triggered


def _evenly(positions: np.ndarray, count: Optional[int]) -> np.ndarray:
    """At most ``count`` of ``positions``, evenly spaced (all of them for None)."""
    if count is None or count >= len(positions):
        return positions
    if count < 1:
        raise ValueError(f"detector_images: expected at least 1, got {count}")
    return positions[np.linspace(0, len(positions) - 1, count).round().astype(np.int64)]


#: The files :func:`write_report` writes into its folder (metrics.png with matplotlib).
REPORT_FILES = ("report.md", "report.json", "examples.png", "metrics.png")


def write_report(
    report: Report,
    outputs: Mapping[str, tuple[np.ndarray, np.ndarray]],
    clean: np.ndarray,
    triggered: np.ndarray,
    folder: PathLike,
    *,
    examples: int = 6,
    overwrite: bool = False,
) -> list[Path]:
    """report.md, report.json, examples.png (clean | triggered | each defense on the
    triggered images) and, when matplotlib is installed, metrics.png (Acc and ASR bars)."""
    folder = Path(folder)
    paths = [folder / name for name in REPORT_FILES[:3]]
    if not overwrite:
        for path in (folder / name for name in REPORT_FILES):
            if path.exists():
                raise FileExistsError(f"{path}: already exists (pass overwrite=True to replace it)")
    folder.mkdir(parents=True, exist_ok=True)
    report.notes.append(
        "examples.png, one row per image: clean | triggered | "
        + " | ".join(outputs)
        + " (each defense on the triggered image)"
    )
    chart = _bar_chart(report, folder / "metrics.png")
    count = min(examples, len(clean))
    columns = [clean[:count], triggered[:count]] + [out[1][:count] for out in outputs.values()]
    write_image(paths[2], preview_grid(columns))
    write_atomically(paths[0], report.to_markdown().encode(), overwrite=True)
    write_atomically(paths[1], report.to_json().encode(), overwrite=True)
    if chart is None:  # not left over from an earlier run
        (folder / REPORT_FILES[3]).unlink(missing_ok=True)
    return paths + ([chart] if chart else [])


def _bar_chart(report: Report, path: Path) -> Optional[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        report.notes.append("metrics.png skipped: matplotlib is not installed")
        return None
    names = [r.defense for r in report.rows]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2, 3.5))
    ax.bar(x - 0.2, [100 * r.acc for r in report.rows], 0.4, label="Acc (clean)")
    ax.bar(x + 0.2, [100 * r.asr for r in report.rows], 0.4, label="ASR (triggered)")
    ax.set_xticks(x, names, rotation=20, ha="right")
    ax.set_ylabel("%")
    ax.set_ylim(0, 100)
    ax.legend(loc="upper right", fontsize="small")
    ax.set_title(f"{Path(report.settings['data']).name}: {report.settings['attack']}")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def default_defenses(
    purifier: SifterNet, names: Sequence[str], seeds: tuple[np.ndarray, np.ndarray]
) -> list[Defense]:
    """The named defenses of :data:`DEFENSES`, built on the fitted purifier and its seeds."""
    unknown = [n for n in names if n not in DEFENSES]
    if unknown:
        raise ValueError(f"defenses: unknown {unknown}; expected some of {tuple(DEFENSES)}")
    return [DEFENSES[name](purifier, seeds) for name in names]


def seeds_from(
    images: np.ndarray, labels: np.ndarray, split: Split, per_class: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Seed images and labels drawn from the CLEAN training part."""
    chosen = split.train[seed_indices(labels[split.train], per_class, seed=seed)]
    return images[chosen], labels[chosen]


__all__ = [
    "DetectorRow",
    "FineTuneRow",
    "Report",
    "Row",
    "SeedRow",
    "SEEDED_DEFENSES",
    "ATTACKER_SEED_OFFSET",
    "adaptive_poison",
    "asr_over_seeds",
    "Split",
    "evaluate",
    "poison",
    "split_data",
    "write_report",
    "default_defenses",
    "seeds_from",
]
