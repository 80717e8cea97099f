"""Detectors of triggered inputs, for the evaluation's ROC AUC table: STRIP, TeCo,
SentiNet and the SifterNet repair presets' own suspicion scores.

A detector gives every input a score, higher for inputs that look poisoned; ``evaluate``
scores the clean and the triggered evaluation images and reports the ROC AUC
(:func:`sifternet.eval.metrics.roc_auc`). The baselines are re-implemented from their
papers' descriptions, with their parameters exposed:

- STRIP (Gao et al., ACSAC 2019): each input is superimposed on ``copies`` images drawn
  from a held-out clean pool; a trigger keeps forcing its target class through the
  blend, so the model's predictions on the blends have LOW entropy. Score: minus the
  mean Shannon entropy (nats) of the softmax over the copies.
- TeCo (Liu et al., CVPR 2023): under each corruption type, the first severity (1..5)
  at which the model's label differs from its label on the uncorrupted input, or 6 when
  no severity changes it; triggered inputs flip at very different severities across
  corruption types. Score: the (population) standard deviation of those severities.
- SentiNet (Chou et al., IEEE S&P Workshops 2020): the input's salient region (Grad-CAM
  of its predicted class, thresholded) is pasted onto held-out clean images; a trigger
  makes most of them take the input's class (a high "fooled" rate) while the same region
  filled with noise leaves their predictions confident. Score: the fooled rate's height
  above a boundary fitted to clean inputs in the (inert confidence, fooled) plane. The
  only one of the three that needs gradients (STRIP needs probabilities, TeCo labels).
- ``sifternet-repair`` and ``sifternet-repair-dark``: the repair presets fitted on the
  defender's seeds; the score is :meth:`SifterNet.purify_scored`'s (the densest 3 x 3
  square of pixels the recall flipped). ``sifternet-nearest``: the default repair's
  (:class:`~sifternet.nearest.NearestSeedRepair`: the densest 3 x 3 square of marked
  pixels times the densest 3 x 3 square of the repair's change). No model query.

Random choices are keyed by each image's global index and a seed
(``np.random.default_rng([seed, index])`` for STRIP's overlays, see
:mod:`sifternet.eval.corruptions` for TeCo's), so scores do not depend on batching.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence, cast

import numpy as np

from sifternet import NearestSeedRepair, SifterNet
from sifternet.eval.corruptions import CORRUPTIONS, LEFT_OUT, SEVERITIES, corrupt
from sifternet.eval.models import Classifier, GradientClassifier, ProbabilisticClassifier

#: images, global indices of the images -> one score per image, higher for inputs that
#: look poisoned
ScoreFunction = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Detector:
    """A named detector for the evaluation tables (scored by ROC AUC)."""

    name: str
    score: ScoreFunction
    description: str


#: STRIP's ways of superimposing an input x and an overlay o (uint8): ``add`` is
#: min(x + o, 255), the sum that the STRIP authors' implementation uses (OpenCV's
#: addWeighted with weights 1 and 1, saturated); ``average`` is (x + o) / 2, rounded.
BLENDS = ("add", "average")


def superimpose(images: np.ndarray, overlays: np.ndarray, blend: str = "add") -> np.ndarray:
    """uint8 ``images`` superimposed with uint8 ``overlays`` (broadcast), by ``blend``
    (one of :data:`BLENDS`)."""
    total = images.astype(np.int16) + overlays
    if blend == "add":
        return np.minimum(total, 255).astype(np.uint8)
    if blend == "average":
        return ((total + 1) // 2).astype(np.uint8)
    raise ValueError(f"blend: expected one of {BLENDS}, got {blend!r}")


def entropy(probabilities: np.ndarray) -> np.ndarray:
    """Shannon entropy in nats of each row of ``probabilities`` (..., K); 0 log 0 = 0."""
    p = np.clip(np.asarray(probabilities, np.float64), 0.0, 1.0)
    return -np.sum(p * np.log(np.where(p > 0, p, 1.0)), axis=-1)


def _indices(images: np.ndarray, indices: np.ndarray) -> np.ndarray:
    indices = np.asarray(indices)
    if indices.shape != (len(images),) or not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(f"indices: expected {len(images)} integers, got {indices.dtype} {indices.shape}")
    return indices


def _require_probabilities(model: Classifier) -> ProbabilisticClassifier:
    """``model``, refused with a TypeError unless it has ``predict_proba`` (STRIP needs it)."""
    if not callable(getattr(model, "predict_proba", None)):
        raise TypeError(
            f"strip: the model ({type(model).__name__}) has no predict_proba(images) -> (B, K) "
            "probabilities; STRIP needs them (TorchClassifier has them)"
        )
    return cast(ProbabilisticClassifier, model)


def strip(
    model: ProbabilisticClassifier,
    pool: np.ndarray,
    *,
    copies: int = 100,
    blend: str = "add",
    seed: int = 0,
    images_per_call: int = 0,
) -> Detector:
    """STRIP: minus the mean prediction entropy over ``copies`` superimposed copies.

    Parameters
    ----------
    model : needs ``predict_proba(images) -> (B, K)`` probabilities (a
        :class:`~sifternet.eval.models.TorchClassifier` has it; a labels-only model is
        refused: the label histogram of the copies would be a different detector)
    pool : uint8 clean images (P, H, W[, C]) held out from the inputs; image ``g`` is
        blended with ``copies`` of them drawn without replacement (with replacement when
        P < copies) by ``np.random.default_rng([seed, g])``
    copies : N, superimposed copies per input (the paper: 100)
    blend : one of :data:`BLENDS`
    images_per_call : inputs whose copies go to the model at once (default: about 4096
        copies per call)
    """
    _require_probabilities(model)  # untyped callers may pass a labels-only model
    pool = np.asarray(pool)
    if pool.dtype != np.uint8 or pool.ndim not in (3, 4) or len(pool) == 0:
        raise ValueError(
            f"strip: pool: expected uint8 images (P, H, W[, C]), P > 0, got {pool.dtype} {pool.shape}"
        )
    if isinstance(copies, bool) or not isinstance(copies, int) or copies < 1:
        raise ValueError(f"strip: copies: expected a positive int, got {copies!r}")
    if blend not in BLENDS:
        raise ValueError(f"strip: blend: expected one of {BLENDS}, got {blend!r}")
    per_call = images_per_call or max(1, 4096 // copies)

    def score(images: np.ndarray, indices: np.ndarray) -> np.ndarray:
        if images.shape[1:] != pool.shape[1:]:
            raise ValueError(
                f"strip: images of shape {images.shape[1:]} do not match the pool's {pool.shape[1:]}"
            )
        indices = _indices(images, indices)
        out = np.empty(len(images))
        for start in range(0, len(images), per_call):
            part = images[start : start + per_call]
            chosen = np.stack(
                [
                    np.random.default_rng([seed, int(g)]).choice(
                        len(pool), copies, replace=copies > len(pool)
                    )
                    for g in indices[start : start + per_call]
                ]
            )  # (b, copies)
            blended = superimpose(part[:, None], pool[chosen], blend)  # (b, copies, H, W[, C])
            probabilities = model.predict_proba(blended.reshape((-1,) + images.shape[1:]))
            out[start : start + len(part)] = -entropy(probabilities).reshape(len(part), copies).mean(axis=1)
        return out

    return Detector("strip", score, f"STRIP: {copies} clean overlays ({blend}), score = -mean entropy")


def first_change_severities(
    model: Classifier, images: np.ndarray, indices: np.ndarray, *, corruptions: Sequence[str], seed: int = 0
) -> np.ndarray:
    """For each image and corruption, the first severity 1..5 at which ``model``'s label
    differs from its label on the image itself, or 6 when none does: int (B, corruptions).
    Images whose label has changed are not queried at higher severities."""
    indices = _indices(images, indices)
    labels = model.predict(images)
    first = np.full((len(images), len(corruptions)), SEVERITIES + 1)
    for k, name in enumerate(corruptions):
        pending = np.arange(len(images))
        for severity in range(1, SEVERITIES + 1):
            if not len(pending):
                break
            corrupted = corrupt(images[pending], name, severity, indices=indices[pending], seed=seed)
            changed = model.predict(corrupted) != labels[pending]
            first[pending[changed], k] = severity
            pending = pending[~changed]
    return first


def teco(model: Classifier, *, corruptions: Sequence[str] = tuple(CORRUPTIONS), seed: int = 0) -> Detector:
    """TeCo: the standard deviation, across ``corruptions``, of the first label-changing
    severity (:func:`first_change_severities`); labels only, so any model works.

    ``corruptions`` are names of :data:`sifternet.eval.corruptions.CORRUPTIONS` (default:
    all 14 implemented, ImageNet-C's 15 less frost), at least two; ``seed`` keys their
    random streams.
    """
    corruptions = tuple(corruptions)
    unknown = [name for name in corruptions if name not in CORRUPTIONS]
    if unknown:
        left_out = [f"{name}: {LEFT_OUT[name]}" for name in unknown if name in LEFT_OUT]
        raise ValueError(
            f"teco: corruptions: unknown {unknown}{' (' + '; '.join(left_out) + ')' if left_out else ''}; "
            f"expected some of {tuple(CORRUPTIONS)}"
        )
    if len(set(corruptions)) < 2:
        raise ValueError(f"teco: corruptions: expected at least two different ones, got {corruptions}")

    def score(images: np.ndarray, indices: np.ndarray) -> np.ndarray:
        return first_change_severities(model, images, indices, corruptions=corruptions, seed=seed).std(axis=1)

    return Detector(
        "teco",
        score,
        f"TeCo: std over {len(corruptions)} corruptions of the first label-changing "
        f"severity (1..{SEVERITIES}, {SEVERITIES + 1} = none)",
    )


def _require_gradients(model: Classifier) -> GradientClassifier:
    """``model``, refused with a TypeError unless it has ``saliency`` maps and
    ``predict_proba`` (SentiNet needs gradients, not only outputs)."""
    missing = [name for name in ("saliency", "predict_proba") if not callable(getattr(model, name, None))]
    if missing:
        raise TypeError(
            f"sentinet: the model ({type(model).__name__}) has no {' or '.join(missing)}: expected gradient "
            "access, saliency(images, classes) -> (B, H, W) maps, and predict_proba(images) -> (B, K); "
            "SentiNet needs gradients (a TorchClassifier has them; STRIP and TeCo need only outputs)"
        )
    return cast(GradientClassifier, model)


def salient_mask(saliency: np.ndarray, fraction: float) -> np.ndarray:
    """The salient region of one (H, W) map: its ``fraction`` of highest pixels (ties by
    position, row-major), of those with a positive value: bool (H, W)."""
    flat = np.asarray(saliency, np.float64).ravel()
    count = max(1, int(round(fraction * flat.size)))
    top = np.argsort(-flat, kind="stable")[:count]
    mask = np.zeros(flat.size, bool)
    mask[top[flat[top] > 0]] = True
    return mask.reshape(np.shape(saliency))


def sentinet_points(
    model: GradientClassifier, images: np.ndarray, holdout: np.ndarray, inert: np.ndarray, fraction: float
) -> tuple[np.ndarray, np.ndarray]:
    """Each image's point in SentiNet's plane: (average confidence, fooled rate), float (B,) each.

    The image's salient region (:func:`salient_mask` of ``model.saliency`` for its
    predicted class) is pasted onto every ``holdout`` image: the fooled rate is the share
    of them the model then puts in the image's class. The same region taken from the
    ``inert`` pattern (one image, e.g. noise) is pasted onto them too: the average
    confidence is the mean of the model's largest probability on those. One image at a
    time, so the points do not depend on the batch.
    """
    confidence, fooled = np.empty(len(images)), np.empty(len(images))
    for b, image in enumerate(images):
        label = int(model.predict_proba(image[None]).argmax(1)[0])
        mask = salient_mask(model.saliency(image[None], np.array([label]))[0], fraction)
        if image.ndim == 3:
            mask = mask[:, :, None]
        pasted = np.where(mask, image, holdout)
        blanked = np.where(mask, inert, holdout)
        probabilities = model.predict_proba(np.concatenate([pasted, blanked]))
        fooled[b] = np.mean(probabilities[: len(holdout)].argmax(1) == label)
        confidence[b] = np.mean(probabilities[len(holdout) :].max(1))
    return confidence, fooled


@dataclass(frozen=True)
class Boundary:
    """SentiNet's decision boundary: the fooled rate ``polynomial(confidence)`` (highest
    power first), confidences clipped to the fitted range [``low``, ``high``]."""

    polynomial: tuple[float, ...]
    low: float
    high: float

    def height(self, confidence: np.ndarray, fooled: np.ndarray) -> np.ndarray:
        """How far each point lies above the boundary (fooled rate minus the curve)."""
        curve = np.polyval(self.polynomial, np.clip(np.asarray(confidence, np.float64), self.low, self.high))
        return np.asarray(fooled, np.float64) - curve


def fit_boundary(confidence: np.ndarray, fooled: np.ndarray, bins: int = 10) -> Boundary:
    """The upper envelope of clean points: their confidences split into ``bins`` equal
    bins, per non-empty bin (mean confidence, highest fooled rate), and a least-squares
    quadratic through those (a line or a constant when only two or one bins are used)."""
    confidence = np.asarray(confidence, np.float64)
    fooled = np.asarray(fooled, np.float64)
    if confidence.shape != fooled.shape or confidence.ndim != 1 or len(confidence) == 0:
        raise ValueError(
            f"fit_boundary: expected two equal non-empty vectors, got {confidence.shape} and {fooled.shape}"
        )
    low, high = float(confidence.min()), float(confidence.max())
    span = high - low
    which = np.zeros(len(confidence), np.int64)
    if span > 0:
        which = np.minimum((confidence - low) / span * bins, bins - 1).astype(np.int64)
    used = np.unique(which)
    x = np.array([confidence[which == k].mean() for k in used])
    y = np.array([fooled[which == k].max() for k in used])
    polynomial = np.polyfit(x, y, min(2, len(used) - 1))
    return Boundary(tuple(float(c) for c in polynomial), low, high)


def sentinet(
    model: GradientClassifier,
    pool: np.ndarray,
    *,
    holdout: int = 100,
    fit: int = 100,
    fraction: float = 0.15,
    bins: int = 10,
    seed: int = 0,
) -> Detector:
    """SentiNet: how far an input's fooled rate lies above the clean inputs' boundary.

    Parameters
    ----------
    model : needs gradient access, ``saliency`` and ``predict_proba`` (a
        :class:`~sifternet.eval.models.TorchClassifier` has them: Grad-CAM on its last
        ``Conv2d``, input gradients for TorchScript); a labels-only model is refused
    pool : uint8 clean images (P, H, W[, C]), P >= 2, held out from the inputs; a
        permutation drawn from ``np.random.default_rng(seed)`` gives ``holdout`` of them
        to paste regions onto and the next ``fit`` to fit the boundary on (a smaller pool:
        half each)
    holdout, fit : the paper's clean test images and clean fitting inputs
    fraction : share of the pixels in the salient region (at most; only positive saliency)
    bins : confidence bins of the boundary's upper envelope (:func:`fit_boundary`)
    seed : keys the pool's split and the inert pattern, uniform noise drawn after it

    The boundary is fitted on the first call of ``score`` (so the evaluation's timing
    includes it); scores do not depend on the images' indices or batching.
    """
    _require_gradients(model)  # untyped callers may pass a labels-only model
    pool = np.asarray(pool)
    if pool.dtype != np.uint8 or pool.ndim not in (3, 4) or len(pool) < 2:
        raise ValueError(
            f"sentinet: pool: expected uint8 images (P, H, W[, C]), P >= 2, got {pool.dtype} {pool.shape}"
        )
    for name, value in (("holdout", holdout), ("fit", fit), ("bins", bins)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"sentinet: {name}: expected a positive int, got {value!r}")
    if not 0 < fraction <= 1:
        raise ValueError(f"sentinet: fraction: expected a share in (0, 1], got {fraction!r}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pool))
    n_holdout = min(holdout, len(pool) // 2)
    n_fit = min(fit, len(pool) - n_holdout)
    pasted_on, fitted_on = pool[order[:n_holdout]], pool[order[n_holdout : n_holdout + n_fit]]
    inert = rng.integers(0, 256, pool.shape[1:], dtype=np.uint8)
    fitted: list[Boundary] = []

    def score(images: np.ndarray, indices: np.ndarray) -> np.ndarray:
        if images.shape[1:] != pool.shape[1:]:
            raise ValueError(
                f"sentinet: images of shape {images.shape[1:]} do not match the pool's {pool.shape[1:]}"
            )
        _indices(images, indices)
        if not fitted:
            fitted.append(fit_boundary(*sentinet_points(model, fitted_on, pasted_on, inert, fraction), bins))
        return fitted[0].height(*sentinet_points(model, images, pasted_on, inert, fraction))

    method = getattr(model, "saliency_method", "saliency maps")
    return Detector(
        "sentinet",
        score,
        f"SentiNet (needs gradients: {method}): top {fraction:.0%} salient region pasted on "
        f"{n_holdout} clean images, inert pattern = noise; score = fooled rate above a quadratic "
        f"boundary fitted to {n_fit} clean inputs",
    )


@dataclass(frozen=True)
class DetectorInputs:
    """What a detector may be built from."""

    #: the target model
    model: Classifier
    #: clean images held out from the evaluated inputs (STRIP's overlays, SentiNet's hold-out)
    pool: np.ndarray
    #: the defender's clean seed images, or None where none were chosen
    seeds: Optional[np.ndarray]
    #: seeds the detector's random choices
    seed: int
    #: STRIP's overlays per input
    strip_copies: int


DetectorFactory = Callable[[DetectorInputs], Detector]


def purifier_score(
    name: str, purifier: SifterNet | NearestSeedRepair, seeds: Optional[np.ndarray]
) -> Detector:
    """The suspicion score of ``purifier`` (its ``purify_scored``), fitted on the
    defender's ``seeds``; it never queries the model."""
    if seeds is None:
        raise ValueError(f"detectors: {name} needs the defender's seed images, got none")
    purifier.fit(seeds)
    measure = (
        "the densest 3 x 3 squares of marked pixels and of the repair's change, multiplied"
        if isinstance(purifier, NearestSeedRepair)
        else "the densest 3 x 3 square of pixels it repaired"
    )
    return Detector(
        name,
        lambda images, indices: purifier.purify_scored(images, indices=indices).scores,
        f"{name}'s suspicion score: {measure}",
    )


#: The detectors ``sifternet evaluate --detectors`` knows by name.
DETECTORS: dict[str, DetectorFactory] = {
    "strip": lambda given: strip(
        _require_probabilities(given.model), given.pool, seed=given.seed, copies=given.strip_copies
    ),
    "teco": lambda given: teco(given.model, seed=given.seed),
    "sentinet": lambda given: sentinet(_require_gradients(given.model), given.pool, seed=given.seed),
    "sifternet-repair": lambda given: purifier_score(
        "sifternet-repair", SifterNet.repairing("highlights", seed=given.seed), given.seeds
    ),
    "sifternet-repair-dark": lambda given: purifier_score(
        "sifternet-repair-dark", SifterNet.repairing("shadows", seed=given.seed), given.seeds
    ),
    "sifternet-nearest": lambda given: purifier_score(
        "sifternet-nearest", SifterNet.repairing(), given.seeds
    ),
}


def make_detectors(
    names: Sequence[str],
    model: Classifier,
    pool: np.ndarray,
    seed: int,
    *,
    strip_copies: int = 100,
    seeds: Optional[np.ndarray] = None,
) -> list[Detector]:
    """The named detectors of :data:`DETECTORS` for ``model``, with clean ``pool`` images
    (STRIP's overlays, SentiNet's hold-out and fitting images), ``strip_copies`` overlays
    per input for STRIP, and the defender's ``seeds`` (the SifterNet scores')."""
    unknown = [name for name in names if name not in DETECTORS]
    if unknown:
        raise ValueError(f"detectors: unknown {unknown}; expected some of {tuple(DETECTORS)}")
    given = DetectorInputs(model, pool, seeds, seed, strip_copies)
    return [DETECTORS[name](given) for name in names]


__all__ = [
    "BLENDS",
    "DETECTORS",
    "Boundary",
    "Detector",
    "DetectorInputs",
    "ScoreFunction",
    "entropy",
    "first_change_severities",
    "fit_boundary",
    "make_detectors",
    "purifier_score",
    "salient_mask",
    "sentinet",
    "sentinet_points",
    "strip",
    "superimpose",
    "teco",
]
