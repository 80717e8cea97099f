"""The ``sifternet`` command: fit, purify, demo."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from tqdm import tqdm

from sifternet import __version__
from sifternet.eval.attacks import badnet
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
    names = PurifierConfig.__dataclass_fields__
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


# -- purify -------------------------------------------------------------------------
def cmd_purify(args: argparse.Namespace) -> None:
    source, target = Path(args.input), Path(args.output)
    if source.resolve() == target.resolve():
        raise CliError("the output must differ from the input (the input is never overwritten)")
    purifier = SifterNet.load(args.model, num_threads=args.threads)
    changes = {k: v for k, v in (("seed", args.seed), ("steps", args.steps)) if v is not None}
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
    if not args.force:
        existing = [p for p in outputs if p.exists()]
        if existing:
            raise CliError(f"{existing[0]} already exists ({len(existing)} outputs do): pass --force")
    with _progress(len(files), "purify") as bar:
        for start in range(0, len(files), args.chunk):
            chunk = files[start : start + args.chunk]
            purified = purifier.purify(read_images(chunk), index_offset=start)
            for path, image in zip(outputs[start : start + args.chunk], purified):
                write_image(path, image)
            bar.update(len(chunk))
    print(f"purified {len(files)} images from {source} -> {target}/ (PNG)")
    return [read_image(f) for f in files[: args.preview_count]]


def _purify_array(purifier: SifterNet, source: Path, target: Path, args: argparse.Namespace):
    if target.suffix not in (".npy", ".npz"):
        raise CliError(f"{target}: the output of an array input must be .npy or .npz")
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
    if args.steps is not None:
        options = {**options, "steps": args.steps}
    with np.load(DATA / f"{args.dataset}_sample.npz", allow_pickle=False) as data:
        images, labels = data["images"], data["labels"]
    chosen = seed_indices(labels, per_class, strategy="first")
    seeds, test = images[chosen], np.delete(images, chosen, axis=0)
    purifier = SifterNet(num_threads=args.threads, **options).fit(seeds)
    triggered = badnet(test)  # 3x3 white patch, bottom-right corner
    start = time.perf_counter()
    purified = purifier.purify(triggered)
    seconds = time.perf_counter() - start
    binarised = purifier.binarize(triggered)
    patch = (slice(None), slice(-3, None), slice(-3, None))
    white_binarised = float((binarised[patch] == 255).mean())
    white_purified = float((purified[patch] == 255).mean())
    clean_binarised, clean_purified = purifier.binarize(test), purifier.purify(test)
    changed = float((clean_binarised != clean_purified).mean())
    count = min(8, len(test))
    write_image(out, preview_grid([test[:count], triggered[:count], binarised[:count], purified[:count]]))
    print(
        f"sifternet {__version__} demo on {len(test)} {args.dataset.upper()} test images "
        f"(sample shipped in the package), {len(seeds)} clean seeds\n"
        f"  {purifier!r}\n"
        f"  BadNet trigger (3x3 white, bottom-right) pixels still white:\n"
        f"    after binarising only: {100 * white_binarised:5.1f} %\n"
        f"    after purification:    {100 * white_purified:5.1f} %  "
        f"(cleared {100 * (1 - white_purified):.1f} %)\n"
        f"  clean images: {100 * changed:.1f} % of binarised pixels changed by the recall\n"
        f"  throughput: {len(test) / seconds:,.0f} images/s ({purifier.n_channels} channel(s), "
        f"{seconds * 1e3:.1f} ms)\n"
        f"  preview (clean | triggered | binarised | purified) -> {out}"
    )


# -- parser -------------------------------------------------------------------------
def _add_recall_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=None, help="kernel threads (default: OMP_NUM_THREADS or all cores; -1: all)")
    parser.add_argument("--steps", type=_steps, default=None, help="update attempts per image and channel (the paper's RemoveTime); 'none' = until converged")
    parser.add_argument("--force", action="store_true", help="replace existing outputs")


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
    defaults = PurifierConfig()
    fit.add_argument("--binarize", choices=METHODS, help=f"binarisation (default {defaults.binarize})")
    fit.add_argument("--block-size", dest="block_size", type=int, help=f"local-mean window, the paper's k-size (default {defaults.block_size})")
    fit.add_argument("--offset", type=float, help="local-mean offset c (default 0)")
    fit.add_argument("--threshold", type=float, help="global threshold t on [-1, 1] (default 0)")
    fit.add_argument("--border", choices=BORDERS, help="local-mean padding (default zero, the paper's)")
    fit.add_argument("--rule", choices=RULES, help="learning rule (default hebbian)")
    fit.add_argument("--order", choices=ORDERS, help="update order (default random)")
    fit.add_argument("--seed", type=int, help="seed of the recall's random streams (default 0)")
    _add_recall_options(fit)
    fit.set_defaults(run=cmd_fit)

    purify = commands.add_parser("purify", help="purify a folder of images or an .npy/.npz array", description="Purify images with a model file, in chunks, never overwriting the input.")
    purify.add_argument("model", help="model file from 'sifternet fit'")
    purify.add_argument("input", help="folder of images, or .npy / .npz ('images' array)")
    purify.add_argument("output", help="output folder (PNG files, same relative paths) or .npy / .npz")
    purify.add_argument("--chunk", type=int, default=4096, help="images per chunk (bounds memory; results do not depend on it)")
    purify.add_argument("--seed", type=int, default=None, help="override the model's recall seed")
    purify.add_argument("--preview", help="write a PNG grid original | binarised | purified of the first images")
    purify.add_argument("--preview-count", type=int, default=8, help="images in the preview (default 8)")
    _add_recall_options(purify)
    purify.set_defaults(run=cmd_purify)

    demo = commands.add_parser("demo", help="purify BadNet-triggered images of a sample shipped in the package", description="Fit seeds of a shipped sample, stamp a BadNet trigger on its test images, purify them and write a preview grid.")
    demo.add_argument("--dataset", choices=sorted(DEMOS), default="mnist", help="shipped sample (default mnist)")
    demo.add_argument("--out", default="sifternet-demo.png", help="preview grid to write (default sifternet-demo.png)")
    _add_recall_options(demo)
    demo.set_defaults(run=cmd_demo)
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
