"""The evaluation commands of ``sifternet``: evaluate, sweep, report.

:func:`add_command` adds one of them to the core parser (:mod:`sifternet.cli` calls it only
when that command runs). Each command translates its options into typed arguments and runs
the same Python functions a script can call: :func:`backdoored`, :func:`run_evaluate` and
:func:`run_report_entry`.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Optional, Sequence

import numpy as np
from tqdm import tqdm

from sifternet.cli import EVAL_COMMANDS, CliError, add_purifier_options, purifier_options, refuse_existing
from sifternet.eval import evaluate as ev
from sifternet.eval.attacks import PATTERNS, POSITIONS, Attack, Colour, Position, make_attack
from sifternet.eval.defenses import DEFAULT_DEFENSES, DEFENSES, FLOOR_DEFENSES, MODEL_QUERYING
from sifternet.eval.detectors import DETECTORS, make_detectors
from sifternet.eval.finetune import evaluate_finetuned
from sifternet.eval.inputaware import train_input_aware
from sifternet.eval.models import Classifier, load_torchscript, train_small_cnn
from sifternet.eval.summary import ATTACKS, DATASETS, GRID_FIGURE, GRIDS, run_name, write_summary
from sifternet.eval.sweep import SWEEP_FILES, sweep, write_sweep
from sifternet.io import load_array
from sifternet.modelfile import PathLike
from sifternet.purifier import PurifierConfig, SifterNet

#: The Input-Aware dynamic backdoor: trained with its own classifier
#: (:func:`~sifternet.eval.inputaware.train_input_aware`), not stamped and poisoned.
INPUT_AWARE = "input-aware"
#: Its share of triggered images per batch unless a poisoning rate is given (at the
#: paper's 0.1 it reached about 80 % ASR here, at 0.2 about 94 %: docs/evaluation-inputaware.md).
INPUT_AWARE_RATE = 0.2
#: Each attack's parameters, also the names of its command-line options.
ATTACK_FLAGS = {
    "badnet": ("position", "size", "value", "pattern", "pattern_seed"),
    "content-patch": ("position", "size", "delta"),
    "blended": ("alpha",),
    "sig": ("delta", "frequency"),
    "wanet": ("grid", "strength"),
    INPUT_AWARE: (),
}


# -- typed runs ---------------------------------------------------------------------
@dataclass(frozen=True)
class Backdoor:
    """The data, the attack and the target model of a run: what evaluate and sweep share.
    ``model``: a TorchScript model to load instead of training the small CNN, which
    ``model_cache`` keeps; ``limit``: a random subset of this many images; ``poison_rate``:
    the poisoned share of the training part (None: the attack's own, :func:`make_attack`);
    ``adaptive_purifier``: a defense of :data:`DEFENSES` the attacker passes the poisoned
    training images through before training (:func:`~sifternet.eval.evaluate.adaptive_poison`,
    its own ``adaptive_per_class`` seeds per class)."""

    data: str
    attack: str = "badnet"
    attack_params: Mapping[str, Any] = field(default_factory=dict)
    target: int = 0
    train_fraction: float = 0.7
    split_seed: int = 0
    epochs: int = 6
    model: Optional[str] = None
    model_cache: Optional[str] = None
    limit: Optional[int] = None
    poison_rate: Optional[float] = None
    adaptive_purifier: Optional[str] = None
    adaptive_per_class: int = 2


@dataclass(frozen=True)
class Evaluation:
    """What an evaluate run measures: SifterNet with ``purifier`` on ``per_class`` seeds per
    class, the ``defenses`` and ``detectors`` by name, and, with ``finetune_epochs``, the
    model fine-tuned on each of ``finetune_defenses`` (sifternet and binarise-only always);
    with ``purifier_seeds`` > 1 the ASR of the SifterNet defenses over that many purifier
    seeds (:func:`~sifternet.eval.evaluate.asr_over_seeds`)."""

    purifier: PurifierConfig = field(default_factory=PurifierConfig)
    per_class: int = 2
    defenses: tuple[str, ...] = DEFAULT_DEFENSES
    detectors: tuple[str, ...] = ()
    detector_images: Optional[int] = None
    strip_copies: int = 100
    finetune_epochs: int = 0
    finetune_defenses: tuple[str, ...] = ("none", "sifternet", "binarise-only")
    purifier_seeds: int = 1


class Backdoored(NamedTuple):
    """A data set, its split, the attack and the target model trained on it (or loaded)."""

    images: np.ndarray
    labels: np.ndarray
    attack: Attack
    split: ev.Split
    model: Classifier
    settings: dict


def backdoored(
    spec: Backdoor,
    *,
    threads: Optional[int] = None,
    command: Optional[str] = None,
    purifier: Optional[PurifierConfig] = None,
) -> Backdoored:
    """Load the data (a random subset with ``limit``), split it, make the attack and train
    the small CNN on the poisoned training part (or load ``model``); ``command`` is recorded
    in the settings. ``purifier``: the configuration of an adaptive attacker's ``sifternet``
    (default the paper's)."""
    images, labels = load_array(spec.data, "images"), load_array(spec.data, "labels").astype(np.int64)
    if spec.limit:
        keep = np.sort(np.random.default_rng(spec.split_seed).permutation(len(images))[: spec.limit])
        images, labels = images[keep], labels[keep]
    params = dict(spec.attack_params)
    if spec.poison_rate is not None and not 0.0 < spec.poison_rate < 1.0:
        raise ValueError(f"poison_rate: expected a number in (0, 1), got {spec.poison_rate}")
    split = ev.split_data(len(images), spec.train_fraction, spec.split_seed)
    if spec.adaptive_purifier is not None and spec.model:
        raise ValueError(
            f"adaptive_purifier: expected a model trained here (no model file), got model {spec.model!r}"
        )
    if spec.attack == INPUT_AWARE and (spec.model or spec.adaptive_purifier is not None or params):
        raise ValueError(
            f"attack {INPUT_AWARE!r}: trains its own model and takes no model file, adaptive purifier "
            f"or attack parameters (got model {spec.model!r}, adaptive_purifier "
            f"{spec.adaptive_purifier!r}, parameters {params})"
        )
    adaptive, n_poisoned, extra = None, 0, {}
    if spec.attack == INPUT_AWARE:
        attack, model, stats = _input_aware(images, labels, split, spec, threads)
        extra = {"input_aware": stats}
    else:
        attack = make_attack(spec.attack, **params)
        if spec.poison_rate is not None:
            attack = replace(attack, poison_ratio=spec.poison_rate)
        if spec.model:
            model = load_torchscript(spec.model)
        else:
            train_x, train_y, poisoned = ev.poison(
                images[split.train], labels[split.train], attack, spec.target, spec.split_seed
            )
            n_poisoned = len(poisoned)
            if spec.adaptive_purifier is not None:
                train_x, adaptive = ev.adaptive_poison(
                    images,
                    labels,
                    train_x,
                    split,
                    spec.adaptive_purifier,
                    config=purifier,
                    per_class=spec.adaptive_per_class,
                    seed=spec.split_seed,
                    num_threads=threads,
                )
            model = train_small_cnn(
                train_x,
                train_y,
                n_classes=int(labels.max()) + 1,
                epochs=spec.epochs,
                seed=spec.split_seed,
                num_threads=threads,
                cache=spec.model_cache,
            )
    settings = dict(
        data=str(spec.data),
        attack=spec.attack,
        attack_params=params,
        n_train=len(split.train),
        n_poisoned=n_poisoned,
        poison_rate=attack.poison_ratio,
        train_fraction=spec.train_fraction,
        split_seed=spec.split_seed,
        epochs=spec.epochs,
        model=spec.model or "small CNN (trained here)",
        limit=spec.limit,
        adaptive_purifier=adaptive,
        command=command,
        **extra,
    )
    return Backdoored(images, labels, attack, split, model, settings)


def _input_aware(
    images: np.ndarray, labels: np.ndarray, split: ev.Split, spec: Backdoor, threads: Optional[int]
) -> tuple[Attack, Classifier, dict[str, Any]]:
    """The Input-Aware attack, its jointly trained classifier and the stats measured on
    its held-out share, trained on the training part (``spec.model_cache`` keeps it)."""
    rate = spec.poison_rate or INPUT_AWARE_RATE
    trained = train_input_aware(
        images[split.train],
        labels[split.train],
        target=spec.target,
        epochs=spec.epochs,
        n_classes=int(labels.max()) + 1,
        rho_b=rate,
        seed=spec.split_seed,
        num_threads=threads,
        cache=spec.model_cache,
    )
    return Attack(INPUT_AWARE, trained.apply, rate), trained.model, asdict(trained.stats)


def run_evaluate(
    backdoor: Backdoor,
    evaluation: Evaluation,
    out: PathLike,
    *,
    threads: Optional[int] = None,
    overwrite: bool = False,
    command: Optional[str] = None,
) -> tuple[ev.Report, list[Path]]:
    """Measure ``evaluation`` against ``backdoor`` and write report.md, report.json and the
    figures into ``out`` (existing ones replaced only with ``overwrite=True``, checked
    before the training); returns the report and the files written."""
    if not overwrite:
        for path in (Path(out) / name for name in ev.REPORT_FILES):
            if path.exists():
                raise FileExistsError(f"{path}: already exists (pass overwrite=True to replace it)")
    if evaluation.purifier_seeds < 1:
        raise ValueError(f"purifier_seeds: expected at least 1, got {evaluation.purifier_seeds}")
    tuned = (
        [*evaluation.finetune_defenses, "sifternet", "binarise-only"] if evaluation.finetune_epochs else []
    )
    images, labels, attack, split, model, settings = backdoored(
        backdoor, threads=threads, command=command, purifier=evaluation.purifier
    )
    seed = backdoor.split_seed
    seeds, seed_labels = ev.seeds_from(images, labels, split, evaluation.per_class, seed)
    purifier = SifterNet.from_config(evaluation.purifier, num_threads=threads).fit(seeds, seed_labels)
    settings.update(
        n_seeds=len(seeds),
        finetune_epochs=evaluation.finetune_epochs,
        purifier_seeds=evaluation.purifier_seeds,
    )
    built = {
        d.name: d
        for d in ev.default_defenses(
            purifier, list(dict.fromkeys([*evaluation.defenses, *tuned])), (seeds, seed_labels)
        )
    }  # each fitted once
    detectors = make_detectors(
        evaluation.detectors,
        model,
        images[split.train],
        seed,
        strip_copies=evaluation.strip_copies,
        seeds=seeds,
    )
    report, outputs, triggered = ev.evaluate(
        images,
        labels,
        attack=attack,
        model=model,
        purifier=purifier,
        defenses=[built[name] for name in evaluation.defenses],
        split=split,
        target=backdoor.target,
        settings=settings,
        detectors=detectors,
        detector_images=evaluation.detector_images,
    )
    if settings["adaptive_purifier"] is not None:
        adaptive = settings["adaptive_purifier"]
        report.notes.append(
            f"Adaptive attacker: every poisoned training image (clean and triggered) was passed through "
            f"{adaptive['defense']} ({adaptive['description']}) on the attacker's own "
            f"{adaptive['n_seeds']} seeds before training."
        )
    if evaluation.purifier_seeds > 1:
        report.seeded = ev.asr_over_seeds(
            triggered,
            labels[split.evaluation],
            split.evaluation,
            model=model,
            purifier=purifier,
            seeds=(seeds, seed_labels),
            defenses=evaluation.defenses,
            n_seeds=evaluation.purifier_seeds,
            target=backdoor.target,
        )
    if tuned:
        report.finetuned = evaluate_finetuned(
            images,
            labels,
            model=model,
            defenses=[built[name] for name in dict.fromkeys(tuned)],
            split=split,
            triggered=triggered,
            epochs=evaluation.finetune_epochs,
            target=backdoor.target,
            seed=seed,
            num_threads=threads,
        )
    written = ev.write_report(report, outputs, images[split.evaluation], triggered, out, overwrite=overwrite)
    return report, written


def run_report_entry(
    data_dir: PathLike,
    out: PathLike,
    dataset: str,
    attack: str,
    measured: Evaluation,
    *,
    limit: Optional[int] = None,
    threads: Optional[int] = None,
    command: Optional[str] = None,
) -> tuple[ev.Report, list[Path]]:
    """One run of the report: :func:`run_evaluate` with the settings of ``DATASETS[dataset]``
    and ``ATTACKS[attack]`` (its parameters for that data set, its poisoning rate and extra
    epochs; defenses and detectors from ``measured``) into ``out/<dataset>-<attack>``, its
    model cache beside it; an earlier run is replaced."""
    data, threat, name = DATASETS[dataset], ATTACKS[attack], run_name(dataset, attack)
    backdoor = Backdoor(
        str(Path(data_dir) / data.file),
        threat.attack,
        threat.params_for(data),
        epochs=data.epochs + threat.extra_epochs,
        model_cache=str(Path(out) / f"{name}.pt"),
        limit=limit,
        poison_rate=threat.poison_rate,
        adaptive_purifier=threat.adaptive_purifier,
        adaptive_per_class=data.per_class if threat.adaptive_purifier else Backdoor.adaptive_per_class,
    )
    evaluation = replace(measured, purifier=data.purifier, per_class=data.per_class)
    return run_evaluate(
        backdoor, evaluation, Path(out) / name, threads=threads, overwrite=True, command=command
    )


# -- commands -----------------------------------------------------------------------
def _command_line() -> str:
    return "sifternet " + shlex.join(sys.argv[1:])


def _show(text: str, written: Sequence[Path]) -> None:
    print(text)
    print("wrote " + ", ".join(str(p) for p in written))


def _names(text: str, known: Mapping[str, Any], option: str) -> tuple[str, ...]:
    """The comma-separated names of ``text``, all of them in ``known``."""
    names = tuple(n for n in text.split(",") if n)
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise CliError(f"{option}: expected some of {','.join(known)}, got {text!r}")
    return names


def _backdoor(args: argparse.Namespace) -> Backdoor:
    """evaluate's or sweep's data, attack and model options as a :class:`Backdoor`."""
    params = {k: getattr(args, k) for k in ATTACK_FLAGS[args.attack] if getattr(args, k) is not None}
    return Backdoor(
        args.data,
        args.attack,
        params,
        target=args.target,
        train_fraction=args.train_fraction,
        split_seed=args.split_seed,
        epochs=args.epochs,
        model=args.model,
        model_cache=args.model_cache,
        limit=args.limit,
        poison_rate=args.poison_rate,
        adaptive_purifier=getattr(args, "adaptive_purifier", None),
        adaptive_per_class=args.per_class
        if getattr(args, "adaptive_purifier", None)
        else Backdoor.adaptive_per_class,
    )


def _measured(args: argparse.Namespace, defenses: Optional[str] = None, **more: Any) -> Evaluation:
    """The defenses (``defenses`` if given, else ``--defenses``), detectors and fine-tuning
    epochs of evaluate's or report's options."""
    detectors = _names(args.detectors, DETECTORS, "--detectors") if args.detectors else ()
    return Evaluation(
        defenses=_names(args.defenses if defenses is None else defenses, DEFENSES, "--defenses"),
        detectors=detectors,
        detector_images=args.detector_images,
        strip_copies=args.strip_copies,
        finetune_epochs=args.finetune_epochs,
        purifier_seeds=args.purifier_seeds,
        **more,
    )


def _evaluation(args: argparse.Namespace) -> Evaluation:
    """evaluate's options as an :class:`Evaluation`."""
    tunable = {name: factory for name, factory in DEFENSES.items() if name not in MODEL_QUERYING}
    return _measured(
        args,
        purifier=PurifierConfig(**purifier_options(args)),
        per_class=args.per_class,
        finetune_defenses=_names(
            args.finetune_defenses, tunable, "--finetune-defenses (defenses that purify images)"
        ),
    )


def cmd_evaluate(args: argparse.Namespace) -> None:
    for name in ev.REPORT_FILES:  # before the training, not after it
        refuse_existing(Path(args.out) / name, args.force)
    report, written = run_evaluate(
        _backdoor(args),
        _evaluation(args),
        args.out,
        threads=args.threads,
        overwrite=args.force,
        command=_command_line(),
    )
    _show(report.to_markdown(), written)


def cmd_sweep(args: argparse.Namespace) -> None:
    for name in SWEEP_FILES:  # before the training, not after it
        refuse_existing(Path(args.out) / name, args.force)
    images, labels, attack, split, model, settings = backdoored(
        _backdoor(args), threads=args.threads, command=_command_line()
    )
    options = {k: v for k, v in purifier_options(args).items() if k not in ("steps", "block_size")}
    result = sweep(
        images,
        labels,
        attack=attack,
        model=model,
        split=split,
        steps=args.steps,
        per_class=args.per_class,
        block_sizes=args.block_size or (),
        options=options,
        target=args.target,
        seed=args.split_seed,
        num_threads=args.threads,
        settings=settings,
    )
    _show(result.to_markdown(), write_sweep(result, args.out, overwrite=args.force))


#: The defenses each grid of the report runs unless --defenses says otherwise: the paper
#: grid today's defaults; the unknown grid the SifterNet defenses (the dark and both-ways
#: repair presets too: some of its triggers are dark) and the floor, without the paper
#: grid's controls and IFMV (a minute a run, querying the model).
GRID_DEFENSES: dict[str, tuple[str, ...]] = {
    "paper": DEFAULT_DEFENSES,
    "unknown": (
        "none",
        "sifternet",
        "sifternet-repair",
        "sifternet-repair-dark",
        "sifternet-repair-both",
        "sifternet-repair-otsu",
        "sifternet-nearest",
        *FLOOR_DEFENSES,
    ),
}
#: The detectors and purifier seeds of each grid unless --detectors / --purifier-seeds
#: say otherwise (the paper grid scores the detectors).
GRID_DETECTORS: dict[str, str] = {"paper": "strip,teco", "unknown": ""}
GRID_PURIFIER_SEEDS: dict[str, int] = {"paper": 1, "unknown": 5}


def report_plan(
    grid: str, datasets: Optional[str] = None, attacks: Optional[str] = None
) -> list[tuple[str, str]]:
    """The (data set, attack) runs of ``grid``, all of its data sets and attacks or the
    comma-separated ``datasets`` and ``attacks`` (each of them in the grid)."""
    if grid not in GRIDS:
        raise CliError(f"--grid: expected one of {','.join(GRIDS)}, got {grid!r}")
    triggers = {name: ATTACKS[name] for name in GRIDS[grid]}
    chosen_data = _names(datasets, DATASETS, "--datasets") if datasets is not None else tuple(DATASETS)
    chosen = (
        _names(attacks, triggers, f"--attacks (of the {grid} grid)") if attacks is not None else GRIDS[grid]
    )
    return [(d, a) for d in chosen_data for a in chosen]


def cmd_report(args: argparse.Namespace) -> None:
    out, data = Path(args.out), Path(args.data_dir)
    plan = report_plan(args.grid, args.datasets, args.attacks)
    defenses = args.defenses if args.defenses is not None else ",".join(GRID_DEFENSES[args.grid])
    if args.grid == "unknown" and "none" not in defenses.split(","):
        defenses = "none," + defenses  # the baseline of the grid's marks and count lines
    if args.detectors is None:  # the grid's own defaults, parsed as --detectors is
        args.detectors = GRID_DETECTORS[args.grid]
    if args.purifier_seeds is None:
        args.purifier_seeds = GRID_PURIFIER_SEEDS[args.grid]
    measured = _measured(args, defenses)
    missing = sorted({DATASETS[d].file for d, _ in plan if not (data / DATASETS[d].file).exists()})
    if missing:
        raise FileNotFoundError(
            f"{data}: missing {', '.join(missing)} (each data set a .npz with 'images' and 'labels')"
        )
    done = [key for key in plan if (out / run_name(*key) / "report.json").exists()]
    if done and not (args.resume or args.force):
        raise FileExistsError(
            f"{out / run_name(*done[0])}: already has a report (pass --resume to keep "
            "finished runs, or --force to redo them)"
        )
    for dataset, attack in tqdm(plan, desc="report runs", unit="run"):
        if args.resume and (dataset, attack) in done:
            continue
        report, written = run_report_entry(
            data,
            out,
            dataset,
            attack,
            measured,
            limit=args.limit,
            threads=args.threads,
            command=_command_line(),
        )
        _show(report.to_markdown(), written)
    written = write_summary(out, keys=plan, command=_command_line(), grid=args.grid)
    _show(written[0].read_text(), written)


# -- parser -------------------------------------------------------------------------
def _integers(text: str) -> list[int]:
    try:
        return [int(value) for value in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers such as 50,100,200, got {text!r}"
        ) from None


def _position(text: str) -> Position:
    if "," in text:
        try:
            row, col = (int(v) for v in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {', '.join(POSITIONS)} or ROW,COL such as 4,20, got {text!r}"
            ) from None
        return row, col
    return text


def _colour(text: str) -> Colour:
    try:
        levels = [int(v) for v in text.split(",")]
    except ValueError:
        levels = []
    if len(levels) not in (1, 3):
        raise argparse.ArgumentTypeError(
            f"expected a level such as 255 or R,G,B such as 30,200,200, got {text!r}"
        )
    return levels[0] if len(levels) == 1 else (levels[0], levels[1], levels[2])


def _add_backdoor_options(parser: argparse.ArgumentParser) -> None:
    """The options of :class:`Backdoor`."""
    parser.add_argument("data", help=".npz with 'images' and 'labels', e.g. data/gtsrb.npz")
    parser.add_argument(
        "--attack",
        choices=sorted(ATTACK_FLAGS),
        default=Backdoor.attack,
        help=f"backdoor attack (default {Backdoor.attack})",
    )
    parser.add_argument(
        "--position",
        type=_position,
        help="badnet, content-patch: bottom_right (default), other corners, interior (4 pixels in from "
        "bottom_right), centre, random (one per image, from its index), or ROW,COL",
    )
    parser.add_argument("--size", type=int, help="badnet, content-patch: patch side (default 3)")
    parser.add_argument(
        "--value",
        type=_colour,
        help="badnet: patch level 0..255 or colour R,G,B (default 255, white; grey images: one level)",
    )
    parser.add_argument(
        "--pattern",
        choices=PATTERNS,
        help="badnet: solid (default), checkerboard (value and black), random (a fixed random colour "
        "per pixel, from --pattern-seed), random-checkerboard (that with the checkerboard's black)",
    )
    parser.add_argument("--pattern-seed", type=int, help="badnet: seed of the random patterns (default 0)")
    parser.add_argument("--alpha", type=float, help="blended: blend weight (default 0.2; the paper 0.065)")
    parser.add_argument(
        "--delta",
        type=float,
        help="sig: amplitude; content-patch: levels above the median of the 7x7 neighbourhood "
        "(default 40 for both)",
    )
    parser.add_argument("--frequency", type=float, help="sig: frequency (default 6)")
    parser.add_argument("--grid", type=int, help="wanet: control grid k (default 4)")
    parser.add_argument("--strength", type=float, help="wanet: warp strength s (default 0.5)")
    parser.add_argument(
        "--target",
        type=int,
        default=Backdoor.target,
        help=f"target class of the all-to-one backdoor (default {Backdoor.target})",
    )
    parser.add_argument(
        "--train-fraction",
        type=float,
        default=Backdoor.train_fraction,
        help=f"training part of the data set (default {Backdoor.train_fraction})",
    )
    parser.add_argument(
        "--split-seed",
        type=int,
        default=Backdoor.split_seed,
        help="seed of the split, poisoning, seeds and training",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=Backdoor.epochs,
        help=f"training epochs of the small CNN (default {Backdoor.epochs})",
    )
    parser.add_argument(
        "--model-cache", help="file to keep the trained model in (reused when data and settings match)"
    )
    parser.add_argument("--model", help="evaluate this TorchScript model instead of training one")
    parser.add_argument("--limit", type=int, help="use a random subset of this many images (quick runs)")
    parser.add_argument(
        "--poison-rate",
        type=float,
        help="poisoned share of the training part, 0..1 (default: the attack's, 0.1 or 0.075)",
    )


def _add_measure_options(
    parser: argparse.ArgumentParser,
    *,
    detectors: Optional[str],
    images: Optional[int],
    copies: int,
    defenses: Optional[str] = ",".join(Evaluation.defenses),
    defenses_note: str = "all but the dark-trigger ones",
    detectors_note: Optional[str] = None,
    seeds: Optional[int] = Evaluation.purifier_seeds,
    seeds_note: str = f"{Evaluation.purifier_seeds}: off",
) -> None:
    """The defense and detector options that evaluate and report share."""
    parser.add_argument(
        "--defenses",
        default=defenses,
        help=f"comma-separated defenses of {','.join(DEFENSES)} (default: {defenses_note})",
    )
    parser.add_argument(
        "--detectors",
        default=detectors,
        help=f"comma-separated input detectors scored by ROC AUC, of {','.join(DETECTORS)}, "
        f"or '' for none (default {detectors_note or detectors or 'none'})",
    )
    parser.add_argument(
        "--detector-images",
        type=int,
        default=images,
        help=f"detectors score at most this many clean and triggered images (default {images or 'all'})",
    )
    parser.add_argument(
        "--strip-copies",
        type=int,
        default=copies,
        help=f"STRIP's superimposed copies per input (default {copies})",
    )
    parser.add_argument(
        "--purifier-seeds",
        type=int,
        default=seeds,
        help="also report the SifterNet defenses' ASR (mean and worst) over this many purifier "
        f"seeds (default {seeds_note})",
    )
    parser.add_argument(
        "--finetune-epochs",
        type=int,
        default=Evaluation.finetune_epochs,
        help="also fine-tune the model this many epochs on purified clean training images "
        "(the paper's data augmentation; default 0: off)",
    )


def _add_evaluate(commands: Any) -> None:
    parser = commands.add_parser(
        "evaluate",
        help=EVAL_COMMANDS["evaluate"],
        description="Train (or load) a target model on a poisoned split of a data set, purify clean and "
        "triggered "
        "evaluation images with each defense, and write report.md, report.json and figures. The target "
        "model is trained on a part of the data set and evaluated on the rest: every report says so.",
    )
    _add_backdoor_options(parser)
    parser.add_argument(
        "--out", required=True, help="folder for report.md, report.json, examples.png, metrics.png"
    )
    _add_measure_options(
        parser, detectors="", images=Evaluation.detector_images, copies=Evaluation.strip_copies
    )
    parser.add_argument(
        "--per-class",
        type=int,
        default=Evaluation.per_class,
        help=f"seeds per class from the clean training part (default {Evaluation.per_class})",
    )
    parser.add_argument(
        "--finetune-defenses",
        default=",".join(Evaluation.finetune_defenses),
        help=f"comma-separated defenses to fine-tune on (default {','.join(Evaluation.finetune_defenses)}; "
        "sifternet and binarise-only are always included)",
    )
    parser.add_argument(
        "--adaptive-purifier",
        choices=tuple(name for name in DEFENSES if name not in MODEL_QUERYING),
        metavar="NAME",
        help="adaptive attacker: pass the poisoned training images through this defense (built on "
        "the attacker's own seeds) before training, so the backdoor is learned on purified inputs",
    )
    add_purifier_options(parser)
    parser.set_defaults(run=cmd_evaluate)


def _add_sweep(commands: Any) -> None:
    # resolve: --steps and --block-size of the purifier options become comma-separated grids
    parser = commands.add_parser(
        "sweep",
        conflict_handler="resolve",
        help=EVAL_COMMANDS["sweep"],
        description="Train (or load) a target model as evaluate does, then measure Acc / ASR / RA of "
        "SifterNet for "
        "every steps x seeds-per-class (x block size) setting and write sweep.md, sweep.json and "
        "sweep.png with the paper's recommended ranges shaded.",
    )
    _add_backdoor_options(parser)
    parser.add_argument(
        "--out", required=True, help="folder for sweep.md, sweep.json, sweep.png (and sweep-block.png)"
    )
    add_purifier_options(parser)
    parser.add_argument(
        "--steps",
        type=_integers,
        default=[50, 100, 200, 500, 1000],
        help="comma-separated steps (RemoveTime) values (default 50,100,200,500,1000)",
    )
    parser.add_argument(
        "--per-class",
        type=_integers,
        default=[1, 2, 5],
        help="comma-separated seeds per class (default 1,2,5)",
    )
    parser.add_argument(
        "--block-size",
        dest="block_size",
        type=_integers,
        help="comma-separated local-mean block sizes "
        "(default: the one block size of --binarize local_mean, 11)",
    )
    parser.set_defaults(run=cmd_sweep)


def _add_report(commands: Any) -> None:
    files = ", ".join(spec.file for spec in DATASETS.values())
    parser = commands.add_parser(
        "report",
        help=EVAL_COMMANDS["report"],
        description="Run evaluate for every data set x attack of a grid with the paper's settings "
        "(model caches kept in the output folder), then write summary.md and summary.json. "
        "--grid paper: summary.png, Acc / ASR per defense, detector AUC, fine-tuning, timings, and "
        "the paper's Tables 1 and 5 beside them. --grid unknown: the unknown-trigger grid, one Acc / "
        "ASR table with not-learned flags and floor marks, a count line per defense and an ASR heat "
        f"map, {GRID_FIGURE}.",
    )
    parser.add_argument(
        "data_dir", help=f"folder with {files} (each a .npz with 'images' and 'labels'), e.g. data/"
    )
    parser.add_argument("--out", required=True, help="report folder (one sub-folder per run, plus summary.*)")
    parser.add_argument("--datasets", help=f"comma-separated (default {','.join(DATASETS)})")
    parser.add_argument(
        "--grid",
        choices=tuple(GRIDS),
        default="paper",
        help="the plan: paper (default), the paper's attacks; unknown, the unknown-trigger grid",
    )
    parser.add_argument(
        "--attacks",
        help=f"comma-separated attacks of the grid (default: all of it; paper: {','.join(GRIDS['paper'])}; "
        f"unknown: also {','.join(a for a in GRIDS['unknown'] if a not in GRIDS['paper'])})",
    )
    _add_measure_options(
        parser,
        detectors=None,
        images=250,
        copies=50,
        defenses=None,
        defenses_note="paper grid: all but the dark-trigger ones; unknown grid: the SifterNet ones "
        "and the floor, and none always",
        detectors_note=f"paper grid: {GRID_DETECTORS['paper']}; unknown grid: none",
        seeds=None,
        seeds_note=f"paper grid: {GRID_PURIFIER_SEEDS['paper']}, off; unknown grid: "
        f"{GRID_PURIFIER_SEEDS['unknown']}",
    )
    parser.add_argument(
        "--limit", type=int, help="a random subset of this many images per data set (quick runs)"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="kernel threads (default: OMP_NUM_THREADS or all cores)"
    )
    parser.add_argument("--resume", action="store_true", help="keep runs that already have a report.json")
    parser.add_argument("--force", action="store_true", help="redo runs that already have a report.json")
    parser.set_defaults(run=cmd_report)


def add_command(commands: Any, name: str) -> None:
    """Add the evaluation command ``name`` (a key of ``EVAL_COMMANDS``) with all its options
    to ``commands``, the core parser's sub-parsers."""
    {"evaluate": _add_evaluate, "sweep": _add_sweep, "report": _add_report}[name](commands)
