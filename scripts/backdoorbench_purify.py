"""Purify a BackdoorBench attack result with sifternet and report ACC / ASR / RA.

Usage::

    python scripts/backdoorbench_purify.py record/RUN/attack_result.pt --allow-pickle \\
        --model model.pt --clean-train cifar10_train.npz --clean-test cifar10_test.npz

SECURITY: ``attack_result.pt`` is a Python pickle (``torch.save`` of a dict holding NumPy
arrays and PIL images). Loading it runs whatever code the file names, exactly as
BackdoorBench's own loader does. Load only files you made or trust; the script refuses
unless ``--allow-pickle`` is given.

BackdoorBench (https://github.com/SCLBD/BackdoorBench, CC BY-NC 4.0) is neither needed
nor imported, and none of its code is used: this script reads the file layout its
``save_attack_result`` writes, in either of two versions (``bd_test`` only; ``bd_train``
is not needed):

- BackdoorBench 2.x: the state of its backdoor test data set: ``bd_data_container``
  (``data_dict``: original index -> ``(PIL image, backdoor label, original label)`` in
  memory, or -> ``{"path": PNG, "other_info": [backdoor label, original label]}`` on
  disk) and ``original_index_array`` (the test set's order). PNGs that moved with the
  record folder are found below the folder of ``attack_result.pt``.
- BackdoorBench 1.x: ``x`` (PIL images or an array, NCHW or NHWC, 0..255), ``y``
  (backdoor labels), ``original_index`` and ``original_targets``.

The file names its clean data set (``clean_data``, ``data_path``) but does not contain
it: pass the clean test split as an ``.npz`` (``images`` uint8 (N, H, W[, C]) RGB,
``labels``) in the order BackdoorBench loads it, for example torchvision's::

    test = torchvision.datasets.CIFAR10("data/cifar10", train=False)
    np.savez("cifar10_test.npz", images=test.data, labels=np.array(test.targets))

The script checks that the file's original labels agree with ``--clean-test`` at every
original index. Seeds come from ``--clean-train`` (or a model file from ``sifternet
fit``, ``--purifier``). Both test sets are purified with each image keyed by its
original index, so a triggered image and its clean original share one random stream.

The model (BackdoorBench keeps only a state dict of an architecture defined in its own
code) is ``--model``: a TorchScript file (``torch.jit.save``; no pickle), or
``module:function`` / ``path/to/file.py:function`` called as ``function(model_name=...,
num_classes=..., state_dict=...)`` with the result's entries, returning a
``torch.nn.Module``. The model gets float32 (B, C, H, W) in [0, 1]; ``--mean`` and
``--std`` apply BackdoorBench's per-channel normalisation before it (CIFAR-10: mean
0.4914 0.4822 0.4465, std 0.247 0.243 0.261).

Metrics, in BackdoorBench's sense, before and after purification: ACC is the accuracy on
the clean test set; ASR the fraction of the backdoor test set predicted as its backdoor
label and RA the fraction predicted as its original label, both over the triggered
images whose original label differs from their backdoor label (BackdoorBench's
all-to-one backdoor test set holds only those; for all-to-one these are
``sifternet.eval.metrics.attack_success_rate`` and ``robust_accuracy``).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np
import torch

from sifternet import SifterNet, select_seeds
from sifternet.eval.metrics import accuracy
from sifternet.eval.models import Classifier, TorchClassifier, load_torchscript
from sifternet.io import load_array, read_image
from sifternet.modelfile import ModelFileError, write_atomically
from sifternet.purifiers import Purifier, load

PROG = "backdoorbench_purify"
V2_KEYS = ("bd_data_container", "original_index_array")
V1_KEYS = ("x", "y", "original_index", "original_targets")


class ResultFormatError(ValueError):
    """The attack result lacks something this script needs; the message names it."""


@dataclass
class BackdoorTestSet:
    """BackdoorBench's backdoor test set: triggered images with both their labels."""

    images: np.ndarray  # uint8 (B, H, W[, C])
    backdoor_labels: np.ndarray  # (B,) int64, the labels the attack wants
    original_labels: np.ndarray  # (B,) int64, the true labels
    original_index: np.ndarray  # (B,) int64, each image's index in the clean test set


def _require(mapping: Any, key: str, where: str) -> Any:
    if not isinstance(mapping, Mapping):
        raise ResultFormatError(f"{where}: expected a dict, got {type(mapping).__name__}")
    if key not in mapping:
        raise ResultFormatError(
            f"{where}: no {key!r} entry (found: {', '.join(map(str, mapping)) or 'nothing'}); "
            "expected the layout of BackdoorBench's attack_result.pt (see this script's docstring)"
        )
    return mapping[key]


def _pixels(image: Any, where: str) -> np.ndarray:
    """A PIL image (or array) as uint8 (H, W) grey or (H, W, 3) RGB."""
    if hasattr(image, "mode") and image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    pixels = np.asarray(image)
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3):
        raise ResultFormatError(
            f"{where}: expected an 8-bit grey or RGB image, got {pixels.dtype} {pixels.shape}"
        )
    return pixels


def image_batch(images: Any, where: str) -> np.ndarray:
    """uint8 (B, H, W[, 3]) from PIL images or a 0..255 array/tensor in NCHW or NHWC."""
    if isinstance(images, (list, tuple)):
        batch = np.stack([_pixels(im, f"{where}[{i}]") for i, im in enumerate(images)])
    else:
        batch = images.numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
        if batch.ndim == 4 and batch.shape[1] in (1, 3) and batch.shape[3] not in (1, 3):
            batch = batch.transpose(0, 2, 3, 1)
        if batch.size and (batch.min() < 0 or batch.max() > 255):
            raise ResultFormatError(
                f"{where}: expected pixel values in 0..255, got {batch.min()}..{batch.max()}"
            )
        batch = np.rint(batch).astype(np.uint8) if batch.dtype != np.uint8 else batch
    if batch.ndim == 4 and batch.shape[3] == 1:
        batch = batch[..., 0]
    if batch.ndim not in (3, 4) or (batch.ndim == 4 and batch.shape[3] != 3):
        raise ResultFormatError(f"{where}: expected images (B, H, W[, 3]), got shape {batch.shape}")
    return np.ascontiguousarray(batch)


def _labels(values: Any) -> np.ndarray:
    array = values.numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    return array.astype(np.int64).ravel()


def _stored_image(entry: Any, record: Path, where: str) -> tuple[np.ndarray, int, int]:
    """One value of a 2.x ``data_dict``: (image, backdoor label, original label)."""
    if isinstance(entry, Mapping):  # saved on disk as PNG
        stored = Path(str(_require(entry, "path", where)))
        other = _require(entry, "other_info", where)
        moved = record.joinpath(*stored.parts[-3:])  # <record>/bd_test_dataset/<label>/<index>.png
        path = stored if stored.exists() else moved
        if not path.exists():
            raise FileNotFoundError(f"{where}: image {stored} not found (nor {moved})")
        return read_image(path), int(other[0]), int(other[1])
    image, backdoor_label, original_label = entry
    return _pixels(image, where), int(backdoor_label), int(original_label)


def backdoor_test_set(bd_test: Any, record: Path) -> BackdoorTestSet:
    """Read ``bd_test`` of an attack result in the 2.x or 1.x layout (module docstring)."""
    if isinstance(bd_test, Mapping) and "bd_data_container" in bd_test:
        container = _require(bd_test, "bd_data_container", "bd_test")
        stored = _require(container, "data_dict", "bd_test['bd_data_container']")
        order = _labels(_require(bd_test, "original_index_array", "bd_test"))
        rows = []
        for index in order:
            where = f"bd_test['bd_data_container']['data_dict'][{index}]"
            if int(index) not in stored:
                raise ResultFormatError(
                    f"{where}: missing; original_index_array lists it but no image is stored"
                )
            rows.append(_stored_image(stored[int(index)], record, where))
        if not rows:
            raise ResultFormatError("bd_test: the backdoor test set is empty")
        images = np.stack([row[0] for row in rows])
        return BackdoorTestSet(
            image_batch(images, "bd_test images"),
            _labels([r[1] for r in rows]),
            _labels([r[2] for r in rows]),
            order,
        )
    if isinstance(bd_test, Mapping) and "x" in bd_test:
        x, y, index, targets = (_require(bd_test, key, "bd_test") for key in V1_KEYS)
        if any(value is None for value in (x, y, index, targets)):
            raise ResultFormatError(
                f"bd_test: entries {', '.join(V1_KEYS)} must all be present, some are None"
            )
        test_set = BackdoorTestSet(
            image_batch(x, "bd_test['x']"), _labels(y), _labels(targets), _labels(index)
        )
        lengths = {
            len(test_set.images),
            len(test_set.backdoor_labels),
            len(test_set.original_labels),
            len(test_set.original_index),
        }
        if len(lengths) != 1:
            raise ResultFormatError(
                f"bd_test: x, y, original_targets and original_index differ in length {sorted(lengths)}"
            )
        return test_set
    found = ", ".join(map(str, bd_test)) if isinstance(bd_test, Mapping) else type(bd_test).__name__
    raise ResultFormatError(
        f"bd_test: expected BackdoorBench 2.x ({', '.join(V2_KEYS)}) or 1.x ({', '.join(V1_KEYS)}) entries, "
        f"found {found}"
    )


def load_attack_result(path: Path, *, allow_pickle: bool) -> dict:
    """The attack result's dict. It is a pickle: ``allow_pickle`` must be True."""
    if not allow_pickle:
        raise PermissionError(
            f"{path} is a Python pickle: loading it runs code named in the file. "
            "Pass --allow-pickle if you made it or trust its source"
        )
    result = torch.load(str(path), map_location="cpu", weights_only=False)
    if not isinstance(result, Mapping):
        raise ResultFormatError(
            f"{path}: expected a dict (BackdoorBench's attack_result.pt), got {type(result).__name__}"
        )
    return dict(result)


def _factory(spec: str) -> Callable[..., Any]:
    """``module:function`` or ``file.py:function`` -> the function."""
    module_name, _, name = spec.rpartition(":")
    if module_name.endswith(".py"):
        file = Path(module_name)
        if not file.is_file():
            raise FileNotFoundError(f"--model {spec}: no file {file}")
        module_spec = importlib.util.spec_from_file_location(file.stem, file)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(module_name)
    function = getattr(module, name, None)
    if not callable(function):
        raise ValueError(f"--model {spec}: {module_name} has no function {name!r}")
    return function


class Normalised(torch.nn.Module):
    """``net((x - mean) / std)`` per channel: BackdoorBench's input normalisation."""

    def __init__(self, net: torch.nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


def target_model(
    spec: str, result: Mapping, mean: Optional[Sequence[float]], std: Optional[Sequence[float]]
) -> Classifier:
    """The model of ``--model`` (a TorchScript file or a factory), normalised if asked."""
    if Path(spec).is_file() or ":" not in spec:
        try:
            module = load_torchscript(spec).module
        except RuntimeError as error:
            raise ValueError(
                f"--model {spec}: not a TorchScript file from torch.jit.save ({error})"
            ) from None
    else:
        state = {
            key: _require(result, key, "attack result") for key in ("model_name", "num_classes", "model")
        }
        module = _factory(spec)(
            model_name=state["model_name"], num_classes=state["num_classes"], state_dict=state["model"]
        )
        if not isinstance(module, torch.nn.Module):
            raise TypeError(
                f"--model {spec}: expected the function to return a torch.nn.Module, "
                f"got {type(module).__name__}"
            )
    if mean is not None or std is not None:
        if mean is None or std is None or len(mean) != len(std) or 0 in std:
            raise ValueError(
                f"--mean and --std: expected one non-zero std per mean, got mean={mean}, std={std}"
            )
        module = Normalised(module, mean, std)
    return TorchClassifier(module)


def backdoor_metrics(
    model: Classifier,
    clean: np.ndarray,
    clean_labels: np.ndarray,
    triggered: BackdoorTestSet,
    triggered_images: np.ndarray,
) -> dict[str, float]:
    """ACC on the clean images; ASR and RA on the triggered ones whose original label
    differs from their backdoor label (see the module docstring)."""
    predicted = model.predict(triggered_images)
    victims = triggered.backdoor_labels != triggered.original_labels
    return {
        "acc": accuracy(model.predict(clean), clean_labels),
        "asr": accuracy(predicted[victims], triggered.backdoor_labels[victims]),
        "ra": accuracy(predicted[victims], triggered.original_labels[victims]),
    }


def _purifier(args: argparse.Namespace) -> Purifier:
    if args.purifier:
        return load(args.purifier, num_threads=args.threads)
    images, labels = load_array(args.clean_train, "images"), load_array(args.clean_train, "labels")
    seeds, seed_labels = select_seeds(
        image_batch(images, str(args.clean_train)), labels, args.per_class, seed=args.selection_seed
    )
    if args.mode == "paper":
        return SifterNet(num_threads=args.threads).fit(seeds, seed_labels)
    return SifterNet.repairing(num_threads=args.threads).fit(seeds, seed_labels)


def run(args: argparse.Namespace) -> dict:
    """Load, purify, measure; the report as a dict (also printed, and written to --json)."""
    if args.json and Path(args.json).exists() and not args.force:
        raise FileExistsError(f"{args.json} already exists: pass --force to replace it")
    path = Path(args.attack_result)
    result = load_attack_result(path, allow_pickle=args.allow_pickle)
    triggered = backdoor_test_set(_require(result, "bd_test", "attack result"), path.resolve().parent)
    clean = image_batch(load_array(args.clean_test, "images"), str(args.clean_test))
    clean_labels = _labels(load_array(args.clean_test, "labels"))
    if clean.shape[1:] != triggered.images.shape[1:]:
        raise ValueError(
            f"{args.clean_test}: images of shape {clean.shape[1:]}, but the backdoor test set's are "
            f"{triggered.images.shape[1:]}"
        )
    index = triggered.original_index
    if index.min() < 0 or index.max() >= len(clean):
        raise ValueError(
            f"bd_test: original indices {index.min()}..{index.max()} exceed the {len(clean)} "
            "clean test images"
        )
    disagree = int((clean_labels[index] != triggered.original_labels).sum())
    if disagree:
        raise ValueError(
            f"{args.clean_test}: labels disagree with bd_test's original labels at {disagree} of "
            f"{len(index)} original indices; is it the clean test split in BackdoorBench's order?"
        )
    model = target_model(args.model, result, args.mean, args.std)
    purifier = _purifier(args)
    rows = [
        {"defense": "none", **backdoor_metrics(model, clean, clean_labels, triggered, triggered.images)},
        {
            "defense": "sifternet",
            **backdoor_metrics(
                model,
                purifier.purify(clean),
                clean_labels,
                triggered,
                purifier.purify(triggered.images, indices=index),
            ),
        },
    ]
    targets = np.unique(triggered.backdoor_labels).tolist()
    report = {
        "attack_result": str(path),
        "clean_data": result.get("clean_data"),
        "model_name": result.get("model_name"),
        "n_clean": len(clean),
        "n_triggered": len(index),
        "n_victims": int((triggered.backdoor_labels != triggered.original_labels).sum()),
        "backdoor_labels": targets,
        "purifier": repr(purifier),
        "rows": rows,
    }
    print(
        f"{path}: {report['clean_data'] or 'unnamed data set'}, {len(clean)} clean test images, {len(index)} "
        f"triggered ({report['n_victims']} with a true label other than their backdoor label; "
        "backdoor labels "
        f"{report['backdoor_labels']})\n"
        f"purifier: {report['purifier']}\n\n| defense | ACC % | ASR % | RA % |\n| --- | ---: | ---: | ---: |"
    )
    for row in rows:
        print(
            f"| {row['defense']} | {100 * row['acc']:.2f} | {100 * row['asr']:.2f} | {100 * row['ra']:.2f} |"
        )
    if args.json:
        write_atomically(args.json, json.dumps(report, indent=2).encode(), overwrite=args.force)
    return report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Purify a BackdoorBench attack result's clean and backdoor test sets with "
        "sifternet and report ACC / ASR / RA before and after. The result file is a pickle: "
        "see --allow-pickle.",
    )
    parser.add_argument(
        "attack_result", help="BackdoorBench's attack_result.pt (a pickle: runs code when loaded)"
    )
    parser.add_argument(
        "--allow-pickle",
        action="store_true",
        help="required: confirm that you trust the result file (loading a pickle runs code)",
    )
    parser.add_argument(
        "--model",
        required=True,
        help="TorchScript file, or module:function / file.py:function "
        "called with model_name=, num_classes=, state_dict= that returns a torch.nn.Module",
    )
    parser.add_argument(
        "--clean-test",
        required=True,
        type=Path,
        help=".npz with 'images' and 'labels': the clean test split in BackdoorBench's order",
    )
    seeds = parser.add_mutually_exclusive_group(required=True)
    seeds.add_argument(
        "--clean-train", type=Path, help=".npz with 'images' and 'labels' to draw clean seeds from"
    )
    seeds.add_argument(
        "--purifier", type=Path, help="a model file from 'sifternet fit' instead of --clean-train"
    )
    parser.add_argument(
        "--per-class", type=int, default=2, help="seeds per class from --clean-train (default 2)"
    )
    parser.add_argument(
        "--selection-seed", type=int, default=0, help="seed of the random seed selection (default 0)"
    )
    parser.add_argument(
        "--mode",
        choices=("repair", "paper"),
        default="repair",
        help="with --clean-train: SifterNet.repairing() (default) or the paper's defaults",
    )
    parser.add_argument("--mean", type=float, nargs="+", help="per-channel mean to subtract before the model")
    parser.add_argument("--std", type=float, nargs="+", help="per-channel std to divide by before the model")
    parser.add_argument(
        "--threads", type=int, default=None, help="kernel threads (default: OMP_NUM_THREADS or all cores)"
    )
    parser.add_argument("--json", help="also write the report to this JSON file")
    parser.add_argument("--force", action="store_true", help="replace an existing --json file")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the script; the exit status (1 with a one-line message on a user error)."""
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except (
        ResultFormatError,
        ModelFileError,
        PermissionError,
        FileExistsError,
        FileNotFoundError,
        ValueError,
        TypeError,
        ModuleNotFoundError,
    ) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
