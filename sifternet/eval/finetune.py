"""Data augmentation (the paper's appendix E.0.2): fine-tune the target model on purified
images so that it misreads fewer of them.

The defender has clean data only, so the model is fine-tuned on each defense's output for
the CLEAN training images (true labels), and then measured twice: on that defense's output
for the evaluation images (Acc, ASR, RA, as deployed behind the purifier) and on raw
images (raw Acc, raw ASR: fine-tuning on clean data may or may not remove the backdoor
from the model itself). Fine-tuning on binarise-only images is the control that tells the
recall's share from binarisation's, and on ``none`` (raw clean images) the one that tells
the purification's share from the extra training's.
"""

from __future__ import annotations

import time
from typing import Optional, Sequence

import numpy as np
from tqdm import tqdm

from sifternet.eval.defenses import Defense
from sifternet.eval.evaluate import FineTuneRow, Split
from sifternet.eval.metrics import accuracy, attack_success_rate, robust_accuracy
from sifternet.eval.models import Classifier, fine_tune


def evaluate_finetuned(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    model: Classifier,
    defenses: Sequence[Defense],
    split: Split,
    triggered: np.ndarray,
    epochs: int,
    target: int = 0,
    seed: int = 0,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    num_threads: Optional[int] = None,
    progress: bool = True,
) -> list[FineTuneRow]:
    """One row per defense: ``model`` (a :class:`~sifternet.eval.models.TorchClassifier`,
    left unchanged) fine-tuned ``epochs`` epochs on the defense's purified clean training
    images, then measured on the purified and the raw evaluation images (``seed``,
    ``batch_size``, ``learning_rate``: those of :func:`~sifternet.eval.models.fine_tune`).

    ``triggered`` are the evaluation images with the trigger (as :func:`evaluate` returns
    them). Defenses that query the model themselves (IFMV) have no images to fine-tune on
    and are refused.
    """
    if len(triggered) != len(split.evaluation):
        raise ValueError(
            f"triggered: expected one image per evaluation index ({len(split.evaluation)}), "
            f"got {len(triggered)}"
        )
    querying = [d.name for d in defenses if d.classify is not None]
    if querying:
        raise ValueError(
            f"fine-tuning: {querying} query the model instead of purifying images; "
            "fine-tune on defenses that purify"
        )
    clean, truth = images[split.evaluation], labels[split.evaluation]
    train_images, train_labels = images[split.train], labels[split.train]
    rows = []
    for defense in tqdm(defenses, desc="fine-tuned defenses", unit="defense", disable=not progress or None):
        start = time.perf_counter()
        tuned = fine_tune(
            model,
            defense.purify(train_images, split.train),
            train_labels,
            epochs=epochs,
            seed=seed,
            batch_size=batch_size,
            learning_rate=learning_rate,
            num_threads=num_threads,
            progress=progress,
        )
        seconds = time.perf_counter() - start
        on_triggered = tuned.predict(defense.purify(triggered, split.evaluation))
        raw_on_triggered = tuned.predict(triggered)
        rows.append(
            FineTuneRow(
                defense.name,
                defense.description,
                epochs,
                len(train_images),
                accuracy(tuned.predict(defense.purify(clean, split.evaluation)), truth),
                attack_success_rate(on_triggered, truth, target),
                robust_accuracy(on_triggered, truth, target),
                accuracy(tuned.predict(clean), truth),
                attack_success_rate(raw_on_triggered, truth, target),
                seconds,
            )
        )
    return rows


__all__ = ["evaluate_finetuned"]
