"""Defenses as the evaluation runs them: purifiers map images to images.

Besides SifterNet itself, the controls that show what its memory adds (docs/evaluation.md, Defences):
binarise-only (no recall), erase-visited (every neuron the recall's stream visits set to
-1, no memory), seed-consensus mask (pixels background in every binarised seed set to
background, no recall), and a 3x3 median filter. Beside them the floor
(:data:`FLOOR_DEFENSES`): cheap input transforms every purifier must beat, ShrinkPad,
JPEG re-compression, bit-depth reduction and a Gaussian blur.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal, Optional

import cv2
import numpy as np

from sifternet import SifterNet
from sifternet._checks import check_batch, check_finite, check_int
from sifternet.binarize import states_to_pixels
from sifternet.query import QueryRepair, query_distribution

#: images, global indices of the images -> purified images of the same shape
PurifyFunction = Callable[[np.ndarray, np.ndarray], np.ndarray]


#: model, images, global indices -> predicted labels (defenses that query the model)
ClassifyFunction = Callable[[Any, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Defense:
    """A named defense for the evaluation tables: a purifier (images -> images), or, with
    ``classify``, a defense that queries the model itself (such as IFMV)."""

    name: str
    purify: PurifyFunction
    description: str
    classify: Optional[ClassifyFunction] = None
    #: for the report: what the last ``classify`` calls cost (lines of text), then reset
    notes: Optional[Callable[[], list[str]]] = None


def sifternet(purifier: SifterNet, name: Optional[str] = None) -> Defense:
    """The fitted purifier, as configured."""
    return Defense(
        name or "sifternet",
        lambda images, indices: purifier.purify(images, indices=indices),
        f"SifterNet, {purifier.config.binarize} binarisation, {purifier.config.steps} steps "
        f"({purifier.config.order})",
    )


def binarise_only(purifier: SifterNet) -> Defense:
    """The purifier's binarisation without any recall."""
    return Defense(
        "binarise-only", lambda images, indices: purifier.binarize(images), "binarisation alone (no recall)"
    )


def erase_visited(purifier: SifterNet) -> Defense:
    """Every neuron the recall's stream visits set to -1, no memory: the recall with a
    threshold above any field (|W s|_i <= P)."""
    unreachable = np.full(
        purifier.image_shape[:2] + (purifier.n_channels,), purifier.networks[0].n_patterns + 1.0
    )

    def purify(images: np.ndarray, indices: np.ndarray) -> np.ndarray:
        states = purifier.to_states(images)
        recalled = purifier.recall_states(states, indices=indices, thresholds=unreachable)
        return states_to_pixels(recalled).reshape(images.shape)

    return Defense("erase-visited", purify, "pixels the recall's stream visits set to background (no memory)")


def seed_consensus(purifier: SifterNet) -> Defense:
    """Binarised input with every pixel that is background in ALL binarised seeds of its
    channel set to background; no recall."""
    background = np.stack([np.all(net.patterns < 0, axis=0) for net in purifier.networks], axis=-1)
    background = background.reshape(purifier.image_shape[:2] + (purifier.n_channels,))

    def purify(images: np.ndarray, indices: np.ndarray) -> np.ndarray:
        states = purifier.to_states(images)
        states[:, background] = -1
        return states_to_pixels(states).reshape(images.shape)

    return Defense("seed-consensus", purify, "binarised, pixels background in every seed set to background")


def median3x3(purifier: Optional[SifterNet] = None) -> Defense:
    """A 3x3 median filter: the simplest image-processing baseline."""

    def purify(images: np.ndarray, indices: np.ndarray) -> np.ndarray:
        return (
            np.stack([cv2.medianBlur(image, 3).reshape(image.shape) for image in images])
            if len(images)
            else images.copy()
        )

    return Defense("median-3x3", purify, "3x3 median filter")


def _check_batch(name: str, images: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """The indices as an array, once ``images`` is a uint8 batch with one index per image."""
    check_batch(name, images)
    indices = np.asarray(indices)
    if indices.shape != images.shape[:1]:
        raise ValueError(f"{name}: expected {len(images)} indices, one per image, got shape {indices.shape}")
    return indices


def _each_image(
    name: str, images: np.ndarray, indices: np.ndarray, transform: Callable[[np.ndarray, int], np.ndarray]
) -> np.ndarray:
    """``transform(image, global index)`` of every image of a uint8 batch, each reshaped to
    its input's shape (OpenCV drops a trailing channel of 1)."""
    indices = _check_batch(name, images, indices)
    out = np.empty_like(images)
    for b, (image, index) in enumerate(zip(images, indices)):
        out[b] = transform(np.ascontiguousarray(image), int(index)).reshape(image.shape)
    return out


def shrinkpad(pixels: int = 4, seed: int = 0) -> Defense:
    """ShrinkPad (Li et al. 2021): each image resized ``pixels`` smaller in height and width
    (area interpolation), then zero-padded back to its size at a random offset, 0 to
    ``pixels`` from the top and from the left, drawn from default_rng([seed, index])."""
    check_int("shrinkpad pixels", pixels, low=0)
    check_int("shrinkpad seed", seed, low=0, high=2**64 - 1)

    def transform(image: np.ndarray, index: int) -> np.ndarray:
        height, width = image.shape[:2]
        if pixels >= min(height, width):
            raise ValueError(
                f"shrinkpad: expected images larger than {pixels} pixels, got {height} x {width}"
            )
        small = cv2.resize(image, (width - pixels, height - pixels), interpolation=cv2.INTER_AREA)
        top, left = np.random.default_rng([seed, index]).integers(0, pixels + 1, 2)
        out = np.zeros_like(image)
        out[top : top + height - pixels, left : left + width - pixels] = small.reshape(
            (height - pixels, width - pixels) + image.shape[2:]
        )
        return out

    return Defense(
        "shrinkpad",
        lambda images, indices: _each_image("shrinkpad", images, indices, transform),
        f"ShrinkPad: resized {pixels} pixels smaller (area interpolation), zero-padded back at a "
        f"random offset of 0 to {pixels} pixels per image (seed {seed})",
    )


def jpeg(quality: int) -> Defense:
    """JPEG re-compression at ``quality`` (OpenCV); colour images (RGB in memory) are
    encoded as OpenCV's BGR so that the luma and the subsampled chroma are the right ones."""
    check_int("jpeg quality", quality, low=0, high=100)
    name = f"jpeg-{quality}"

    def transform(image: np.ndarray, index: int) -> np.ndarray:
        colour = image.ndim == 3 and image.shape[2] == 3
        if image.ndim == 3 and image.shape[2] not in (1, 3):
            raise ValueError(f"{name}: expected 1 or 3 channels, got {image.shape[2]}")
        plane = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if colour else image.reshape(image.shape[:2])
        ok, encoded = cv2.imencode(".jpg", plane, [cv2.IMWRITE_JPEG_QUALITY, quality])
        decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR if colour else cv2.IMREAD_GRAYSCALE) if ok else None
        if decoded is None:
            raise RuntimeError(f"{name}: expected OpenCV to encode and decode {image.shape}, got a failure")
        return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB) if colour else decoded

    return Defense(
        name,
        lambda images, indices: _each_image(name, images, indices, transform),
        f"JPEG re-compression at quality {quality} (OpenCV, 4:2:0 chroma for colour)",
    )


def bit_depth(bits: int) -> Defense:
    """Bit-depth reduction as ART's FeatureSqueezing: x = pixel / 255,
    round(x (2^bits - 1)) / (2^bits - 1), back to 0..255 with rounding."""
    check_int("bit depth", bits, low=1, high=8)
    levels = 2**bits - 1
    name = f"bits-{bits}"

    def purify(images: np.ndarray, indices: np.ndarray) -> np.ndarray:
        _check_batch(name, images, indices)
        squeezed = np.rint(images / 255.0 * levels) / levels
        return np.rint(squeezed * 255.0).astype(np.uint8)

    return Defense(name, purify, f"bit-depth reduction to {bits} bits ({levels + 1} levels, ART's rounding)")


def gaussian_blur(sigma: float = 1.0) -> Defense:
    """A Gaussian blur of standard deviation ``sigma`` pixels, OpenCV's kernel size for
    uint8 (round(6 sigma + 1), made odd), reflected border (fedcba|abcdef)."""
    sigma = check_finite("blur sigma", sigma)
    if sigma <= 0:
        raise ValueError(f"blur sigma: expected > 0, got {sigma}")
    size = int(round(6 * sigma + 1)) | 1  # what OpenCV picks for uint8 from ksize (0, 0)
    name = f"blur-{sigma:g}"

    def transform(image: np.ndarray, index: int) -> np.ndarray:
        return cv2.GaussianBlur(image, (size, size), sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)

    return Defense(
        name,
        lambda images, indices: _each_image(name, images, indices, transform),
        f"Gaussian blur, sigma {sigma:g} ({size} x {size} kernel), reflected border",
    )


def no_defense(purifier: Optional[SifterNet] = None) -> Defense:
    """The images as they come."""
    return Defense("none", lambda images, indices: images, "no defense")


def ifmv(copies: int = 10, sigma: float = 0.1, seed: int = 0) -> Defense:
    """IFMV, input fuzzing + majority voting (the paper's reference [33], re-implemented
    from its description): ``copies`` fuzzed copies of each image, Gaussian noise of
    standard deviation ``sigma`` (fraction of 255) clipped to 0..255, the model's
    majority label; ties go to the smallest label. The noise of image g comes from
    SeedSequence([seed, g]), so batches and chunks give the same votes."""

    def fuzzed(images: np.ndarray, indices: np.ndarray) -> np.ndarray:
        out = np.empty((copies,) + images.shape, np.uint8)
        for b, (image, index) in enumerate(zip(images, indices)):
            noise = np.random.default_rng([seed, int(index)]).normal(
                0.0, 255.0 * sigma, (copies,) + image.shape
            )
            out[:, b] = np.clip(np.rint(image + noise), 0, 255)
        return out

    def classify(model: Any, images: np.ndarray, indices: np.ndarray) -> np.ndarray:
        votes = np.stack([model.predict(copy) for copy in fuzzed(images, indices)])  # (copies, B)
        n_labels = int(votes.max()) + 1 if votes.size else 1
        counts = np.apply_along_axis(np.bincount, 0, votes, minlength=n_labels)  # (labels, B)
        return counts.argmax(axis=0)  # argmax takes the first (smallest) label of a tie

    return Defense(
        "ifmv",
        lambda images, indices: fuzzed(images, indices)[0],  # one fuzzed copy, for figures
        f"IFMV: {copies} Gaussian-fuzzed copies (sigma {sigma} x 255), majority vote",
        classify,
    )


def _repairing(
    name: str,
    purifier: SifterNet,
    seeds: tuple[np.ndarray, np.ndarray],
    preset: Literal["highlights", "shadows"] = "highlights",
    **options: Any,
) -> Defense:
    """SifterNet in a repair preset (:meth:`SifterNet.repairing`, ``options`` overriding),
    fitted on the same seeds as ``purifier``."""
    repairing = SifterNet.repairing(
        preset, num_threads=purifier.num_threads, seed=purifier.config.seed, **options
    )
    repairing.fit(*seeds)
    c = repairing.config
    return Defense(
        name,
        lambda images, indices: repairing.purify(images, indices=indices),
        f"SifterNet {c.binarize}{f' {c.threshold}' if c.binarize == 'global' else ''}, "
        f"{c.order} x{c.max_sweeps if c.steps is None else c.steps}, agreement "
        f"{c.agreement}, {c.output} output "
        f"(window {c.fill_size}{', joint channels' if c.joint_channels else ''})",
    )


def sifternet_repair(purifier: SifterNet, seeds: tuple[np.ndarray, np.ndarray]) -> Defense:
    """The highlights repair preset (highlights binarised, gated recall, flips inpainted)."""
    return _repairing("sifternet-repair", purifier, seeds)


def sifternet_repair_dark(purifier: SifterNet, seeds: tuple[np.ndarray, np.ndarray]) -> Defense:
    """The repair preset for dark triggers (``SifterNet.repairing("shadows")``)."""
    return _repairing("sifternet-repair-dark", purifier, seeds, "shadows")


def sifternet_repair_both(purifier: SifterNet, seeds: tuple[np.ndarray, np.ndarray]) -> Defense:
    """The repair mode for bright triggers, then for dark ones on its output."""
    bright = sifternet_repair(purifier, seeds)
    dark = sifternet_repair_dark(purifier, seeds)
    return Defense(
        "sifternet-repair-both",
        lambda images, indices: dark.purify(bright.purify(images, indices), indices),
        f"{bright.description}; then {dark.description}",
    )


def sifternet_repair_otsu(purifier: SifterNet, seeds: tuple[np.ndarray, np.ndarray]) -> Defense:
    """The repair mode on an Otsu binarisation with a looser gate (0.5): it sees more of
    the image than the highlights (it lowers SIG on GTSRB) at some clean accuracy."""
    return _repairing("sifternet-repair-otsu", purifier, seeds, binarize="otsu", agreement=0.5)


def sifternet_binary_gate(purifier: SifterNet, seeds: tuple[np.ndarray, np.ndarray]) -> Defense:
    """Otsu, binary output and a strict agreement gate (0.85): for dark-background stroke
    images, where binarising also removes image-wide triggers (Blended, SIG)."""
    return _repairing(
        "sifternet-binary-gate", purifier, seeds, binarize="otsu", output="binary", agreement=0.85
    )


def sifternet_nearest(purifier: SifterNet, seeds: tuple[np.ndarray, np.ndarray]) -> Defense:
    """The default, trigger-agnostic repair (``SifterNet.repairing()``: a repair from each
    image's nearest seeds, and from all the seeds' votes at the highlights), fitted on the
    same seeds as ``purifier``."""
    nearest = SifterNet.repairing(num_threads=purifier.num_threads).fit(*seeds)
    c = nearest.config
    return Defense(
        "sifternet-nearest",
        lambda images, indices: nearest.purify(images),
        f"SifterNet default repair: {c.neighbours} nearest seeds, {len(c.levels)} levels, "
        f"all seeds at {', '.join(map(str, c.all_seed_levels)) or 'no level'}, "
        f"agreement {c.agreement}, support tolerance {c.tolerance}, blobs up to "
        f"{c.max_area:.0%} of the image, {c.fill_size} x {c.fill_size} fill",
    )


def sifternet_query(purifier: SifterNet, seeds: tuple[np.ndarray, np.ndarray]) -> Defense:
    """The opt-in query mode (:class:`sifternet.query.QueryRepair` with its defaults) over
    the default repair fitted on the same seeds as ``purifier``: it asks the model for
    labels. Its notes give the queries per image of the clean and the triggered images."""
    nearest = SifterNet.repairing(num_threads=purifier.num_threads).fit(*seeds)
    built: dict[int, QueryRepair] = {}  # one per model: the seeds' labels are asked once
    spent: list[np.ndarray] = []

    def classify(model: Any, images: np.ndarray, indices: np.ndarray) -> np.ndarray:
        if id(model) not in built:
            built.clear()
            built[id(model)] = QueryRepair(model.predict, nearest)
        done = built[id(model)].purify_queried(images)
        spent.append(done.queries)
        return np.asarray(model.predict(done.images.reshape(images.shape)))

    def notes() -> list[str]:
        lines = [
            f"sifternet-query, model queries per image on the {what} images: "
            + ", ".join(f"{k} {v:g}" for k, v in query_distribution(queries).items())
            for what, queries in zip(("clean", "triggered", "further"), spent)
        ]
        spent.clear()
        return lines

    q = QueryRepair.__init__.__kwdefaults__ or {}
    return Defense(
        "sifternet-query",
        lambda images, indices: nearest.purify(images),  # figures: the no-query default
        f"SifterNet query mode (model labels): the default repair checked by transplanting "
        f"its pixels onto {q['carriers']} clean seeds ({q['unconfirmed']} it if unconfirmed), "
        f"{q['candidates']} memory candidates, then a "
        f"halving search; patches up to {q['patch_size']} x {q['patch_size']}, at most "
        f"{q['budget']} queries per image",
        classify,
        notes,
    )


def _plain(factory: Callable[[SifterNet], Defense]) -> Callable[[SifterNet, tuple], Defense]:
    return lambda purifier, seeds: factory(purifier)


#: The floor: cheap input transforms every purifier must beat, by name.
_FLOOR: dict[str, Callable[[SifterNet, tuple[np.ndarray, np.ndarray]], Defense]] = {
    "shrinkpad": lambda purifier, seeds: shrinkpad(4, seed=purifier.config.seed),
    "jpeg-75": lambda purifier, seeds: jpeg(75),
    "jpeg-50": lambda purifier, seeds: jpeg(50),
    "bits-3": lambda purifier, seeds: bit_depth(3),
    "bits-5": lambda purifier, seeds: bit_depth(5),
    "blur-1": lambda purifier, seeds: gaussian_blur(1.0),
}
#: The names of the floor defenses (all in :data:`DEFENSES` and :data:`DEFAULT_DEFENSES`).
FLOOR_DEFENSES: tuple[str, ...] = tuple(_FLOOR)

#: The defenses ``sifternet evaluate`` knows by name: factories of (the fitted purifier,
#: its seed images and labels).
DEFENSES: dict[str, Callable[[SifterNet, tuple[np.ndarray, np.ndarray]], Defense]] = {
    "none": _plain(no_defense),
    "sifternet": _plain(sifternet),
    "sifternet-repair": sifternet_repair,
    "sifternet-repair-dark": sifternet_repair_dark,
    "sifternet-repair-both": sifternet_repair_both,
    "sifternet-repair-otsu": sifternet_repair_otsu,
    "sifternet-binary-gate": sifternet_binary_gate,
    "sifternet-nearest": sifternet_nearest,
    "binarise-only": _plain(binarise_only),
    "erase-visited": _plain(erase_visited),
    "seed-consensus": _plain(seed_consensus),
    "median-3x3": _plain(median3x3),
    **_FLOOR,
    "ifmv": lambda purifier, seeds: ifmv(seed=purifier.config.seed),
    "sifternet-query": sifternet_query,
}
#: The defenses ``evaluate`` and ``report`` run unless told otherwise (docs/evaluation.md, Defences).
DEFAULT_DEFENSES: tuple[str, ...] = tuple(
    name
    for name in DEFENSES
    if name not in ("sifternet-repair-dark", "sifternet-repair-both", "sifternet-query")
)
#: The defenses among them that classify by querying the model (no purified images, so
#: nothing to fine-tune on).
MODEL_QUERYING: frozenset[str] = frozenset({"ifmv", "sifternet-query"})
