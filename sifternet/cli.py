"""The ``sifternet`` command: fit, purify, demo; the evaluation commands (evaluate, sweep,
report) are listed here and built by :mod:`sifternet.eval.cli` only when one of them runs."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import stat
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import cv2
import numpy as np
from tqdm import tqdm

from sifternet import __version__
from sifternet._threads import MAX_THREADS
from sifternet.binarize import BORDERS, METHODS
from sifternet.hopfield import RULES
from sifternet.io import (
    MANIFEST_NAME,
    Entry,
    OutputInUseError,
    file_kind,
    list_images,
    load_array,
    lock_path,
    npz_arrays,
    output_lock,
    preview_grid,
    read_images,
    read_manifest,
    remove_temporaries,
    shown,
    writable_suffix,
    write_image,
    write_manifest,
    write_npz,
    write_scores,
)
from sifternet.modelfile import ModelFileError, atomic_path, read_model_file, temporary_path
from sifternet.nearest import NearestSeedRepair
from sifternet.purifier import ORDERS, REPAIR_PRESETS, PurifierConfig, SifterNet
from sifternet.purifiers import Purifier, from_model_bytes
from sifternet.query import QueryRepair, query_distribution
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
    "report": "the full evaluation report: every data set x attack, all defenses and detectors"
    " (needs PyTorch)",
}
#: The most images a preview shows.
MAX_PREVIEW = 256
ARRAY_SUFFIXES = (".npy", ".npz")


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 1."""


def _steps(text: str) -> Optional[int]:
    return None if text.lower() == "none" else int(text)


def refuse_existing(path: Path, force: bool) -> None:
    """Refuse to replace ``path`` unless ``--force`` was given."""
    if path.exists() and not force:
        raise CliError(f"{shown(path)} already exists: pass --force to replace it")


def check_options(args: argparse.Namespace) -> None:
    """The options every command shares, checked before any work."""
    threads = getattr(args, "threads", None)
    if threads is not None and threads != -1 and not 1 <= threads <= MAX_THREADS:
        raise CliError(
            f"--threads: expected -1 (all cores) or a count from 1 to {MAX_THREADS}, got {threads}"
        )
    chunk = getattr(args, "chunk", None)
    if chunk is not None and chunk < 1:
        raise CliError(f"--chunk: expected an int >= 1, got {chunk}")
    selection_seed = getattr(args, "selection_seed", 0)
    if selection_seed < 0:
        raise CliError(f"--selection-seed: expected an int >= 0, got {selection_seed}")
    count = getattr(args, "preview_count", 1)
    if not 1 <= count <= MAX_PREVIEW:
        raise CliError(f"--preview-count: expected an int from 1 to {MAX_PREVIEW}, got {count}")


def _check_image_output(option: str, path: Path, force: bool) -> None:
    """An image to write: a suffix OpenCV encodes, not a folder, not replaced without --force."""
    if not writable_suffix(path):
        raise CliError(
            f"{option}: expected an image file OpenCV can write (.png, .jpg, .bmp, ...), got {shown(path)}"
        )
    if path.is_dir():
        raise CliError(f"{option}: expected an image file, got the folder {shown(path)}")
    if path.exists() and not force:
        raise CliError(f"{option}: {shown(path)} already exists: pass --force to replace it")


# -- fit ----------------------------------------------------------------------------
def _seed_source(source: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) from an .npz with both, or a folder with a sub-folder per class."""
    if source.suffix == ".npz":
        return load_array(source, "images"), load_array(source, "labels")
    if not source.is_dir():
        raise CliError(f"{shown(source)}: expected an .npz file or a folder of class sub-folders")
    classes = sorted(p for p in source.iterdir() if p.is_dir())
    if not classes:
        raise CliError(f"{shown(source)}: no class sub-folders (expected {shown(source)}/<class>/<image>)")
    images: list[np.ndarray] = []
    labels: list[int] = []
    for label, folder in enumerate(classes):  # every class of the first image's shape
        files = list_images(folder)
        images.append(read_images(files, images[0].shape[1:] if images else None))
        labels.extend([label] * len(files))
    return np.concatenate(images), np.asarray(labels)


def cmd_fit(args: argparse.Namespace) -> None:
    out = Path(args.out)
    refuse_existing(out, args.force)
    args.progress = "no model written"
    images, labels = _seed_source(Path(args.source))
    seeds, seed_labels = select_seeds(
        images, labels, args.per_class, strategy=args.selection, seed=args.selection_seed
    )
    options = purifier_options(args)
    if args.repair == "agnostic" and options:
        given = ", ".join("--" + name.replace("_", "-") for name in options)
        raise CliError(f"--repair agnostic: takes none of SifterNet's options, got {given}")
    purifier: Purifier = (
        SifterNet(num_threads=args.threads, **options)
        if args.repair is None
        else SifterNet.repairing(args.repair, num_threads=args.threads, **options)
    ).fit(seeds, seed_labels)
    purifier.save(out, overwrite=args.force)
    print(f"fitted {purifier!r}\n  on {len(seeds)} seeds from {shown(args.source)} -> {shown(out)}")


def purifier_options(args: argparse.Namespace) -> dict[str, Any]:
    """The purifier options given on the command line (``--steps none`` included: None)."""
    given = vars(args)
    return {
        name: given[name]
        for name in PurifierConfig.__dataclass_fields__
        if name in given and (given[name] is not None or name == "steps")
    }


# -- purify -------------------------------------------------------------------------
def _inside(inner: Path, outer: Path) -> bool:
    """Whether ``inner`` is ``outer`` or below it (both resolved)."""
    return inner == outer or outer in inner.parents


def _check_places(source: Path, target: Path, model: Path, extras: dict[str, Optional[Path]]) -> None:
    """The input, output, model and the extra files given by option (``--preview``,
    ``--scores``) must not overlap, links resolved: an output in the input would be read
    back as input, an input in the output could be overwritten."""
    src, dst, mdl = (Path(os.path.realpath(p)) for p in (source, target, model))
    if src == dst or (target.exists() and os.path.samefile(source, target)):
        raise CliError("the output must differ from the input (the input is never overwritten)")
    if _inside(dst, src):
        raise CliError(
            f"{shown(target)}: expected an output outside the input {shown(source)}, got one inside it"
        )
    if _inside(src, dst):
        raise CliError(
            f"{shown(target)}: expected an output apart from the input {shown(source)}, got one holding it"
        )
    if dst == mdl or (target.exists() and model.exists() and os.path.samefile(model, target)):
        raise CliError(f"{shown(target)}: expected an output other than the model file, got the model itself")
    for option, extra in extras.items():
        if extra is None:
            continue
        where = Path(os.path.realpath(extra))
        if _inside(where, src) or _inside(where, dst) or where == mdl:
            raise CliError(
                f"{option}: expected a file apart from the input, the output and the model, "
                f"got {shown(extra)}"
            )


def _check_scores_output(scores: Path, args: argparse.Namespace) -> None:
    """The --scores CSV: a .csv file, not replaced without --force (--resume rewrites it
    whole at the end)."""
    if scores.suffix.lower() != ".csv" or scores.is_dir():
        raise CliError(f"--scores: expected a .csv file, got {shown(scores)}")
    if scores.exists() and not (args.force or args.resume):
        raise CliError(f"--scores: {shown(scores)} already exists: pass --force to replace it")


def _input_is_folder(source: Path) -> bool:
    """Whether the input is a folder (else a regular file); nothing else is read."""
    try:
        mode = os.stat(source).st_mode
    except OSError as error:
        reason = (error.strerror or str(error)).lower()
        raise CliError(f"{shown(source)}: expected an input file or folder, got {reason}") from None
    if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        raise CliError(f"{shown(source)}: expected a regular file or a folder, got {file_kind(mode)}")
    return stat.S_ISDIR(mode)


#: What ``purify`` runs: a model file's purifier, or query mode over one.
AnyPurifier = Union[Purifier, QueryRepair]


def _query_mode(purifier: Purifier, model: Path, args: argparse.Namespace) -> QueryRepair:
    """``purifier`` (the default repair) in query mode over the TorchScript classifier at
    ``args.query_model``; CliError for anything else."""
    path = Path(args.query_model)
    if not isinstance(purifier, NearestSeedRepair):
        raise CliError(
            f"--query-model: {shown(model)} holds a SifterNet in the paper's mode; query mode builds "
            "on the default repair (sifternet fit --repair agnostic)"
        )
    if not path.is_file():
        raise CliError(f"--query-model: {shown(path)}: expected a TorchScript model file (torch.jit.save)")
    try:
        from sifternet.torch import TorchScriptLabels
    except ImportError as error:
        raise CliError(
            f"--query-model: needs PyTorch ({error}): pip install torch 'sifternet[torch]'"
        ) from None
    try:
        labeller = TorchScriptLabels(path)
    except Exception as error:  # torch raises RuntimeError, ValueError or its own types
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CliError(f"--query-model: {shown(path)}: expected a TorchScript model, got: {reason}") from None
    try:
        return QueryRepair(labeller, purifier, patch_size=args.patch_size, budget=args.query_budget)
    except ValueError as error:
        raise CliError(f"--query-model: {error}") from None


def cmd_purify(args: argparse.Namespace) -> None:
    source, target, model = Path(args.input), Path(args.output), Path(args.model)
    if args.chunk is None:  # smaller in query mode, so that the progress bar moves
        args.chunk = 256 if args.query_model is not None else 4096
    preview = Path(args.preview) if args.preview else None
    args.progress = "nothing written"
    if model.exists() and not model.is_file():  # a named pipe would block the read
        raise CliError(f"{shown(model)}: expected a model file, got {file_kind(os.stat(model).st_mode)}")
    folder = _input_is_folder(source)
    if not folder:
        if target.suffix.lower() not in ARRAY_SUFFIXES:
            raise CliError(f"{shown(target)}: expected a .npy or .npz output for an array input")
        if args.resume:
            raise CliError(
                "--resume: applies to folder outputs (an array output is written whole, atomically)"
            )
    if target.exists() and target.is_dir() != folder:
        what = "an output folder" if folder else "an output file"
        raise CliError(f"{shown(target)}: expected {what}, got {'a folder' if target.is_dir() else 'a file'}")
    scores = Path(args.scores) if args.scores is not None else None
    _check_places(source, target, model, {"--preview": preview, "--scores": scores})
    if preview is not None:
        _check_image_output("--preview", preview, args.force)
    if scores is not None:
        _check_scores_output(scores, args)
    if args.reject_above is not None:
        if not 0.0 <= args.reject_above <= 1.0:
            raise CliError(f"--reject-above: expected a score threshold in [0, 1], got {args.reject_above}")
        if not folder and target.suffix.lower() != ".npz":
            raise CliError(
                f"--reject-above: {shown(target)} can hold only the images; use a .npz output (a "
                "'rejected' array beside them) or a folder"
            )
    data = read_model_file(model)
    purifier = from_model_bytes(data, num_threads=args.threads, source=str(model))
    changes = {k: v for k, v in purifier_options(args).items() if k in ("seed", "steps")}
    if changes and isinstance(purifier, NearestSeedRepair):
        given = " and ".join("--" + name for name in changes)
        raise CliError(
            f"{given}: {shown(model)} holds a nearest-seed repair, which has no random stream or steps"
        )
    if changes and isinstance(purifier, SifterNet):
        purifier = purifier.with_options(**changes)
    settings = {"model_sha256": hashlib.sha256(data).hexdigest(), "options": asdict(purifier.config)}
    running: AnyPurifier = purifier
    if args.query_model is not None:
        running = _query_mode(purifier, model, args)
        settings["query"] = {
            "model_sha256": hashlib.sha256(Path(args.query_model).read_bytes()).hexdigest(),
            "patch_size": args.patch_size,
            "budget": args.query_budget,
            "unconfirmed": running.unconfirmed,
        }
    if args.reject_above is not None:
        settings["reject_above"] = args.reject_above
    settings = json.loads(json.dumps(settings))  # as the manifest reads it back (tuples as lists)
    if folder:
        originals = _purify_folder(running, settings, source, target, args)
    else:
        originals = _purify_array(running, source, target, args)
    if isinstance(running, QueryRepair):
        spent = np.repeat(np.arange(len(running.query_histogram)), running.query_histogram)
        shown_queries = ", ".join(f"{k} {v:g}" for k, v in query_distribution(spent).items())
        print(f"model queries per image: {shown_queries}")
    if preview is not None:
        sample = np.asarray(originals)
        if isinstance(purifier, SifterNet):
            middle, name = purifier.binarize(sample), "binarised"
        else:
            done = running.purify_scored(sample)
            middle, name = done.flipped.astype(np.uint8) * np.uint8(255), "repaired"
        write_image(preview, preview_grid([sample, middle, running.purify(sample)]))
        print(f"preview (original | {name} | purified) -> {shown(preview)}")


def _progress(total: int, what: str) -> tqdm:
    return tqdm(total=total, unit="img", desc=what, disable=None, file=sys.stderr)


def _output_names(files: list[Path], source: Path) -> list[str]:
    """Each file's output, relative to the output folder (the same path, as .png); two
    files of one output are refused."""
    names = [f.relative_to(source).with_suffix(".png").as_posix() for f in files]
    first: dict[str, Path] = {}
    for file, name in zip(files, names):
        if name in first:
            raise CliError(
                f"{shown(first[name])} and {shown(file)}: expected one input per output, got both "
                f"writing {shown(name)}; rename one of them"
            )
        first[name] = file
    return names


def _purify_folder(
    purifier: AnyPurifier, settings: dict[str, Any], source: Path, target: Path, args: argparse.Namespace
) -> Union[np.ndarray, list[np.ndarray]]:
    files = list_images(source)
    names = _output_names(files, source)
    created = not target.exists()
    target.mkdir(parents=True, exist_ok=True)
    try:
        with output_lock(target, lock_path(target, folder=True)):
            pending, rejected = _finish_folder(purifier, settings, source, files, names, target, args)
    except BaseException:
        if created and not any(target.iterdir()):  # a run that wrote nothing leaves nothing
            target.rmdir()
        raise
    kept = len(files) - pending - rejected
    print(
        f"purified {pending} images from {shown(source)} -> {shown(target)}/ (PNG)"
        + (f"; {kept} finished outputs kept (--resume)" if kept else "")
        + (f"; {rejected} rejected (score above {args.reject_above}, no output)" if rejected else "")
    )
    return read_images(files[: args.preview_count], purifier.image_shape) if args.preview else []


def _finish_folder(
    purifier: AnyPurifier,
    settings: dict[str, Any],
    source: Path,
    files: list[Path],
    names: list[str],
    target: Path,
    args: argparse.Namespace,
) -> tuple[int, int]:
    """Purify the images the manifest does not list as finished (all with --force); the
    numbers purified and rejected (--reject-above: no output, so a rerun redoes them). The
    manifest is written before the first output and after each chunk; an output it does
    not list is redone, one it lists is kept only if its input (index, size, time) is
    unchanged."""
    manifest = target / MANIFEST_NAME
    entries: list[Entry] = []
    for index, file in enumerate(files):
        info = file.stat()
        entries.append((index, info.st_size, info.st_mtime_ns))
    earlier = None if args.force else read_manifest(manifest)
    if not args.force and not args.resume:
        existing = [target / name for name in names if (target / name).exists()]
        if existing:
            raise CliError(
                f"{shown(existing[0])} already exists ({len(existing)} outputs do): pass --resume to "
                "skip finished outputs or --force to replace them"
            )
        if earlier is not None:
            raise CliError(
                f"{shown(target)}: expected a new output folder, got one holding an unfinished run "
                f"({MANIFEST_NAME}): pass --resume to finish it or --force to redo it"
            )
    if earlier is not None and earlier[0] != settings:
        raise CliError(
            f"{shown(target)}: expected outputs of this model and these options, got a run with others "
            f"({MANIFEST_NAME}): rerun with its model, --seed, --steps and --reject-above, or pass --force "
            "to redo them"
        )
    listed = earlier.finished if earlier is not None else {}
    scores = dict(earlier.scores) if earlier is not None else {}
    finished = {
        name: entry
        for name, entry in zip(names, entries)
        if listed.get(name) == entry
        and (target / name).is_file()
        and (args.scores is None or name in scores)  # an output scored by no earlier run is redone
    }
    remove_temporaries([manifest, *(target / name for name in names)])
    write_manifest(manifest, settings, finished, scores)  # a killed run is known from its first output on
    pending = [k for k, name in enumerate(names) if name not in finished]
    saved, rejected = len(finished), 0

    def written() -> str:
        return f"{len(finished)} of {len(files)} images written; rerun with --resume"

    args.progress = written()
    try:
        with _progress(len(pending), "purify") as bar:
            for start in range(0, len(pending), args.chunk):
                chunk = pending[start : start + args.chunk]  # global indices key the streams
                images = read_images([files[k] for k in chunk], purifier.image_shape)
                done = purifier.purify_scored(images, indices=np.asarray(chunk))
                for k, image, score, flipped in zip(chunk, done.images, done.scores, done.flipped):
                    scores[names[k]] = (float(score), int(flipped.sum()))
                    if args.reject_above is not None and score > args.reject_above:
                        (target / names[k]).unlink(missing_ok=True)  # an earlier run's output goes too
                        rejected += 1
                        continue
                    write_image(target / names[k], image)
                    finished[names[k]] = entries[k]
                    args.progress = written()
                write_manifest(manifest, settings, finished, scores)
                saved = len(finished)
                bar.update(len(chunk))
    finally:
        if not finished:  # nothing to resume: no record either
            manifest.unlink(missing_ok=True)
        elif len(finished) != saved:  # an error or Ctrl-C inside a chunk: keep what it wrote
            try:
                write_manifest(manifest, settings, finished, scores)
            except OSError:
                pass
    if args.scores is not None:
        inputs = [file.relative_to(source).as_posix() for file in files]
        write_scores(args.scores, inputs, [scores[name] for name in names], overwrite=True)
    return len(pending) - rejected, rejected


def _purify_array(
    purifier: AnyPurifier, source: Path, target: Path, args: argparse.Namespace
) -> Union[np.ndarray, list[np.ndarray]]:
    refuse_existing(target, args.force)
    images = load_array(source, "images", image_shape=purifier.image_shape)
    rejected = ""
    copied = npz_arrays(source) if source.suffix.lower() == ".npz" else []
    if args.reject_above is not None and "rejected" in copied:
        raise CliError(
            f"--reject-above: {shown(source)} already holds a 'rejected' array, which the output would "
            "copy through; remove it from the input first"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with output_lock(target, lock_path(target, folder=False)):
        refuse_existing(target, args.force)  # again: another run may have finished it meanwhile
        remove_temporaries([target])
        args.progress = f"nothing written to {shown(target)} (an array output is written whole)"
        with atomic_path(target) as tmp:
            scored = args.scores is not None or args.reject_above is not None
            if target.suffix.lower() == ".npy":
                out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=images.shape)
                scores = _purify_chunks(purifier, images, out, args.chunk, scored)
                out.flush()
            else:  # purify into a scratch memory map, then compress it with the input's extras
                with temporary_path(target) as scratch:
                    out = np.lib.format.open_memmap(scratch, mode="w+", dtype=np.uint8, shape=images.shape)
                    scores = _purify_chunks(purifier, images, out, args.chunk, scored)
                    extras = source if source.suffix.lower() == ".npz" else None
                    arrays = {}
                    if args.reject_above is not None:
                        above = [score > args.reject_above for score, _ in scores]
                        arrays["rejected"] = np.array(above, bool)
                        rejected = f"; {sum(above)} rejected (the 'rejected' array)"
                    write_npz(tmp, out, extras, arrays)
            del out
            if args.scores is not None:  # before the output's rename: both, or neither
                write_scores(args.scores, [str(i) for i in range(len(images))], scores, overwrite=args.force)
    print(f"purified {len(images)} images from {shown(source)} -> {shown(target)}{rejected}")
    return images[: args.preview_count]


def _purify_chunks(
    purifier: AnyPurifier, images: np.ndarray, out: np.ndarray, chunk: int, scored: bool
) -> list[tuple[float, int]]:
    """out[i] = purified images[i], ``chunk`` images at a time, each with its global index;
    with ``scored``, returns each image's suspicion score and number of flipped pixels."""
    scores: list[tuple[float, int]] = []
    with _progress(len(images), "purify") as bar:
        for start in range(0, len(images), chunk):
            batch = np.asarray(images[start : start + chunk])
            if scored:
                done = purifier.purify_scored(batch, index_offset=start)
                out[start : start + len(batch)] = done.images
                scores += zip(done.scores.tolist(), done.flipped.sum(axis=(1, 2)).tolist())
            else:
                out[start : start + len(batch)] = purifier.purify(batch, index_offset=start)
            bar.update(len(batch))
    return scores


# -- demo ---------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> None:
    out = Path(args.out)
    _check_image_output("--out", out, args.force)
    args.progress = "no preview written"
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
        f"    paper mode:             {white(purified):5.1f} %   "
        f"({changed:.1f} % of clean binarised pixels changed too)\n"
        f"    repair mode:            {white(repaired):5.1f} %   ({kept:.1f} % of clean pixels kept exactly;"
        f" SifterNet.repairing())\n"
        f"  throughput (paper mode): {len(test) / seconds:,.0f} images/s ({purifier.n_channels} channel(s), "
        f"{seconds * 1e3:.1f} ms)\n"
        f"  preview (clean | triggered | binarised | paper mode | repair mode) -> {shown(out)}"
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
        "--repair",
        choices=REPAIR_PRESETS,
        metavar="PRESET",
        help="fit a repair preset instead of the paper's mode: agnostic (the default repair: no "
        "trigger colour or position assumed), highlights or shadows",
    )
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
        default=None,
        help="images per chunk (bounds memory; results do not depend on it; default 4096, 256 "
        "with --query-model)",
    )
    purify.add_argument("--seed", type=int, default=None, help="override the model's recall seed")
    purify.add_argument(
        "--resume",
        action="store_true",
        help="folder output: keep the outputs its manifest lists as finished, purify the rest",
    )
    purify.add_argument(
        "--preview", help="write a PNG grid original | binarised | purified of the first images"
    )
    purify.add_argument("--preview-count", type=int, default=8, help="images in the preview (default 8)")
    purify.add_argument(
        "--reject-above",
        dest="reject_above",
        type=float,
        help="abstain from images whose suspicion score is above this (0 to 1): a folder output "
        "gets no file for them, a .npz output a 'rejected' array beside the images",
    )
    purify.add_argument(
        "--scores",
        help="also write a CSV of each image's suspicion score and flipped pixels "
        "(columns input, score, flipped_pixels)",
    )
    purify.add_argument(
        "--query-model",
        dest="query_model",
        metavar="MODEL_PT",
        help="opt-in query mode: a TorchScript classifier (torch.jit.save; the torch extra) whose "
        "hard labels confirm and locate a patch trigger (needs a default-repair model file; not "
        "for image-wide triggers)",
    )
    purify.add_argument(
        "--patch-size",
        dest="patch_size",
        type=int,
        default=5,
        help="query mode: the largest trigger side, in pixels, it searches for (default 5)",
    )
    purify.add_argument(
        "--query-budget",
        dest="query_budget",
        type=int,
        default=40,
        help="query mode: at most this many model queries per image (default 40)",
    )
    add_recall_options(purify)
    purify.set_defaults(run=cmd_purify)

    demo = commands.add_parser(
        "demo",
        help="purify BadNet-triggered images of a sample shipped in the package",
        description="Fit seeds of a shipped sample, stamp a BadNet trigger on its test images, "
        "purify them and write a preview grid.",
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


def _one_line(error: BaseException) -> str:
    """An error's message on one line (its type when it has none)."""
    text = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, cv2.error):  # "OpenCV(x) file:line: error: (-215:...) what in function ..."
        text = "OpenCV: " + text.split(" error: ", 1)[-1]
    return text if len(text) <= 400 else text[:397] + "..."


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``sifternet`` console script; returns the exit status: 0, 1 on an
    error (one line), 130 when interrupted (one line saying what was finished)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(_command(argv)).parse_args(argv)
    try:
        check_options(args)
        args.run(args)
    except KeyboardInterrupt:
        print(f"sifternet: interrupted: {getattr(args, 'progress', 'nothing written')}", file=sys.stderr)
        return 130
    except MemoryError:
        hint = ": try a smaller --chunk" if hasattr(args, "chunk") else ""
        print(f"sifternet: error: out of memory{hint}", file=sys.stderr)
        return 1
    except (
        CliError,
        ModelFileError,
        OutputInUseError,
        OSError,
        ValueError,
        TypeError,
        OverflowError,
        RecursionError,
        cv2.error,
    ) as error:
        print(f"sifternet: error: {_one_line(error)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
