"""The full evaluation report: the ``report.json`` of many ``evaluate`` runs gathered into
the paper's layout (Acc / ASR per defense, detector AUC, timings, fine-tuning), beside
the paper's own Tables 1 and 5; or, for the unknown-trigger grid (:data:`GRIDS`), one
Acc / ASR table with its marks, a count line per defense and an ASR heat map."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from sifternet.eval.defenses import DEFENSES, FLOOR_DEFENSES
from sifternet.modelfile import PathLike, atomic_path, write_atomically
from sifternet.purifier import PurifierConfig

#: (data set, attack) -> a run's report.json, as :func:`load_runs` gives them.
Runs = Mapping[tuple[str, str], Mapping[str, Any]]


@dataclass(frozen=True)
class DataSpec:
    """A data set of the report: its table label, its file in the data folder, and the
    settings of its ``evaluate`` run (purifier, seeds per class, training epochs);
    ``grey``: its images are (B, H, W), so triggers take their ``grey_params``."""

    label: str
    file: str
    purifier: PurifierConfig
    per_class: int
    epochs: int
    grey: bool = False


@dataclass(frozen=True)
class AttackSpec:
    """An attack of the report: its table label, its name and parameters for
    :func:`sifternet.eval.attacks.make_attack` (empty: the attack's defaults), the
    parameters that replace them on grey data sets, and what its training may need
    beyond the data set's settings: a poisoning rate (None: the attack's own) and
    extra epochs; ``adaptive_purifier``: a defense the attacker passes the poisoned
    training images through before training (purifier-aware poisoning), built on the
    attacker's own seeds, as many per class as the defender's; ``kind``: what the count
    table groups it under (:data:`TRIGGER_KINDS`)."""

    label: str
    attack: str
    params: Mapping[str, Any] = field(default_factory=dict)
    grey_params: Mapping[str, Any] = field(default_factory=dict)
    poison_rate: Optional[float] = None
    extra_epochs: int = 0
    adaptive_purifier: Optional[str] = None
    kind: str = "patch"

    def params_for(self, data: DataSpec) -> dict[str, Any]:
        """The attack's parameters on the data set ``data``."""
        return {**self.params, **(self.grey_params if data.grey else {})}


#: The report's data sets with the paper's published settings (CIFAR-10: steps and block
#: size inside the paper's BackdoorBench ranges, [50, 500] and [15, 25]).
DATASETS: dict[str, DataSpec] = {
    "mnist": DataSpec(
        "MNIST",
        "mnist_test.npz",
        PurifierConfig(binarize="global", steps=800),
        per_class=10,
        epochs=6,
        grey=True,
    ),
    "fmnist": DataSpec(
        "Fashion-MNIST",
        "fashion_mnist_test.npz",
        PurifierConfig(binarize="local_mean", block_size=11, steps=800),
        per_class=1,
        epochs=6,
        grey=True,
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
#: Every attack of the reports, by the name of its run folders: the paper grid's five
#: with BackdoorBench's default parameters, then the unknown-trigger grid's patches, the
#: Input-Aware dynamic backdoor and the defense-aware attackers.
ATTACKS: dict[str, AttackSpec] = {
    "badnet": AttackSpec("BadNet corner", "badnet"),
    "badnet-interior": AttackSpec("BadNet interior", "badnet", {"position": "interior"}),
    "blended": AttackSpec("Blended", "blended", kind="image-wide"),
    "sig": AttackSpec("SIG", "sig", kind="image-wide"),
    "wanet": AttackSpec("WaNet", "wanet", kind="image-wide"),
    "white-centre": AttackSpec(
        "White 3x3 centre", "badnet", {"position": "centre"}, poison_rate=0.2, extra_epochs=6
    ),
    "black-interior": AttackSpec(
        "Black 3x3 interior",
        "badnet",
        {"position": "interior", "value": 0},
        poison_rate=0.2,
        extra_epochs=6,
    ),
    "grey-corner": AttackSpec(
        "Grey 3x3 corner",
        "badnet",
        {"position": "top_left", "value": 160},
        poison_rate=0.2,
        extra_epochs=6,
    ),
    "colour-interior": AttackSpec(
        "Colour 3x3 interior",
        "badnet",
        {"position": "interior", "value": (30, 200, 200)},
        grey_params={"value": 90},
        poison_rate=0.2,
        extra_epochs=6,
    ),
    "random-checker": AttackSpec(
        "Random-colour 4x4 checkerboard, random position",
        "badnet",
        {"size": 4, "pattern": "random-checkerboard", "position": "random"},
        poison_rate=0.2,
        extra_epochs=6,
    ),
    "white-centre-5": AttackSpec("White 5x5 centre", "badnet", {"size": 5, "position": "centre"}),
    "input-aware": AttackSpec(
        "Input-Aware", "input-aware", poison_rate=0.2, extra_epochs=12, kind="image-wide"
    ),
    "content-patch": AttackSpec(
        "Content-coloured 3x3 interior (adaptive)",
        "content-patch",
        {"position": "interior"},
        poison_rate=0.2,
        extra_epochs=6,
        kind="adaptive",
    ),
    "repair-aware": AttackSpec(
        "White 3x3 interior learned through sifternet-repair (adaptive)",
        "badnet",
        {"position": "interior"},
        poison_rate=0.2,
        extra_epochs=6,
        adaptive_purifier="sifternet-repair",
        kind="adaptive",
    ),
}
#: What the grid's count table groups the triggers by: localised patches the attacker
#: did not shape against a defense, triggers over the whole image (Input-Aware's too, a
#: mask that differs per image), and defense-aware (adaptive) attackers.
TRIGGER_KINDS = ("patch", "image-wide", "adaptive")
#: The report's plans: ``paper`` (the default) the paper's attacks; ``unknown`` the
#: unknown-trigger grid, six patches the repair presets were not tuned on, the paper's,
#: Input-Aware and two defense-aware attackers.
GRIDS: dict[str, tuple[str, ...]] = {
    "paper": ("badnet", "badnet-interior", "blended", "sig", "wanet"),
    "unknown": tuple(ATTACKS),
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
    defenses = _defenses(runs)
    lines = ["| data set, attack | " + " | ".join(defenses) + " |", "| --- |" + " --- |" * len(defenses)]
    for key, run in runs.items():
        rows = {r["defense"]: r for r in run["rows"]}
        cells = [_pct((100 * rows[d]["acc"], 100 * rows[d]["asr"])) if d in rows else "-" for d in defenses]
        lines.append(f"| {_label(key)} | " + " | ".join(cells) + " |")
    return lines


def _timing_table(runs: Runs) -> list[str]:
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


def _detector_table(runs: Runs) -> list[str]:
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


def _seed_table(runs: Runs) -> list[str]:
    names = list(dict.fromkeys(r["defense"] for run in runs.values() for r in run.get("purifier_seeds", [])))
    if not names:
        return []
    lines = ["| data set, attack | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    for key, run in runs.items():
        seeded = {r["defense"]: r for r in run.get("purifier_seeds", [])}
        cells = [
            f"{100 * seeded[n]['mean']:.2f} / {100 * seeded[n]['worst']:.2f} ({len(seeded[n]['seeds'])})"
            if n in seeded
            else "-"
            for n in names
        ]
        lines.append(f"| {_label(key)} | " + " | ".join(cells) + " |")
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
    folder: PathLike,
    *,
    keys: Optional[Sequence[tuple[str, str]]] = None,
    command: Optional[str] = None,
    grid: str = "paper",
) -> list[Path]:
    """summary.md, summary.json and a figure in ``folder``, from its runs ``keys``
    (default: all); they are rewritten, as derived files of the runs beside them. The
    ``paper`` grid's figure is summary.png (Acc and ASR bars), the ``unknown`` grid's
    summary-grid.png (an ASR heat map, :func:`grid_markdown`); figures need matplotlib."""
    if grid not in GRIDS:
        raise ValueError(f"grid: expected one of {tuple(GRIDS)}, got {grid!r}")
    folder = Path(folder)
    runs = load_runs(folder, keys)
    if not runs:
        raise FileNotFoundError(
            f"{folder}: no run folders with report.json (expected e.g. {run_name('mnist', 'badnet')}/)"
        )
    written = [folder / "summary.md", folder / "summary.json"]
    data: dict[str, Any] = {"command": command, "grid": grid}
    if grid == "paper":
        markdown = summary_markdown(runs, command=command)
        figure_name, draw = "summary.png", _figure
    else:
        cells = grid_cells(runs)
        markdown = grid_markdown(runs, command=command)
        figure_name, draw = GRID_FIGURE, _heat_map
        data.update(
            cells={run_name(*key): asdict(cell) for key, cell in cells.items()},
            counts={d: dict(zip(("k", "n"), kn)) for d, kn in grid_counts(runs, cells).items()},
        )
    data["runs"] = {run_name(*key): run for key, run in runs.items()}
    write_atomically(written[0], markdown.encode(), overwrite=True)
    write_atomically(written[1], json.dumps(data, indent=2).encode(), overwrite=True)
    figure = draw(runs, folder / figure_name)
    if figure is None:  # not left over from an earlier summary
        (folder / figure_name).unlink(missing_ok=True)
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


# -- the unknown-trigger grid ----------------------------------------------------------
#: A trigger counts as learned when the undefended model's ASR on it is at least this.
LEARNED_ASR = 0.80
#: A defense removes a trigger on a cell at an ASR of at most this ...
REMOVED_ASR = 0.05
#: ... losing at most this much accuracy (a fraction: 2 points), against the undefended
#: model for the count line, against a floor defense for the floor marking.
ACC_MARGIN = 0.02
#: Float slack of the accuracy comparisons (Acc and ASR are fractions of whole images).
_SLACK = 1e-9
#: The unknown grid's heat map, beside summary.md.
GRID_FIGURE = "summary-grid.png"
NOT_LEARNED = "not learned"
NO_BASELINE = "no baseline"
FLOOR_MARK = "†"


@dataclass(frozen=True)
class GridCell:
    """The marks of one row (data set x trigger) of the grid: ``learned`` (None: no
    ``none`` row to tell), the best floor defense (None: no floor defense ran or no
    baseline), and the defenses that do not beat it."""

    learned: Optional[bool]
    best_floor: Optional[str]
    not_beating_floor: tuple[str, ...]


def _by_defense(run: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["defense"]: r for r in run["rows"]}


def best_floor(
    rows: Mapping[str, Mapping[str, Any]], floors: Sequence[str] = FLOOR_DEFENSES
) -> Optional[str]:
    """The best of the ``floors`` that ran on a cell: the lowest ASR among those within
    2 points of the undefended accuracy (ties: the more accurate, then the first named); if
    none keeps accuracy, the most accurate (ties: the lower ASR). None without ``none``."""
    ran = [f for f in floors if f in rows]
    if not ran or "none" not in rows:
        return None
    base = rows["none"]["acc"]
    keeping = [f for f in ran if rows[f]["acc"] >= base - ACC_MARGIN - _SLACK]
    if keeping:
        return min(keeping, key=lambda f: (rows[f]["asr"], -rows[f]["acc"]))
    return min(ran, key=lambda f: (-rows[f]["acc"], rows[f]["asr"]))


def beats(row: Mapping[str, Any], floor: Mapping[str, Any]) -> bool:
    """Whether a defense's ``row`` beats a floor defense's on the same cell: a lower ASR,
    at an accuracy at most 2 points below the floor's."""
    return bool(row["asr"] < floor["asr"] and row["acc"] >= floor["acc"] - ACC_MARGIN - _SLACK)


def removes(row: Mapping[str, Any], baseline: Mapping[str, Any]) -> bool:
    """Whether a defense's ``row`` counts on the count line: ASR <= 5 % at an accuracy
    at most 2 points below the undefended ``baseline``'s."""
    return bool(row["asr"] <= REMOVED_ASR + _SLACK and row["acc"] >= baseline["acc"] - ACC_MARGIN - _SLACK)


def grid_cells(runs: Runs, floors: Sequence[str] = FLOOR_DEFENSES) -> dict[tuple[str, str], GridCell]:
    """The marks of every run: learned or not; the best floor defense and, on learned
    rows, the defenses (neither ``none`` nor a floor defense) that do not beat it."""
    cells = {}
    for key, run in runs.items():
        rows = _by_defense(run)
        learned = rows["none"]["asr"] >= LEARNED_ASR - _SLACK if "none" in rows else None
        floor = best_floor(rows, floors)
        losers: tuple[str, ...] = ()
        if floor is not None and learned:
            losers = tuple(
                d for d in rows if d != "none" and d not in floors and not beats(rows[d], rows[floor])
            )
        cells[key] = GridCell(learned, floor, losers)
    return cells


def grid_counts(runs: Runs, cells: Mapping[tuple[str, str], GridCell]) -> dict[str, tuple[int, int]]:
    """Per defense but ``none``: (k, n), n the learned rows it ran on, k those where it
    :func:`removes` the trigger."""
    counts: dict[str, list[int]] = {d: [0, 0] for d in _defenses(runs) if d != "none"}
    for key, run in runs.items():
        if not cells[key].learned:
            continue
        rows = _by_defense(run)
        for defense, row in rows.items():
            if defense != "none":
                counts[defense][1] += 1
                counts[defense][0] += removes(row, rows["none"])
    return {d: (k, n) for d, (k, n) in counts.items()}


def _count_table(runs: Runs, cells: Mapping[tuple[str, str], GridCell]) -> list[str]:
    """Per defense, "k of n" of :func:`grid_counts` per data set and per trigger kind,
    then over every row."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for key in runs:
        groups.setdefault(DATASETS[key[0]].label, []).append(key)
    for kind in TRIGGER_KINDS:
        chosen = [key for key in runs if ATTACKS[key[1]].kind == kind]
        if chosen:
            groups[f"{kind} triggers"] = chosen
    groups["all"] = list(runs)
    counted = {name: grid_counts({key: runs[key] for key in keys}, cells) for name, keys in groups.items()}
    lines = ["| defense | " + " | ".join(groups) + " |", "| --- |" + " ---: |" * len(groups)]
    for defense in grid_counts(runs, cells):
        entries = [
            "{} of {}".format(*counted[name][defense]) if defense in counted[name] else "-" for name in groups
        ]
        lines.append(f"| {defense} | " + " | ".join(entries) + " |")
    return lines


def _defenses(runs: Runs) -> list[str]:
    """The defenses of the runs, known ones in :data:`DEFENSE_ORDER` first."""
    seen = [r["defense"] for run in runs.values() for r in run["rows"]]
    return [d for d in DEFENSE_ORDER if d in seen] + [
        d for d in dict.fromkeys(seen) if d not in DEFENSE_ORDER
    ]


def _row_label(key: tuple[str, str], cell: GridCell) -> str:
    flag = {None: f" ({NO_BASELINE})", False: f" ({NOT_LEARNED})", True: ""}[cell.learned]
    return _label(key) + flag


def _trigger_table(runs: Runs) -> list[str]:
    lines = [
        "| trigger | attack | parameters | on grey data sets | poisoning rate | extra epochs "
        "| learned through |",
        "| --- | --- | --- | --- | --- | ---: | --- |",
    ]
    for name in dict.fromkeys(attack for _, attack in runs):
        spec = ATTACKS[name]
        params = ", ".join(f"{k} {v}" for k, v in spec.params.items()) or "defaults"
        grey = ", ".join(f"{k} {v}" for k, v in spec.grey_params.items()) or "the same"
        rate = "the attack's" if spec.poison_rate is None else f"{100 * spec.poison_rate:g} %"
        through = spec.adaptive_purifier or "-"
        lines.append(
            f"| {spec.label} | {spec.attack} | {params} | {grey} | {rate} | {spec.extra_epochs} | {through} |"
        )
    return lines


def grid_markdown(
    runs: Runs,
    *,
    command: Optional[str] = None,
    floors: Sequence[str] = FLOOR_DEFENSES,
) -> str:
    """The unknown-trigger grid as Markdown: the Acc / ASR table (rows data set x trigger,
    columns defenses) with the not-learned flags and the floor marks, the count line of
    each defense, the triggers, the detectors and the timings."""
    cells = grid_cells(runs, floors)
    defenses = _defenses(runs)
    ran_floors = [f for f in floors if f in defenses]
    table = ["| data set, trigger | " + " | ".join(defenses) + " |", "| --- |" + " --- |" * len(defenses)]
    for key, run in runs.items():
        rows, cell = _by_defense(run), cells[key]
        entries = [
            (_pct((100 * rows[d]["acc"], 100 * rows[d]["asr"])) if d in rows else "-")
            + (f" {FLOOR_MARK}" if d in cell.not_beating_floor else "")
            for d in defenses
        ]
        table.append(f"| {_row_label(key, cell)} | " + " | ".join(entries) + " |")
    counts = grid_counts(runs, cells)
    count_lines = [
        f"- `{d}`: cells with ASR <= {100 * REMOVED_ASR:g} % within {100 * ACC_MARGIN:g} points of "
        f"undefended accuracy: {k} of {n}"
        for d, (k, n) in counts.items()
    ]
    floor_note = (
        f"`{FLOOR_MARK}` after a cell: that defense does not beat the best floor defense of its row "
        f"(of {', '.join(ran_floors)}): it needs a lower ASR at an accuracy at most "
        f"{100 * ACC_MARGIN:g} points below that floor defense's. Floor defenses and `none` are not "
        "marked, nor are rows whose trigger was not learned."
        if ran_floors
        else "No floor defense ran, so no cell is marked against the floor."
    )
    parts = [
        "# sifternet unknown-trigger grid",
        "",
        *([f"Reproduce: `{command}`", ""] if command else []),
        "Acc / ASR in % (Acc on purified clean evaluation images, ASR on purified triggered images "
        "of non-target classes). The data sets are TEST splits: the target model is trained "
        "on 70 % of a test set and evaluated on the rest. The ASR heat map is "
        f"[{GRID_FIGURE}]({GRID_FIGURE}).",
        "",
        f"`({NOT_LEARNED})` after a row: the undefended ASR is under {100 * LEARNED_ASR:g} %, the "
        "poisoned model did not learn the trigger; the row is left out of the count lines. " + floor_note,
        "",
        "## Acc / ASR per trigger and defense",
        "",
        *table,
        "",
        "## Count per defense",
        "",
        f"n: the rows whose trigger the model learned (undefended ASR >= {100 * LEARNED_ASR:g} %) "
        "and that the defense ran on.",
        "",
        *count_lines,
        "",
        "The same counts per data set and per kind of trigger (patch: localised patches; "
        "image-wide: Blended, SIG, WaNet, Input-Aware; adaptive: shaped against a defense):",
        "",
        *_count_table(runs, cells),
        "",
        "## Triggers",
        "",
        *_trigger_table(runs),
        "",
    ]
    for title, lines in (
        ("Detectors (ROC AUC, clean vs triggered)", _detector_table(runs)),
        (
            "ASR over purifier seeds (mean / worst in %, seeds in brackets; an attacker who can "
            "retry gets the worst)",
            _seed_table(runs),
        ),
        (
            "Timings (clean + triggered evaluation images, on the machine that ran the report)",
            _timing_table(runs),
        ),
    ):
        if lines:
            parts += [f"## {title}", "", *lines, ""]
    return "\n".join(parts)


def _heat_map(runs: Runs, path: Path) -> Optional[Path]:
    """ASR % of every row (data set x trigger) and defense as a heat map with the values
    written in; rows not learned have their label flagged, floor-marked cells a dagger."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    cells = grid_cells(runs)
    keys, defenses = list(runs), _defenses(runs)
    asr = np.full((len(keys), len(defenses)), np.nan)
    for i, key in enumerate(keys):
        rows = _by_defense(runs[key])
        for j, defense in enumerate(defenses):
            if defense in rows:
                asr[i, j] = 100 * rows[defense]["asr"]
    fig, ax = plt.subplots(figsize=(0.55 * len(defenses) + 4, 0.24 * len(keys) + 1.8))
    image = ax.imshow(asr, cmap="Reds", vmin=0, vmax=100, aspect="auto")
    for i, key in enumerate(keys):
        for j, defense in enumerate(defenses):
            if not np.isnan(asr[i, j]):
                mark = FLOOR_MARK if defense in cells[key].not_beating_floor else ""
                ax.text(
                    j,
                    i,
                    f"{asr[i, j]:.0f}{mark}",
                    ha="center",
                    va="center",
                    fontsize=5.5,
                    color="white" if asr[i, j] > 60 else "black",
                )
    for i in range(1, len(keys)):
        if keys[i][0] != keys[i - 1][0]:  # a line between data sets
            ax.axhline(i - 0.5, color="black", linewidth=0.8)
    ax.set_xticks(range(len(defenses)), defenses, rotation=45, ha="right", fontsize=6.5)
    ax.set_yticks(range(len(keys)), [_row_label(k, cells[k]) for k in keys], fontsize=6.5)
    ax.set_title(f"ASR % ({FLOOR_MARK}: does not beat the best floor defense)", fontsize=8)
    fig.colorbar(image, ax=ax, fraction=0.03, pad=0.01).ax.tick_params(labelsize=6)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


__all__ = [
    "ATTACKS",
    "AttackSpec",
    "DATASETS",
    "DataSpec",
    "GRIDS",
    "GridCell",
    "TRIGGER_KINDS",
    "beats",
    "best_floor",
    "grid_cells",
    "grid_counts",
    "grid_markdown",
    "load_runs",
    "removes",
    "run_name",
    "summary_markdown",
    "write_summary",
]
