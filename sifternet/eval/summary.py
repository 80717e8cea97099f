"""The full evaluation report: the ``report.json`` of many ``evaluate`` runs gathered into
the paper's layout (Acc / ASR per defense, detector AUC, timings, fine-tuning), beside
the paper's own Tables 1 and 5."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from sifternet.eval.defenses import DEFENSES
from sifternet.modelfile import PathLike, atomic_path, write_atomically
from sifternet.purifier import PurifierConfig


@dataclass(frozen=True)
class DataSpec:
    """A data set of the report: its table label, its file in the data folder, and the
    settings of its ``evaluate`` run (purifier, seeds per class, training epochs)."""

    label: str
    file: str
    purifier: PurifierConfig
    per_class: int
    epochs: int


@dataclass(frozen=True)
class AttackSpec:
    """An attack of the report: its table label, its name and parameters for
    :func:`sifternet.eval.attacks.make_attack` (empty: the attack's defaults)."""

    label: str
    attack: str
    params: Mapping[str, Any] = field(default_factory=dict)


#: The report's data sets with the paper's published settings (CIFAR-10: steps and block
#: size inside the paper's BackdoorBench ranges, [50, 500] and [15, 25]).
DATASETS: dict[str, DataSpec] = {
    "mnist": DataSpec(
        "MNIST", "mnist_test.npz", PurifierConfig(binarize="global", steps=800), per_class=10, epochs=6
    ),
    "fmnist": DataSpec(
        "Fashion-MNIST",
        "fashion_mnist_test.npz",
        PurifierConfig(binarize="local_mean", block_size=11, steps=800),
        per_class=1,
        epochs=6,
    ),
    "gtsrb": DataSpec(
        "GTSRB",
        "gtsrb.npz",
        PurifierConfig(binarize="local_mean", block_size=15, steps=200),
        per_class=10,
        epochs=8,
    ),
    "cifar10": DataSpec(
        "CIFAR-10",
        "cifar10.npz",
        PurifierConfig(binarize="local_mean", block_size=15, steps=200),
        per_class=10,
        epochs=10,
    ),
}
#: The report's attacks, with BackdoorBench's default parameters.
ATTACKS: dict[str, AttackSpec] = {
    "badnet": AttackSpec("BadNet corner", "badnet"),
    "badnet-interior": AttackSpec("BadNet interior", "badnet", {"position": "interior"}),
    "blended": AttackSpec("Blended", "blended"),
    "sig": AttackSpec("SIG", "sig"),
    "wanet": AttackSpec("WaNet", "wanet"),
}
#: Column order of the defenses (others follow in the order the runs list them).
DEFENSE_ORDER = list(DEFENSES)

#: The paper's figures, Acc / ASR in % (detectors: ROC AUC). Table 5: the small CNNs,
#: before -> after SifterNet under BadNet. Table 1: CIFAR-10 with ResNet-18 in BackdoorBench.
PAPER_TABLE5 = {
    "mnist": ((97.80, 99.80), (80.03, 40.76)),
    "cifar10": ((43.75, 100.00), (36.06, 39.02)),
    "fmnist": ((75.00, 98.90), (62.27, 43.75)),
    "gtsrb": ((98.75, 100.00), (91.75, 34.38)),
}
PAPER_TABLE1 = {  # attack: clean, SifterNet, IFMV (Acc, ASR); STRIP AUC, TeCo AUC
    "badnet": ((75.02, 95.70), (60.02, 13.67), (59.58, 95.92), 0.957, 0.955),
    "wanet": ((77.77, 83.96), (55.52, 5.00), (51.47, 0.50), 0.433, 0.859),
    "blended": ((74.01, 82.91), (60.01, 38.38), (58.23, 66.12), 0.529, 0.518),
    "sig": ((69.02, 83.26), (60.50, 37.22), (58.46, 83.11), 0.488, 0.693),
}


PAPER_TIMINGS = (
    "The paper's timings on GTSRB with an RTX 3090 GPU: STRIP 67.62 s, TeCo 2142.23 s, SifterNet 56.84 s."
)


def run_name(dataset: str, attack: str) -> str:
    """The folder of one run inside a report folder."""
    return f"{dataset}-{attack}"


def load_runs(
    folder: PathLike, keys: Optional[Sequence[tuple[str, str]]] = None
) -> dict[tuple[str, str], dict[str, Any]]:
    """(data set, attack) -> the run's report.json, for the runs ``keys`` (default: every
    known data set x attack) that ``folder`` holds, in the tables' order."""
    wanted = set(keys) if keys is not None else None
    runs = {}
    for dataset in DATASETS:
        for attack in ATTACKS:
            path = Path(folder) / run_name(dataset, attack) / "report.json"
            if path.exists() and (wanted is None or (dataset, attack) in wanted):
                runs[(dataset, attack)] = json.loads(path.read_text())
    return runs


def _pct(pair: tuple[float, float]) -> str:
    return f"{pair[0]:.2f} / {pair[1]:.2f}"


def _label(key: tuple[str, str]) -> str:
    return f"{DATASETS[key[0]].label}, {ATTACKS[key[1]].label}"


def _defense_table(runs: dict) -> list[str]:
    seen = [r["defense"] for run in runs.values() for r in run["rows"]]
    defenses = [d for d in DEFENSE_ORDER if d in seen] + [
        d for d in dict.fromkeys(seen) if d not in DEFENSE_ORDER
    ]
    lines = ["| data set, attack | " + " | ".join(defenses) + " |", "| --- |" + " --- |" * len(defenses)]
    for key, run in runs.items():
        rows = {r["defense"]: r for r in run["rows"]}
        cells = [_pct((100 * rows[d]["acc"], 100 * rows[d]["asr"])) if d in rows else "-" for d in defenses]
        lines.append(f"| {_label(key)} | " + " | ".join(cells) + " |")
    return lines


def _timing_table(runs: dict) -> list[str]:
    lines = [
        "| data set, attack | images | " + "defense: seconds (images/s) | detectors: seconds |",
        "| --- | ---: | --- | --- |",
    ]
    for key, run in runs.items():
        rows = ", ".join(
            f"{r['defense']} {r['seconds']:.2f} ({r['images_per_s']:,.0f})"
            for r in run["rows"]
            if r["defense"] != "none"
        )
        detectors = ", ".join(f"{d['detector']} {d['seconds']:.2f}" for d in run.get("detectors", [])) or "-"
        lines.append(f"| {_label(key)} | {2 * run['settings']['n_eval']} | {rows} | {detectors} |")
    return lines


def _detector_table(runs: dict) -> list[str]:
    names = list(dict.fromkeys(d["detector"] for run in runs.values() for d in run.get("detectors", [])))
    if not names:
        return []
    lines = [
        "| data set, attack | " + " | ".join(f"{n} AUC" for n in names) + " |",
        "| --- |" + " ---: |" * len(names),
    ]
    for key, run in runs.items():
        aucs = {d["detector"]: d["auc"] for d in run.get("detectors", [])}
        lines.append(
            f"| {_label(key)} | " + " | ".join(f"{aucs[n]:.3f}" if n in aucs else "-" for n in names) + " |"
        )
    return lines


def _finetune_table(runs: dict) -> list[str]:
    if not any(run.get("finetuned") for run in runs.values()):
        return []
    lines = [
        "| data set, attack | fine-tuned on | epochs | Acc / ASR on its output | raw Acc / ASR |",
        "| --- | --- | ---: | --- | --- |",
    ]
    for key, run in runs.items():
        for f in run.get("finetuned", []):
            lines.append(
                f"| {_label(key)} | {f['defense']} | {f['epochs']} | "
                f"{_pct((100 * f['acc'], 100 * f['asr']))} | "
                f"{_pct((100 * f['raw_acc'], 100 * f['raw_asr']))} |"
            )
    return lines


def _paper_tables(runs: dict) -> list[str]:
    lines = [
        "Paper Table 5 (its small CNNs, BadNet): clean -> SifterNet, beside this run's "
        "`none` -> `sifternet` (paper mode) and the repair presets:",
        "",
        "| data set | paper clean | paper SifterNet | here clean | here paper mode | here repair "
        "| here repair-otsu |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for dataset, (clean, after) in PAPER_TABLE5.items():
        rows = {r["defense"]: r for r in runs.get((dataset, "badnet"), {}).get("rows", [])}
        here = [
            _pct((100 * rows[d]["acc"], 100 * rows[d]["asr"])) if d in rows else "-"
            for d in ("none", "sifternet", "sifternet-repair", "sifternet-repair-otsu")
        ]
        lines.append(
            f"| {DATASETS[dataset].label} | {_pct(clean)} | {_pct(after)} | " + " | ".join(here) + " |"
        )
    lines += [
        "",
        "Paper Table 1 (CIFAR-10, ResNet-18 in BackdoorBench) beside this run's CIFAR-10 "
        "(the small CNN): Acc / ASR, detectors ROC AUC:",
        "",
        "| attack | paper clean | paper SifterNet | paper IFMV | paper STRIP / TeCo | here clean | "
        "here paper mode | here repair | here IFMV | here STRIP / TeCo |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for attack, (clean, sifter, ifmv, strip, teco) in PAPER_TABLE1.items():
        run = runs.get(("cifar10", attack), {})
        rows = {r["defense"]: r for r in run.get("rows", [])}
        aucs = {d["detector"]: d["auc"] for d in run.get("detectors", [])}
        here = [
            _pct((100 * rows[d]["acc"], 100 * rows[d]["asr"])) if d in rows else "-"
            for d in ("none", "sifternet", "sifternet-repair", "ifmv")
        ]
        detect = " / ".join(f"{aucs[n]:.3f}" if n in aucs else "-" for n in ("strip", "teco"))
        lines.append(
            f"| {ATTACKS[attack].label} | {_pct(clean)} | {_pct(sifter)} | {_pct(ifmv)} | "
            f"{strip:.3f} / {teco:.3f} | " + " | ".join(here) + f" | {detect} |"
        )
    return lines


def summary_markdown(runs: dict, *, command: Optional[str] = None) -> str:
    """The full report as Markdown: one section per table."""
    parts = [
        "# sifternet evaluation report",
        "",
        *([f"Reproduce: `{command}`", ""] if command else []),
        "Acc / ASR in % (Acc on purified clean evaluation images, ASR on purified triggered images "
        "of non-target classes). The data sets are TEST splits: the target model is trained "
        "on 70 % of a test set and evaluated on the rest.",
        "",
        "## Defenses",
        "",
        *_defense_table(runs),
        "",
    ]
    for title, table in (
        ("Detectors (ROC AUC, clean vs triggered)", _detector_table(runs)),
        ("Fine-tuning on purified clean images (the paper's data augmentation)", _finetune_table(runs)),
        (
            "Timings (clean + triggered evaluation images, on the machine that ran the report)",
            _timing_table(runs) + ["", PAPER_TIMINGS],
        ),
        ("Beside the paper", _paper_tables(runs)),
    ):
        if table:
            parts += [f"## {title}", "", *table, ""]
    return "\n".join(parts)


def write_summary(
    folder: PathLike, *, keys: Optional[Sequence[tuple[str, str]]] = None, command: Optional[str] = None
) -> list[Path]:
    """summary.md, summary.json and summary.png (Acc and ASR of every run and defense,
    when matplotlib is installed) in ``folder``, from its runs ``keys`` (default: all);
    they are rewritten, as derived files of the runs beside them."""
    folder = Path(folder)
    runs = load_runs(folder, keys)
    if not runs:
        raise FileNotFoundError(
            f"{folder}: no run folders with report.json (expected e.g. {run_name('mnist', 'badnet')}/)"
        )
    written = [folder / "summary.md", folder / "summary.json"]
    write_atomically(written[0], summary_markdown(runs, command=command).encode(), overwrite=True)
    data = {run_name(*key): run for key, run in runs.items()}
    write_atomically(
        written[1], json.dumps({"command": command, "runs": data}, indent=2).encode(), overwrite=True
    )
    figure = _figure(runs, folder / "summary.png")
    if figure is None:  # not left over from an earlier summary
        (folder / "summary.png").unlink(missing_ok=True)
    return written + ([figure] if figure else [])


def _figure(runs: dict, path: Path) -> Optional[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    keys = list(runs)
    defenses = [
        d for d in DEFENSE_ORDER if any(r["defense"] == d for run in runs.values() for r in run["rows"])
    ]
    fig, axes = plt.subplots(2, 1, figsize=(max(8, 0.9 * len(keys) + 3), 7), sharex=True)
    width = 0.8 / max(1, len(defenses))
    for metric, ax in zip(("acc", "asr"), axes):
        for j, defense in enumerate(defenses):
            values = [
                100 * next((r[metric] for r in runs[k]["rows"] if r["defense"] == defense), float("nan"))
                for k in keys
            ]
            ax.bar(
                [i + (j - (len(defenses) - 1) / 2) * width for i in range(len(keys))],
                values,
                width,
                label=defense,
            )
        ax.set_ylabel(f"{metric.upper()} %")
        ax.set_ylim(0, 100)
    axes[0].legend(ncol=min(5, len(defenses)), fontsize="x-small", loc="lower left")
    axes[1].set_xticks(range(len(keys)), [_label(k) for k in keys], rotation=35, ha="right", fontsize="small")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path


__all__ = [
    "ATTACKS",
    "AttackSpec",
    "DATASETS",
    "DataSpec",
    "load_runs",
    "run_name",
    "summary_markdown",
    "write_summary",
]
