"""Choosing the clean seed images that the networks memorise (the paper's Table 4)."""

from __future__ import annotations

import operator
from typing import Literal, Optional

import numpy as np

Strategy = Literal["random", "first"]
STRATEGIES: tuple[str, ...] = ("random", "first")


def select_seeds(
    images: np.ndarray,
    labels: np.ndarray,
    per_class: int,
    *,
    strategy: Strategy = "random",
    seed: int = 0,
    n_classes: Optional[int] = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The seed images and their labels: ``images[idx], labels[idx]`` for the indices
    :func:`seed_indices` chooses with the same arguments."""
    if len(images) != len(labels):
        raise ValueError(f"images and labels differ in length: {len(images)} images, {len(labels)} labels")
    idx = seed_indices(labels, per_class, strategy=strategy, seed=seed, n_classes=n_classes)
    return images[idx], np.asarray(labels)[idx]


def seed_indices(
    labels: np.ndarray,
    per_class: int,
    *,
    strategy: Strategy = "random",
    seed: int = 0,
    n_classes: Optional[int] = None,
) -> np.ndarray:
    """Indices of ``per_class`` seed images of every class, sorted.

    Parameters
    ----------
    labels : (B,) integer array
        The class of each candidate image.
    per_class : int
        Seeds per class (the paper uses a handful; in the sweeps of docs/evaluation.md 1 to 10 barely differ).
    strategy : {"random", "first"}
        ``random``: a uniform sample per class, drawn from ``seed``; ``first``: the first
        images of each class in data-set order.
    n_classes : int, optional
        Require classes ``0 .. n_classes - 1`` all to be present; by default every class
        that occurs in ``labels`` is covered.

    Raises
    ------
    ValueError
        When a class has fewer than ``per_class`` images, naming the class.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ValueError(
            f"labels: expected a 1-D integer array, got dtype {labels.dtype} shape {labels.shape}"
        )
    per_class = operator.index(per_class)
    if per_class < 1:
        raise ValueError(f"per_class: expected at least 1, got {per_class}")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy: expected one of {STRATEGIES}, got {strategy!r}")
    classes = np.unique(labels) if n_classes is None else np.arange(operator.index(n_classes))
    if classes.size == 0:
        raise ValueError("labels: no images to choose seeds from")
    rng = np.random.default_rng(seed)
    chosen = []
    for cls in classes:
        members = np.flatnonzero(labels == cls)
        if members.size < per_class:
            raise ValueError(f"class {cls} has {members.size} image(s); {per_class} seed(s) per class needed")
        if strategy == "random":
            members = rng.choice(members, per_class, replace=False)
        chosen.append(members[:per_class])
    return np.sort(np.concatenate(chosen))
