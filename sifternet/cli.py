"""The ``sifternet`` command: fit, purify, demo; the evaluation commands (evaluate, sweep,
report) are listed here and built by :mod:`sifternet.eval.cli` only when one of them runs."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
from tqdm import tqdm

from sifternet import __version__
from sifternet.binarize import BORDERS, METHODS
from sifternet.hopfield import RULES
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
from sifternet.seeds import STRATEGIES, seed_indices, select_seeds
from sifternet.triggers import stamp_patch

DATA = Path(__file__).parent / "data"
DEMOS: dict[str, tuple[int, dict[str, Any]]] = {
    # data set: (seeds per class, purifier options inside the paper's ranges)
    "mnist": (1, {"binarize": "global", "steps": 800}),
    "gtsrb": (2, {"binarize": "local_mean", "block_size": 11, "steps": 500}),
}
#: The evaluation commands (built by sifternet.eval.cli, which needs PyTorch to run them)
#: and their one-line help.
EVAL_COMMANDS = {
    "evaluate": "measure Acc / ASR / RA of defenses against a backdoor (needs PyTorch)",
    "sweep": "Acc / ASR over steps x seeds per class (x block size), the paper's Fig. 4 (needs PyTorch)",
    "report": "the full evaluation report: every data set x attack, all defenses and detectors (needs PyTorch)",
}


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 1."""


def _steps(text: str) -> Optional[int]:
    return None if text.lower() == "none" else int(text)


def refuse_existing(path: Path, force: bool) -> None:
    """Refuse to replace ``path`` unless ``--force`` was given."""
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
    refuse_existing(out, args.force)
    images, labels = _seed_source(Path(args.source))
    seeds, seed_labels = select_seeds(
        images, labels, args.per_class, strategy=args.selection, seed=args.selection_seed
    )
    purifier = SifterNet(num_threads=args.threads, **purifier_options(args)).fit(seeds, seed_labels)
    purifier.save(out, overwrite=args.force)
    print(f"fitted {purifier!r}\n  on {len(seeds)} seeds from {args.source} -> {out}")


def purifier_options(args: argparse.Namespace) -> dict[str, Any]:
    """The purifier options given on the command line (``--steps none`` included: None)."""
    given = vars(args)
    return {
        name: given[name]
        for name in PurifierConfig.__dataclass_fields__
        if name in given and (given[name] is not None or name == "steps")
    }


# -- purify -------------------------------------------------------------------------
def cmd_purify(args: argparse.Namespace) -> None:
    source, target = Path(args.input), Path(args.output)
    if source.resolve() == target.resolve():
        raise CliError("the output must differ from the input (the input is never overwritten)")
    purifier = SifterNet.load(args.model, num_threads=args.threads)
    changes = {k: v for k, v in purifier_options(args).items() if k in ("seed", "steps")}
    if changes:
        purifier = purifier.with_options(**changes)
    if source.is_dir():
        originals = _purify_folder(purifier, source, target, args)
    else:
        originals = _purify_array(purifier, source, target, args)
    if args.preview:
        preview = Path(args.preview)
        refuse_existing(preview, args.force)
        count = min(args.preview_count, len(originals))
        sample = np.asarray(originals[:count])
        write_image(preview, preview_grid([sample, purifier.binarize(sample), purifier.purify(sample)]))
        print(f"preview (original | binarised | purified) -> {preview}")


def _progress(total: int, what: str) -> tqdm:
    return tqdm(total=total, unit="img", desc=what, disable=None, file=sys.stderr)


def _purify_folder(
    purifier: SifterNet, source: Path, target: Path, args: argparse.Namespace
) -> Union[np.ndarray, list[np.ndarray]]:
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
    print(
        f"purified {len(pending)} images from {source} -> {target}/ (PNG)"
        + (f"; {skipped} finished outputs kept (--resume)" if skipped else "")
    )
    return [read_image(f) for f in files[: args.preview_count]]


def _purify_array(
    purifier: SifterNet, source: Path, target: Path, args: argparse.Namespace
) -> Union[np.ndarray, list[np.ndarray]]:
    if target.suffix not in (".npy", ".npz"):
        raise CliError(f"{target}: the output of an array input must be .npy or .npz")
    if args.resume:
        raise CliError("--resume applies to folder outputs (an array output is written whole, atomically)")
    refuse_existing(target, args.force)
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
    refuse_existing(out, args.force)
    per_class, options = DEMOS[args.dataset]
    options = {**options, **purifier_options(args)}
    with np.load(DATA / f"{args.dataset}_sample.npz", allow_pickle=False) as data:
        images, labels = data["images"], data["labels"]
    chosen = seed_indices(labels, per_class, strategy="first")
    seeds, test = images[chosen], np.delete(images, chosen, axis=0)
    purifier = SifterNet(num_threads=args.threads, **options).fit(seeds)
    repairing = SifterNet.repairing(num_threads=args.threads).fit(seeds)
    triggered = stamp_patch(
        test, np.full((3, 3) + test.shape[3:], 255, np.uint8)
    )  # BadNet: bottom-right corner
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
    write_image(
        out,
        preview_grid(
            [test[:count], triggered[:count], binarised[:count], purified[:count], repaired[:count]]
        ),
    )
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


# -- parser -------------------------------------------------------------------------
def add_recall_options(parser: argparse.ArgumentParser) -> None:
    """--threads, --steps and --force."""
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="kernel threads (default: OMP_NUM_THREADS or all cores; -1: all)",
    )
    parser.add_argument(
        "--steps",
        type=_steps,
        default=argparse.SUPPRESS,
        help="update attempts per image and channel (the paper's RemoveTime); 'none' = until converged",
    )
    parser.add_argument("--force", action="store_true", help="replace existing outputs")


def add_purifier_options(parser: argparse.ArgumentParser) -> None:
    """The options of :class:`PurifierConfig` and :func:`add_recall_options`."""
    defaults = PurifierConfig()
    parser.add_argument("--binarize", choices=METHODS, help=f"binarisation (default {defaults.binarize})")
    parser.add_argument(
        "--block-size",
        dest="block_size",
        type=int,
        help=f"local-mean window, the paper's k-size (default {defaults.block_size})",
    )
    parser.add_argument("--offset", type=float, help="local-mean offset c (default 0)")
    parser.add_argument("--threshold", type=float, help="global threshold t on [-1, 1] (default 0)")
    parser.add_argument("--border", choices=BORDERS, help="local-mean padding (default zero, the paper's)")
    parser.add_argument("--rule", choices=RULES, help="learning rule (default hebbian)")
    parser.add_argument("--order", choices=ORDERS, help="update order (default random)")
    parser.add_argument("--seed", type=int, help="seed of the recall's random streams (default 0)")
    parser.add_argument("--output", choices=OUTPUTS, help="binary (the paper's, default), restore or inpaint")
    parser.add_argument(
        "--fill-size", dest="fill_size", type=int, help="inpaint's neighbourhood side (default 3)"
    )
    parser.add_argument(
        "--margin",
        type=float,
        help="recall confidence gate, a fraction of the largest field in [0, 1) (default 0)",
    )
    parser.add_argument(
        "--agreement",
        type=float,
        help="recall agreement gate, a fraction of the memories' vote mass in [0, 1) (default 0)",
    )
    parser.add_argument(
        "--max-sweeps",
        dest="max_sweeps",
        type=int,
        help="with --steps none: at most this many sweeps (default 100)",
    )
    parser.add_argument(
        "--joint-channels",
        dest="joint_channels",
        action="store_const",
        const=True,
        help="restore/inpaint: a pixel flipped in any colour channel is replaced in all of them",
    )
    add_recall_options(parser)


def build_parser(command: Optional[str] = None) -> argparse.ArgumentParser:
    """The ``sifternet`` parser. The evaluation command ``command`` gets its options from
    :mod:`sifternet.eval.cli`; the other evaluation commands are placeholders with their
    help line, so that the core never imports the evaluation package for them."""
    parser = argparse.ArgumentParser(
        prog="sifternet",
        description="Black-box backdoor-trigger purification with Hopfield networks (SifterNet).",
    )
    parser.add_argument("--version", action="version", version=f"sifternet {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    fit = commands.add_parser(
        "fit",
        help="memorise clean seed images into a model file",
        description="Select seeds per class and fit a SifterNet model file.",
    )
    fit.add_argument(
        "source", help=".npz with 'images' and 'labels', or a folder with one sub-folder of images per class"
    )
    fit.add_argument("--out", required=True, help="model file to write (.npz)")
    fit.add_argument("--per-class", type=int, default=2, help="seeds per class (default 2)")
    fit.add_argument(
        "--selection", choices=STRATEGIES, default="random", help="how seeds are chosen (default random)"
    )
    fit.add_argument("--selection-seed", type=int, default=0, help="seed of the random selection")
    add_purifier_options(fit)
    fit.set_defaults(run=cmd_fit)

    purify = commands.add_parser(
        "purify",
        help="purify a folder of images or an .npy/.npz array",
        description="Purify images with a model file, in chunks, never overwriting the input.",
    )
    purify.add_argument("model", help="model file from 'sifternet fit'")
    purify.add_argument("input", help="folder of images, or .npy / .npz ('images' array)")
    purify.add_argument("output", help="output folder (PNG files, same relative paths) or .npy / .npz")
    purify.add_argument(
        "--chunk",
        type=int,
        default=4096,
        help="images per chunk (bounds memory; results do not depend on it)",
    )
    purify.add_argument("--seed", type=int, default=None, help="override the model's recall seed")
    purify.add_argument(
        "--resume",
        action="store_true",
        help="folder output: keep outputs already written (each is written atomically) and purify the rest",
    )
    purify.add_argument(
        "--preview", help="write a PNG grid original | binarised | purified of the first images"
    )
    purify.add_argument("--preview-count", type=int, default=8, help="images in the preview (default 8)")
    add_recall_options(purify)
    purify.set_defaults(run=cmd_purify)

    demo = commands.add_parser(
        "demo",
        help="purify BadNet-triggered images of a sample shipped in the package",
        description="Fit seeds of a shipped sample, stamp a BadNet trigger on its test images, purify them and write a preview grid.",
    )
    demo.add_argument(
        "--dataset", choices=sorted(DEMOS), default="mnist", help="shipped sample (default mnist)"
    )
    demo.add_argument(
        "--out", default="sifternet-demo.png", help="preview grid to write (default sifternet-demo.png)"
    )
    add_recall_options(demo)
    demo.set_defaults(run=cmd_demo)

    for name, line in EVAL_COMMANDS.items():
        if name == command:
            from sifternet.eval.cli import add_command

            add_command(commands, name)
        else:
            commands.add_parser(name, help=line)
    return parser


def _command(argv: Sequence[str]) -> Optional[str]:
    """The command ``argv`` names: its first argument that is not an option (the top-level
    options take no value)."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``sifternet`` console script; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(_command(argv)).parse_args(argv)
    if getattr(args, "chunk", 1) < 1:
        print("sifternet: error: --chunk must be at least 1", file=sys.stderr)
        return 2
    try:
        args.run(args)
    except (
        CliError,
        ModelFileError,
        FileExistsError,
        FileNotFoundError,
        ValueError,
        TypeError,
        OSError,
    ) as error:
        print(f"sifternet: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
