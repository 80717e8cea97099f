"""The ``sifternet`` command: fit, purify, demo."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple, Optional, Sequence

import numpy as np
from tqdm import tqdm

from sifternet import __version__
from sifternet.eval.attacks import badnet
from sifternet.eval.defenses import DEFAULT_DEFENSES, DEFENSES, MODEL_QUERYING
from sifternet.eval.summary import ATTACKS, DATASETS, run_name, write_summary
from sifternet.io import (
    atomic_path,
    list_images,
    load_array,
    preview_grid,
    read_image,
    read_images,
    write_image,
)
from sifternet.modelfile import ModelFileError
from sifternet.purifier import ORDERS, PurifierConfig, SifterNet
from sifternet.repair import OUTPUTS
from sifternet.binarize import BORDERS, METHODS
from sifternet.hopfield import RULES
from sifternet.seeds import STRATEGIES, seed_indices, select_seeds


DATA = Path(__file__).parent / "data"
DEMOS = {
    # data set: (seeds per class, purifier options: the paper's ranges, FINDINGS.md's settings)
    "mnist": (1, {"binarize": "global", "steps": 800}),
    "gtsrb": (2, {"binarize": "local_mean", "block_size": 11, "steps": 500}),
}


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 1."""


def _steps(text: str) -> Optional[int]:
    return None if text.lower() == "none" else int(text)


def _refuse_existing(path: Path, force: bool) -> None:
    if path.exists() and not force:
        raise CliError(f"{path} already exists: pass --force to replace it")


# -- fit ----------------------------------------------------------------------------
def _seed_source(source: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) from an .npz with both, or a folder with a sub-folder per class."""
    if source.suffix == ".npz":
        return load_array(source, "images"), load_array(source, "labels")
    if not source.is_dir():
        raise CliError(f"{source}: expected an .npz file or a folder of class sub-folders")
    classes = sorted(p for p in source.iterdir() if p.is_dir())
    if not classes:
        raise CliError(f"{source}: no class sub-folders (expected {source}/<class>/<image>)")
    images, labels = [], []
    for label, folder in enumerate(classes):
        files = list_images(folder)
        images.append(read_images(files))
        labels.extend([label] * len(files))
    shapes = {batch.shape[1:] for batch in images}
    if len(shapes) > 1:
        raise CliError(f"{source}: classes have images of different shapes {sorted(shapes)}")
    return np.concatenate(images), np.asarray(labels)


def cmd_fit(args: argparse.Namespace) -> None:
    out = Path(args.out)
    _refuse_existing(out, args.force)
    images, labels = _seed_source(Path(args.source))
    seeds, seed_labels = select_seeds(
        images, labels, args.per_class, strategy=args.selection, seed=args.selection_seed
    )
    purifier = SifterNet(num_threads=args.threads, **_purifier_options(args)).fit(seeds, seed_labels)
    purifier.save(out, overwrite=args.force)
    print(f"fitted {purifier!r}\n  on {len(seeds)} seeds from {args.source} -> {out}")


def _purifier_options(args: argparse.Namespace) -> dict:
    """The purifier options given on the command line (``--steps none`` included: None)."""
    given = vars(args)
    return {name: given[name] for name in PurifierConfig.__dataclass_fields__
            if name in given and (given[name] is not None or name == "steps")}


# -- purify -------------------------------------------------------------------------
def cmd_purify(args: argparse.Namespace) -> None:
    source, target = Path(args.input), Path(args.output)
    if source.resolve() == target.resolve():
        raise CliError("the output must differ from the input (the input is never overwritten)")
    purifier = SifterNet.load(args.model, num_threads=args.threads)
    changes = {k: v for k, v in _purifier_options(args).items() if k in ("seed", "steps")}
    if changes:
        purifier = purifier.with_options(**changes)
    if source.is_dir():
        originals = _purify_folder(purifier, source, target, args)
    else:
        originals = _purify_array(purifier, source, target, args)
    if args.preview:
        preview = Path(args.preview)
        _refuse_existing(preview, args.force)
        count = min(args.preview_count, len(originals))
        sample = np.asarray(originals[:count])
        write_image(preview, preview_grid([sample, purifier.binarize(sample), purifier.purify(sample)]))
        print(f"preview (original | binarised | purified) -> {preview}")


def _progress(total: int, what: str) -> tqdm:
    return tqdm(total=total, unit="img", desc=what, disable=None, file=sys.stderr)


def _purify_folder(purifier: SifterNet, source: Path, target: Path, args: argparse.Namespace):
    files = list_images(source)
    outputs = [(target / f.relative_to(source)).with_suffix(".png") for f in files]
    # Outputs are written atomically, so an existing one is complete: --resume skips it.
    pending = [k for k, p in enumerate(outputs) if args.force or not (args.resume and p.exists())]
    if not args.force and not args.resume:
        existing = [p for p in outputs if p.exists()]
        if existing:
            raise CliError(
                f"{existing[0]} already exists ({len(existing)} outputs do): pass --resume to "
                "skip finished outputs or --force to replace them"
            )
    with _progress(len(pending), "purify") as bar:
        for start in range(0, len(pending), args.chunk):
            chunk = pending[start : start + args.chunk]  # global indices key the streams
            purified = purifier.purify(read_images([files[k] for k in chunk]), indices=np.asarray(chunk))
            for k, image in zip(chunk, purified):
                write_image(outputs[k], image)
            bar.update(len(chunk))
    skipped = len(files) - len(pending)
    print(f"purified {len(pending)} images from {source} -> {target}/ (PNG)"
          + (f"; {skipped} finished outputs kept (--resume)" if skipped else ""))
    return [read_image(f) for f in files[: args.preview_count]]


def _purify_array(purifier: SifterNet, source: Path, target: Path, args: argparse.Namespace):
    if target.suffix not in (".npy", ".npz"):
        raise CliError(f"{target}: the output of an array input must be .npy or .npz")
    if args.resume:
        raise CliError("--resume applies to folder outputs (an array output is written whole, atomically)")
    _refuse_existing(target, args.force)
    images = load_array(source, "images")
    with atomic_path(target) as tmp:
        if target.suffix == ".npy":
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=images.shape)
            _purify_chunks(purifier, images, out, args.chunk)
            out.flush()
        else:  # purify into a scratch memory map, then compress it with the input's extras
            extras = {}
            if source.suffix == ".npz":
                with np.load(source, allow_pickle=False) as archive:
                    extras = {k: archive[k] for k in archive.files if k != "images"}
            with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
                out = np.lib.format.open_memmap(
                    Path(scratch) / "images.npy", mode="w+", dtype=np.uint8, shape=images.shape
                )
                _purify_chunks(purifier, images, out, args.chunk)
                with open(tmp, "wb") as handle:
                    np.savez_compressed(handle, images=out, **extras)
        del out
    print(f"purified {len(images)} images from {source} -> {target}")
    return images[: args.preview_count]


def _purify_chunks(purifier: SifterNet, images: np.ndarray, out: np.ndarray, chunk: int) -> None:
    """out[i] = purified images[i], ``chunk`` images at a time, each with its global index."""
    with _progress(len(images), "purify") as bar:
        for start in range(0, len(images), chunk):
            batch = np.asarray(images[start : start + chunk])
            out[start : start + len(batch)] = purifier.purify(batch, index_offset=start)
            bar.update(len(batch))


# -- demo ---------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> None:
    out = Path(args.out)
    _refuse_existing(out, args.force)
    per_class, options = DEMOS[args.dataset]
    options = {**options, **_purifier_options(args)}
    with np.load(DATA / f"{args.dataset}_sample.npz", allow_pickle=False) as data:
        images, labels = data["images"], data["labels"]
    chosen = seed_indices(labels, per_class, strategy="first")
    seeds, test = images[chosen], np.delete(images, chosen, axis=0)
    purifier = SifterNet(num_threads=args.threads, **options).fit(seeds)
    repairing = SifterNet.repairing(num_threads=args.threads).fit(seeds)
    triggered = badnet(test)  # 3x3 white patch, bottom-right corner
    start = time.perf_counter()
    purified = purifier.purify(triggered)
    seconds = time.perf_counter() - start
    repaired = repairing.purify(triggered)
    binarised = purifier.binarize(triggered)
    patch = (slice(None), slice(-3, None), slice(-3, None))

    def white(images: np.ndarray) -> float:
        return 100 * float((images[patch] == 255).mean())

    changed = 100 * float((purifier.binarize(test) != purifier.purify(test)).mean())
    kept = 100 * float((repairing.purify(test) == test).mean())
    count = min(8, len(test))
    write_image(out, preview_grid([test[:count], triggered[:count], binarised[:count], purified[:count], repaired[:count]]))
    print(
        f"sifternet {__version__} demo on {len(test)} {args.dataset.upper()} test images "
        f"(sample shipped in the package), {len(seeds)} clean seeds\n"
        f"  paper mode: {purifier!r}\n"
        f"  BadNet trigger (3x3 white, bottom-right) pixels still white:\n"
        f"    after binarising only:  {white(binarised):5.1f} %\n"
        f"    paper mode:             {white(purified):5.1f} %   ({changed:.1f} % of clean binarised pixels changed too)\n"
        f"    repair mode:            {white(repaired):5.1f} %   ({kept:.1f} % of clean pixels kept exactly;"
        f" SifterNet.repairing())\n"
        f"  throughput (paper mode): {len(test) / seconds:,.0f} images/s ({purifier.n_channels} channel(s), "
        f"{seconds * 1e3:.1f} ms)\n"
        f"  preview (clean | triggered | binarised | paper mode | repair mode) -> {out}"
    )


# -- evaluate -------------------------------------------------------------------------
ATTACK_FLAGS = {"badnet": ("position", "size", "value"), "blended": ("alpha",), "sig": ("delta", "frequency"),
                "wanet": ("grid", "strength")}


def _position(text: str):
    if "," in text:
        row, col = text.split(",")
        return int(row), int(col)
    return text


class _Backdoored(NamedTuple):
    """A data set, its split, the attack and the target model trained on it (or loaded)."""

    images: np.ndarray
    labels: np.ndarray
    attack: Any
    split: Any
    model: Any
    settings: dict


def _backdoored(args: argparse.Namespace) -> _Backdoored:
    """Load the data (``--limit``), split it, make the attack and train the small CNN on the
    poisoned training part (or load ``--model``): what evaluate and sweep share."""
    from sifternet.eval import evaluate as ev
    from sifternet.eval.attacks import make_attack
    from sifternet.eval.models import load_torchscript, train_small_cnn

    images, labels = load_array(args.data, "images"), load_array(args.data, "labels").astype(np.int64)
    if args.limit:
        keep = np.sort(np.random.default_rng(args.split_seed).permutation(len(images))[: args.limit])
        images, labels = images[keep], labels[keep]
    params = {k: getattr(args, k) for k in ATTACK_FLAGS[args.attack] if getattr(args, k) is not None}
    attack = make_attack(args.attack, **params)
    split = ev.split_data(len(images), args.train_fraction, args.split_seed)
    n_classes = int(labels.max()) + 1
    if args.model:
        model = load_torchscript(args.model)
        n_poisoned = 0
    else:
        train_x, train_y, poisoned = ev.poison(images[split.train], labels[split.train], attack, args.target, args.split_seed)
        n_poisoned = len(poisoned)
        model = train_small_cnn(train_x, train_y, n_classes=n_classes, epochs=args.epochs, seed=args.split_seed,
                                num_threads=args.threads, cache=args.model_cache)
    settings = dict(data=str(args.data), attack=args.attack, attack_params=params, n_train=len(split.train),
                    n_poisoned=n_poisoned, train_fraction=args.train_fraction,
                    split_seed=args.split_seed, epochs=args.epochs, model=args.model or "small CNN (trained here)",
                    limit=args.limit, command="sifternet " + " ".join(sys.argv[1:]))
    return _Backdoored(images, labels, attack, split, model, settings)


def cmd_evaluate(args: argparse.Namespace) -> None:
    from sifternet.eval import evaluate as ev
    from sifternet.eval.detectors import DETECTORS, make_detectors

    out = Path(args.out)
    for name in ev.REPORT_FILES:  # before the training, not after it
        _refuse_existing(out / name, args.force)
    defense_names = _names(args.defenses, DEFENSES, "--defenses")
    detector_names = _names(args.detectors, DETECTORS, "--detectors") if args.detectors else []
    tuned_names = []
    if args.finetune_epochs:
        tunable = {name: factory for name, factory in DEFENSES.items() if name not in MODEL_QUERYING}
        # the binarise-only control always stands beside the SifterNet fine-tuning
        tuned_names = [*_names(args.finetune_defenses, tunable, "--finetune-defenses (defenses that purify images)"),
                       "sifternet", "binarise-only"]
    images, labels, attack, split, model, settings = _backdoored(args)
    seeds, seed_labels = ev.seeds_from(images, labels, split, args.per_class, args.split_seed)
    purifier = SifterNet(num_threads=args.threads, **_purifier_options(args)).fit(seeds, seed_labels)
    settings.update(n_seeds=len(seeds), finetune_epochs=args.finetune_epochs)
    built = {d.name: d for d in ev.default_defenses(purifier, list(dict.fromkeys(defense_names + tuned_names)),
                                                     (seeds, seed_labels))}  # each fitted once
    report, outputs, triggered = ev.evaluate(images, labels, attack=attack, model=model, purifier=purifier,
                                  defenses=[built[name] for name in defense_names],
                                  split=split, target=args.target, settings=settings,
                                  detectors=make_detectors(detector_names, model, images[split.train], args.split_seed,
                                                           strip_copies=args.strip_copies),
                                  detector_images=args.detector_images)
    if tuned_names:
        from sifternet.eval.finetune import evaluate_finetuned

        report.finetuned = evaluate_finetuned(
            images, labels, model=model, defenses=[built[name] for name in dict.fromkeys(tuned_names)],
            split=split, triggered=triggered, epochs=args.finetune_epochs, target=args.target,
            seed=args.split_seed, num_threads=args.threads)
    written = ev.write_report(report, outputs, images[split.evaluation], triggered, out, overwrite=args.force)
    print(report.to_markdown())
    print("wrote " + ", ".join(str(p) for p in written))


def cmd_sweep(args: argparse.Namespace) -> None:
    from sifternet.eval.sweep import SWEEP_FILES, sweep, write_sweep

    out = Path(args.out)
    for name in SWEEP_FILES:  # before the training, not after it
        _refuse_existing(out / name, args.force)
    images, labels, attack, split, model, settings = _backdoored(args)
    options = {k: v for k, v in _purifier_options(args).items() if k not in ("steps", "block_size")}
    result = sweep(images, labels, attack=attack, model=model, split=split, steps=args.steps,
                   per_class=args.per_class, block_sizes=args.block_size or (), options=options,
                   target=args.target, seed=args.split_seed, num_threads=args.threads, settings=settings)
    written = write_sweep(result, out, overwrite=args.force)
    print(result.to_markdown())
    print("wrote " + ", ".join(str(p) for p in written))


# -- report -------------------------------------------------------------------------
def _names(text: str, known: dict, option: str) -> list[str]:
    names = [n for n in text.split(",") if n]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise CliError(f"{option}: expected some of {','.join(known)}, got {text!r}")
    return names


def cmd_report(args: argparse.Namespace) -> None:
    out, data = Path(args.out), Path(args.data_dir)
    plan = [(d, a) for d in _names(args.datasets, DATASETS, "--datasets")
            for a in _names(args.attacks, ATTACKS, "--attacks")]
    missing = sorted({DATASETS[d][1] for d, _ in plan if not (data / DATASETS[d][1]).exists()})
    if missing:
        raise FileNotFoundError(f"{data}: missing {', '.join(missing)} (the layout of ../shared/data)")
    done = [key for key in plan if (out / run_name(*key) / "report.json").exists()]
    if done and not (args.resume or args.force):
        raise FileExistsError(f"{out / run_name(*done[0])}: already has a report (pass --resume to keep "
                              "finished runs, or --force to redo them)")
    for dataset, attack in tqdm(plan, desc="report runs", unit="run"):
        name = run_name(dataset, attack)
        if args.resume and (dataset, attack) in done:
            continue
        _, file, options = DATASETS[dataset]
        argv = ["evaluate", str(data / file), "--out", str(out / name), *options, *ATTACKS[attack][1],
                "--model-cache", str(out / f"{name}.pt"), "--defenses", args.defenses, "--detectors", args.detectors,
                "--finetune-epochs", str(args.finetune_epochs), "--strip-copies", str(args.strip_copies), "--force"]
        argv += [f"--{flag}={value}" for flag, value in (("limit", args.limit), ("threads", args.threads), ("detector-images", args.detector_images)) if value is not None]
        run = build_parser().parse_args(argv)
        run.run(run)
    written = write_summary(out, keys=plan, command="sifternet " + " ".join(sys.argv[1:]))
    print(Path(written[0]).read_text())
    print("wrote " + ", ".join(str(p) for p in written))


# -- parser -------------------------------------------------------------------------
def _integers(text: str) -> list[int]:
    try:
        return [int(value) for value in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 50,100,200, got {text!r}") from None


def _add_backdoor_options(parser: argparse.ArgumentParser) -> None:
    """The data, attack and target-model options that evaluate and sweep share."""
    parser.add_argument("data", help=".npz with 'images' and 'labels' (the layout of ../shared/data)")
    parser.add_argument("--attack", choices=sorted(ATTACK_FLAGS), default="badnet", help="backdoor attack (default badnet)")
    parser.add_argument("--position", type=_position, help="badnet: bottom_right (default), other corners, interior, random, or ROW,COL")
    parser.add_argument("--size", type=int, help="badnet: patch side (default 3)")
    parser.add_argument("--value", type=int, help="badnet: patch level 0..255 (default 255, white)")
    parser.add_argument("--alpha", type=float, help="blended: blend weight (default 0.2; the paper 0.065)")
    parser.add_argument("--delta", type=float, help="sig: amplitude (default 40)")
    parser.add_argument("--frequency", type=float, help="sig: frequency (default 6)")
    parser.add_argument("--grid", type=int, help="wanet: control grid k (default 4)")
    parser.add_argument("--strength", type=float, help="wanet: warp strength s (default 0.5)")
    parser.add_argument("--target", type=int, default=0, help="target class of the all-to-one backdoor (default 0)")
    parser.add_argument("--train-fraction", type=float, default=0.7, help="training part of the data set (default 0.7)")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the split, poisoning, seeds and training")
    parser.add_argument("--epochs", type=int, default=6, help="training epochs of the small CNN (default 6)")
    parser.add_argument("--model-cache", help="file to keep the trained model in (reused when data and settings match)")
    parser.add_argument("--model", help="evaluate this TorchScript model instead of training one")
    parser.add_argument("--limit", type=int, help="use a random subset of this many images (quick runs)")


def _add_detector_options(parser: argparse.ArgumentParser, *, images: Optional[int], copies: int) -> None:
    parser.add_argument("--detector-images", type=int, default=images,
                        help=f"detectors score at most this many clean and triggered images (default {images or 'all'})")
    parser.add_argument("--strip-copies", type=int, default=copies, help=f"STRIP's superimposed copies per input (default {copies})")


def _add_recall_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=None, help="kernel threads (default: OMP_NUM_THREADS or all cores; -1: all)")
    parser.add_argument("--steps", type=_steps, default=argparse.SUPPRESS, help="update attempts per image and channel (the paper's RemoveTime); 'none' = until converged")
    parser.add_argument("--force", action="store_true", help="replace existing outputs")


def _add_purifier_options(parser: argparse.ArgumentParser) -> None:
    defaults = PurifierConfig()
    parser.add_argument("--binarize", choices=METHODS, help=f"binarisation (default {defaults.binarize})")
    parser.add_argument("--block-size", dest="block_size", type=int, help=f"local-mean window, the paper's k-size (default {defaults.block_size})")
    parser.add_argument("--offset", type=float, help="local-mean offset c (default 0)")
    parser.add_argument("--threshold", type=float, help="global threshold t on [-1, 1] (default 0)")
    parser.add_argument("--border", choices=BORDERS, help="local-mean padding (default zero, the paper's)")
    parser.add_argument("--rule", choices=RULES, help="learning rule (default hebbian)")
    parser.add_argument("--order", choices=ORDERS, help="update order (default random)")
    parser.add_argument("--seed", type=int, help="seed of the recall's random streams (default 0)")
    parser.add_argument("--output", choices=OUTPUTS, help="binary (the paper's, default), restore or inpaint")
    parser.add_argument("--fill-size", dest="fill_size", type=int, help="inpaint's neighbourhood side (default 3)")
    parser.add_argument("--margin", type=float, help="recall confidence gate, a fraction of the largest field in [0, 1) (default 0)")
    parser.add_argument("--agreement", type=float, help="recall agreement gate, a fraction of the memories' vote mass in [0, 1) (default 0)")
    parser.add_argument("--max-sweeps", dest="max_sweeps", type=int, help="with --steps none: at most this many sweeps (default 100)")
    parser.add_argument("--joint-channels", dest="joint_channels", action="store_const", const=True,
                        help="restore/inpaint: a pixel flipped in any colour channel is replaced in all of them")
    _add_recall_options(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sifternet", description="Black-box backdoor-trigger purification with Hopfield networks (SifterNet).")
    parser.add_argument("--version", action="version", version=f"sifternet {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    fit = commands.add_parser("fit", help="memorise clean seed images into a model file", description="Select seeds per class and fit a SifterNet model file.")
    fit.add_argument("source", help=".npz with 'images' and 'labels', or a folder with one sub-folder of images per class")
    fit.add_argument("--out", required=True, help="model file to write (.npz)")
    fit.add_argument("--per-class", type=int, default=2, help="seeds per class (default 2)")
    fit.add_argument("--selection", choices=STRATEGIES, default="random", help="how seeds are chosen (default random)")
    fit.add_argument("--selection-seed", type=int, default=0, help="seed of the random selection")
    _add_purifier_options(fit)
    fit.set_defaults(run=cmd_fit)

    purify = commands.add_parser("purify", help="purify a folder of images or an .npy/.npz array", description="Purify images with a model file, in chunks, never overwriting the input.")
    purify.add_argument("model", help="model file from 'sifternet fit'")
    purify.add_argument("input", help="folder of images, or .npy / .npz ('images' array)")
    purify.add_argument("output", help="output folder (PNG files, same relative paths) or .npy / .npz")
    purify.add_argument("--chunk", type=int, default=4096, help="images per chunk (bounds memory; results do not depend on it)")
    purify.add_argument("--seed", type=int, default=None, help="override the model's recall seed")
    purify.add_argument("--resume", action="store_true", help="folder output: keep outputs already written (each is written atomically) and purify the rest")
    purify.add_argument("--preview", help="write a PNG grid original | binarised | purified of the first images")
    purify.add_argument("--preview-count", type=int, default=8, help="images in the preview (default 8)")
    _add_recall_options(purify)
    purify.set_defaults(run=cmd_purify)

    demo = commands.add_parser("demo", help="purify BadNet-triggered images of a sample shipped in the package", description="Fit seeds of a shipped sample, stamp a BadNet trigger on its test images, purify them and write a preview grid.")
    demo.add_argument("--dataset", choices=sorted(DEMOS), default="mnist", help="shipped sample (default mnist)")
    demo.add_argument("--out", default="sifternet-demo.png", help="preview grid to write (default sifternet-demo.png)")
    _add_recall_options(demo)
    demo.set_defaults(run=cmd_demo)

    evaluate = commands.add_parser("evaluate", help="measure Acc / ASR / RA of defenses against a backdoor (needs PyTorch)",
                                   description="Train (or load) a target model on a poisoned split of a data set, purify clean and triggered evaluation images with each defense, and write report.md, report.json and figures. The shared data sets are test splits: every report says so.")
    _add_backdoor_options(evaluate)
    evaluate.add_argument("--out", required=True, help="folder for report.md, report.json, examples.png, metrics.png")
    evaluate.add_argument("--defenses", default=",".join(DEFAULT_DEFENSES),
                          help=f"comma-separated defenses of {','.join(DEFENSES)} (default: all but the dark-trigger ones)")
    evaluate.add_argument("--detectors", default="", help="comma-separated input detectors scored by ROC AUC: strip, teco (default: none)")
    _add_detector_options(evaluate, images=None, copies=100)
    evaluate.add_argument("--per-class", type=int, default=2, help="seeds per class from the clean training part (default 2)")
    evaluate.add_argument("--finetune-epochs", type=int, default=0,
                          help="also fine-tune the model this many epochs on each --finetune-defenses' purified clean training images (the paper's data augmentation; default 0: off)")
    evaluate.add_argument("--finetune-defenses", default="none,sifternet,binarise-only",
                          help="comma-separated defenses to fine-tune on (default none,sifternet,binarise-only; sifternet and binarise-only are always included)")
    _add_purifier_options(evaluate)
    evaluate.set_defaults(run=cmd_evaluate)

    # resolve: --steps and --block-size of the purifier options become comma-separated grids
    sweep = commands.add_parser("sweep", conflict_handler="resolve", help="Acc / ASR over steps x seeds per class (x block size), the paper's Fig. 4 (needs PyTorch)",
                                description="Train (or load) a target model as evaluate does, then measure Acc / ASR / RA of SifterNet for every steps x seeds-per-class (x block size) setting and write sweep.md, sweep.json and sweep.png with the paper's recommended ranges shaded.")
    _add_backdoor_options(sweep)
    sweep.add_argument("--out", required=True, help="folder for sweep.md, sweep.json, sweep.png (and sweep-block.png)")
    _add_purifier_options(sweep)
    sweep.add_argument("--steps", type=_integers, default=[50, 100, 200, 500, 1000], help="comma-separated steps (RemoveTime) values (default 50,100,200,500,1000)")
    sweep.add_argument("--per-class", type=_integers, default=[1, 2, 5], help="comma-separated seeds per class (default 1,2,5)")
    sweep.add_argument("--block-size", dest="block_size", type=_integers, help="comma-separated local-mean block sizes (default: the one block size of --binarize local_mean, 11)")
    sweep.set_defaults(run=cmd_sweep)

    report = commands.add_parser("report", help="the full evaluation report: every data set x attack, all defenses and detectors (needs PyTorch)",
                                 description="Run evaluate for every data set x attack with the paper's settings (model caches kept in the output folder), then write summary.md, summary.json and summary.png: Acc / ASR per defense, detector AUC, fine-tuning, timings, and the paper's Tables 1 and 5 beside them.")
    report.add_argument("data_dir", help="folder with mnist_test.npz, fashion_mnist_test.npz, gtsrb.npz, cifar10.npz (../shared/data)")
    report.add_argument("--out", required=True, help="report folder (one sub-folder per run, plus summary.*)")
    report.add_argument("--datasets", default=",".join(DATASETS), help=f"comma-separated (default {','.join(DATASETS)})")
    report.add_argument("--attacks", default=",".join(ATTACKS), help=f"comma-separated (default {','.join(ATTACKS)})")
    report.add_argument("--defenses", default=",".join(DEFAULT_DEFENSES),
                        help="comma-separated defenses, as for evaluate (default: all but the dark-trigger ones)")
    report.add_argument("--detectors", default="strip,teco", help="comma-separated input detectors (default strip,teco; '' for none)")
    _add_detector_options(report, images=250, copies=50)
    report.add_argument("--finetune-epochs", type=int, default=0, help="also fine-tune on purified clean images this many epochs (default 0: off)")
    report.add_argument("--limit", type=int, help="a random subset of this many images per data set (quick runs)")
    report.add_argument("--threads", type=int, default=None, help="kernel threads (default: OMP_NUM_THREADS or all cores)")
    report.add_argument("--resume", action="store_true", help="keep runs that already have a report.json")
    report.add_argument("--force", action="store_true", help="redo runs that already have a report.json")
    report.set_defaults(run=cmd_report)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``sifternet`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    if getattr(args, "chunk", 1) < 1:
        print("sifternet: error: --chunk must be at least 1", file=sys.stderr)
        return 2
    try:
        args.run(args)
    except (CliError, ModelFileError, FileExistsError, FileNotFoundError, ValueError, TypeError, OSError) as error:
        print(f"sifternet: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
