"""Train an Input-Aware backdoor (sifternet.eval.inputaware) on a data file and report it.

Usage: python scripts/train_input_aware.py DATA.npz [--limit N] [--epochs E] [--mask-epochs M]
       [--holdout F] [--rho-b B] [--rho-c C] [--seed S] [--threads T] [--cache FILE]
       [--clean-cache FILE] [--no-clean]

DATA.npz holds ``images`` (uint8, (B, H, W) or (B, H, W, C)) and ``labels``. ``--limit``
images drawn from ``--seed`` (or all) are split into a training and a held-out part; the script prints the
backdoored model's clean accuracy, ASR and cross-trigger accuracy on the held-out part,
the accuracy of a clean small CNN trained on the same training part for as many epochs
(unless ``--no-clean``), and the minutes each took.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from sifternet.eval.inputaware import train_input_aware
from sifternet.eval.metrics import accuracy
from sifternet.eval.models import train_small_cnn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", help=".npz file with images and labels")
    parser.add_argument("--limit", type=int, default=None, help="use N images drawn from --seed")
    parser.add_argument("--epochs", type=int, default=10, help="joint epochs (and the clean model's)")
    parser.add_argument("--mask-epochs", type=int, default=2, help="mask pre-training epochs")
    parser.add_argument("--holdout", type=float, default=0.2, help="held-out share for the stats")
    parser.add_argument("--rho-b", type=float, default=0.1, help="triggered share of every batch")
    parser.add_argument("--rho-c", type=float, default=0.1, help="cross-triggered share of every batch")
    parser.add_argument("--target", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="PyTorch threads (default: all cores)")
    parser.add_argument("--cache", default=None, help="cache file for the backdoored networks")
    parser.add_argument("--clean-cache", default=None, help="cache file for the clean model")
    parser.add_argument("--no-clean", action="store_true", help="skip the clean reference model")
    args = parser.parse_args()

    with np.load(args.data, allow_pickle=False) as data:
        images, labels = data["images"], data["labels"].astype(np.int64)
    if args.limit is not None and args.limit < len(images):  # a random subset: files may be sorted by class
        keep = np.sort(np.random.default_rng(args.seed).choice(len(images), args.limit, replace=False))
        images, labels = images[keep], labels[keep]
    n_classes = int(labels.max()) + 1
    start = time.perf_counter()
    backdoor = train_input_aware(
        images,
        labels,
        target=args.target,
        epochs=args.epochs,
        mask_epochs=args.mask_epochs,
        n_classes=n_classes,
        holdout=args.holdout,
        rho_b=args.rho_b,
        rho_c=args.rho_c,
        seed=args.seed,
        num_threads=args.threads,
        cache=args.cache,
    )
    minutes = (time.perf_counter() - start) / 60
    stats = backdoor.stats
    print(f"images {images.shape}, {stats.n_train} training, {stats.n_holdout} held out")
    print(
        f"input-aware: clean acc {stats.clean_accuracy:.4f}, ASR {stats.attack_success_rate:.4f}, "
        f"cross-trigger acc {stats.cross_trigger_accuracy:.4f}, mask density {stats.mask_density:.4f}, "
        f"{minutes:.2f} min{' (cache)' if backdoor.from_cache else ''}"
    )
    if args.no_clean:
        return
    start = time.perf_counter()
    clean = train_small_cnn(
        images[backdoor.train_index],
        labels[backdoor.train_index],
        n_classes=n_classes,
        epochs=args.epochs,
        seed=args.seed,
        num_threads=args.threads,
        cache=args.clean_cache,
    )
    clean_acc = accuracy(clean.predict(images[backdoor.holdout_index]), labels[backdoor.holdout_index])
    minutes = (time.perf_counter() - start) / 60
    print(
        f"clean model: acc {clean_acc:.4f}, {minutes:.2f} min; backdoored / clean accuracy "
        f"{stats.clean_accuracy / clean_acc:.3f}"
    )


if __name__ == "__main__":
    main()
