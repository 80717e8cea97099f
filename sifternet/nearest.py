"""``NearestSeedRepair``, the default repair (``SifterNet.repairing()``): judge each image
by the seeds that look most like it, at every intensity
(docs/method.md, Nearest-seed repair).

No trigger colour, position or data set is assumed. Per image, the ``neighbours`` seeds
nearest to it (by thumbnails) are its memories. At each level of a thermometer of
thresholds, a gated one-step Hebbian field of those memories marks the pixels they agree
against, and at the highlights so does a vote of all the seeds; small blobs of pixels that
no memory holds at all (any colour, within a tolerance) are marked too; the marked pixels
are filled from the unmarked ones around them. The work is the kernel's
(``csrc/nearest.cpp``); ``sifternet.reference`` holds its NumPy oracle.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Optional

import numpy as np

from sifternet import _core
from sifternet._checks import check_finite, check_fraction, check_image_batch, check_int, check_seeds
from sifternet._threads import resolve_num_threads
from sifternet.modelfile import (
    HEADER_FIELDS,
    ModelFileError,
    ModelReader,
    StoredModel,
    pack,
)
from sifternet.purifier import Purification
from sifternet.repair import SUSPICION_WINDOW

#: The ``purifier`` field of its model files' metadata.
KIND = "nearest-seed-repair"
#: The thermometer: thresholds on the [-1, 1] scale, from highlights to shadows.
LEVELS: tuple[float, ...] = (0.9, 0.6, 0.3, 0.0, -0.3, -0.6, -0.9)


def level_cut(threshold: float) -> int:
    """The pixel value above which a pixel is +1 at ``threshold`` (on the [-1, 1] scale, as
    the ``global`` binarisation: +1 where 2p/255 - 1 > threshold)."""
    return int(np.count_nonzero(2 * np.arange(256) / 255 - 1 <= threshold)) - 1


def blob_limit(max_area: float, pixels: int) -> int:
    """The most pixels of a repaired blob: ``max_area`` of ``pixels``, rounded down (a
    product that float arithmetic puts a hair under an integer counts as that integer)."""
    return int(max_area * pixels + 1e-9)


def nearest_score(marked: np.ndarray, moved: np.ndarray, image_shape: tuple[int, ...]) -> np.ndarray:
    """The suspicion score in [0, 1] from the kernel's window sums: the largest share of
    marked pixels in any 3 x 3 square times the largest sum, over any 3 x 3 square, of each
    pixel's largest change in a channel, divided by 9 x 255 (smaller squares on smaller
    images)."""
    side = min(SUSPICION_WINDOW, *image_shape[:2])
    return marked / (side * side) * (moved / (side * side * 255))


def window_range(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per value of images (B, H, W, C), the minimum and the maximum of its channel over the
    3 x 3 window around its pixel (the window cut by the image's edges)."""
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    height, width = images.shape[1:3]
    shifts = [padded[:, dy : dy + height, dx : dx + width] for dy in range(3) for dx in range(3)]
    return np.minimum.reduce(shifts), np.maximum.reduce(shifts)


@dataclass(frozen=True)
class NearestConfig:
    """The options of a :class:`NearestSeedRepair` (see its docs), validated here."""

    neighbours: int = 32
    levels: tuple[float, ...] = LEVELS
    agreement: float = 0.9
    tolerance: Optional[int] = 40
    max_area: float = 0.05
    grow: int = 1
    fill_size: int = 5
    thumbnail: int = 8
    all_seed_levels: tuple[float, ...] = (0.9,)

    def __post_init__(self) -> None:
        check_int("neighbours", self.neighbours, low=1, high=2**31 - 1)
        if not isinstance(self.levels, tuple) or not self.levels:
            raise TypeError(f"levels: expected a non-empty tuple of thresholds, got {self.levels!r}")
        if not isinstance(self.all_seed_levels, tuple):
            raise TypeError(f"all_seed_levels: expected a tuple of thresholds, got {self.all_seed_levels!r}")
        for name in ("levels", "all_seed_levels"):
            for level in getattr(self, name):
                if not -1.0 <= check_finite(name, level) <= 1.0:
                    raise ValueError(f"{name}: expected thresholds in [-1, 1], got {level!r}")
        check_fraction("agreement", self.agreement)
        if self.tolerance is not None:
            check_int("tolerance", self.tolerance, low=0, high=255)
        if not 0.0 <= check_finite("max_area", self.max_area) <= 1.0:
            raise ValueError(f"max_area: expected a share of the image in [0, 1], got {self.max_area!r}")
        check_int("grow", self.grow, low=0, high=2**20)
        check_int("fill_size", self.fill_size, low=1, high=2**20)
        check_int("thumbnail", self.thumbnail, low=1, high=2**12)


class NearestSeedRepair(StoredModel):
    """Trigger-agnostic repair from the seeds nearest to each image.

    Parameters (keyword-only)
    -------------------------
    neighbours : int
        k, the seeds nearest to an image (squared distance of ``thumbnail`` x
        ``thumbnail`` block sums; ties to the earlier seed) that serve as its memories.
    levels : tuple of float
        The thermometer: thresholds on the [-1, 1] scale. At each, pixels are +1 above it,
        and a pixel is marked where the memories' one-step Hebbian field is against it by
        more than ``agreement`` of their vote mass, in any channel.
    agreement : float
        The gate, in [0, 1).
    tolerance : int or None
        The support check: a pixel no memory holds within ``tolerance`` levels (of the
        memory's values in the 3 x 3 window around it, in every channel) is unsupported;
        8-connected blobs of unsupported pixels up to ``max_area`` of the image are
        marked, grown by ``grow`` pixels. ``None``: no support check.
    max_area, grow : float, int
        See ``tolerance``.
    fill_size : int
        Marked pixels are filled from the outside in: each takes the rounded mean of the
        unmarked (or already filled) pixels in the ``fill_size`` x ``fill_size`` window.
    thumbnail : int
        The side of the thumbnails that choose the memories.
    all_seed_levels : tuple of float
        Thresholds at which every seed, not only the nearest, votes with the same weight: a
        pixel is marked where more than ``agreement`` of all the seeds' states are against
        it (by default at the highlights, where SifterNet's highlights preset looks). A
        saturated patch can pull the nearest seeds toward bright ones; all the seeds still
        out-vote it.
    num_threads : int or None
        Kernel threads, as :class:`SifterNet`'s; results never depend on it.

    Each image's result depends on that image and the seeds only: no random stream, so
    the same for any batch, chunk or thread count. A fitted instance is read-only in
    :meth:`purify` and may be shared by threads; the kernel releases the GIL.
    """

    def __init__(self, *, num_threads: Optional[int] = None, **options: Any) -> None:
        self.config = NearestConfig(**options)
        resolve_num_threads(num_threads)
        self.num_threads = num_threads
        self.seed_labels: Optional[np.ndarray] = None
        self._seeds: Optional[np.ndarray] = None  # as fitted: (P, H, W) or (P, H, W, C)
        self._bank: tuple[np.ndarray, ...] = ()

    def __repr__(self) -> str:
        state = "not fitted" if self._seeds is None else f"fitted on {len(self._seeds)} seeds"
        return f"NearestSeedRepair({asdict(self.config)}, {state})"

    @property
    def image_shape(self) -> tuple[int, ...]:
        """(H, W) or (H, W, C) of the fitted images; RuntimeError before :meth:`fit`."""
        return self._fitted_seeds.shape[1:]

    @property
    def _fitted_seeds(self) -> np.ndarray:
        """The seeds as fitted; RuntimeError before :meth:`fit`."""
        if self._seeds is None:
            raise RuntimeError("this NearestSeedRepair is not fitted yet: call fit(seed_images)")
        return self._seeds

    @property
    def seeds(self) -> np.ndarray:
        """The seed images as fitted (read-only); RuntimeError before :meth:`fit`."""
        seeds = self._fitted_seeds.view()
        seeds.flags.writeable = False
        return seeds

    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`fit` (or :meth:`load`) has given it its seeds."""
        return self._seeds is not None

    @property
    def n_channels(self) -> int:
        """Colour channels of the fitted images (1 for grey)."""
        shape = self.image_shape
        return shape[2] if len(shape) == 3 else 1

    def fit(self, seed_images: np.ndarray, labels: Optional[np.ndarray] = None) -> NearestSeedRepair:
        """Keep the clean ``seed_images`` (B, H, W) or (B, H, W, C) uint8, their level
        planes, 3 x 3 ranges, thumbnails and all-seed votes. ``labels`` (one per seed) are
        only checked and kept."""
        labels = check_seeds(seed_images, labels)
        n_seeds, height, width = seed_images.shape[:3]
        seeds = seed_images.reshape(n_seeds, height, width, -1)
        c = self.config
        cuts = np.array([level_cut(t) for t in c.all_seed_levels + c.levels], np.uint8)
        planar = seeds.reshape(n_seeds, height * width, -1).transpose(0, 2, 1)  # (P, C, N)
        everyone = len(c.all_seed_levels)
        above = planar[:, None] > cuts[None, everyone:, None, None]  # (P, levels, C, N)
        votes = 2 * np.count_nonzero(planar[:, None] > cuts[None, :everyone, None, None], axis=0) - n_seeds
        words = -(-height * width // 64)
        packed = np.zeros(above.shape[:3] + (8 * words,), np.uint8)
        packed[..., : -(-height * width // 8)] = np.packbits(above, axis=-1, bitorder="little")
        bits = packed.view("<u8").astype(np.uint64)  # bit (p & 63) of word (p >> 6): pixel p
        low, high = (
            np.ascontiguousarray(r.reshape(n_seeds, height * width, -1).transpose(0, 2, 1))
            for r in window_range(seeds)
        )
        slack = c.tolerance or 0
        low = np.maximum(low.astype(np.int16) - slack, 0).astype(np.uint8)
        high = np.minimum(high.astype(np.int16) + slack, 255).astype(np.uint8)
        thumbs = _core.thumbnails(seeds, c.thumbnail)
        self._bank = (bits, cuts, low, high, thumbs, votes.astype(np.int32))  # votes (G, C, N)
        self._seeds = np.ascontiguousarray(seed_images)
        self.seed_labels = labels
        return self

    def purify_scored(
        self,
        images: np.ndarray,
        *,
        index_offset: int = 0,
        indices: Any = None,
        num_threads: Optional[int] = None,
    ) -> Purification:
        """The repaired ``images`` (one image or a batch of the fitted shape; returned as a
        batch), which pixels were repaired (bool (B, H, W)), and a suspicion score per image
        in [0, 1]: how densely the repair marked pixels times how far it moved them, each
        taken in its densest 3 x 3 square (docs/method.md, Nearest-seed repair).
        ``index_offset`` and ``indices`` are taken, as :meth:`SifterNet.purify_scored`
        takes them, and change nothing: no random stream is keyed by them."""
        batch, _ = check_image_batch("images", images, self.image_shape)
        out, holes, marked, moved = self._run(batch, True, num_threads)
        assert holes is not None and marked is not None and moved is not None  # scored
        return Purification(out, holes, nearest_score(marked, moved, self.image_shape))

    def purify(
        self,
        images: np.ndarray,
        *,
        index_offset: int = 0,
        indices: Any = None,
        num_threads: Optional[int] = None,
    ) -> np.ndarray:
        """The repaired ``images``, of their own shape (see :meth:`purify_scored`; the same
        pixels, without the score's work)."""
        batch, _ = check_image_batch("images", images, self.image_shape)
        return self._run(batch, False, num_threads)[0].reshape(np.shape(images))

    def _run(
        self, batch: np.ndarray, scored: bool, num_threads: Optional[int]
    ) -> tuple[np.ndarray, Optional[np.ndarray], Optional[np.ndarray], Optional[np.ndarray]]:
        """The nearest-seed kernel on a checked (B, H, W, C) batch: (repaired batch, holes,
        densest marked pixels, densest change), the last three None unless ``scored``."""
        c = self.config
        height, width = batch.shape[1:3]
        out, holes, marked, moved = _core.nearest_repair(
            batch,
            *self._bank,
            side=c.thumbnail,
            neighbours=c.neighbours,
            agreement=c.agreement,
            support=c.tolerance is not None,
            max_area=blob_limit(c.max_area, height * width),
            grow=c.grow,
            fill_size=c.fill_size,
            window=SUSPICION_WINDOW,
            scored=scored,
            num_threads=resolve_num_threads(self.num_threads if num_threads is None else num_threads),
        )
        return out.reshape((len(batch),) + self.image_shape), holes, marked, moved

    # -- model files ------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The model file's bytes (see :mod:`sifternet.modelfile`): the options, the image
        shape and the seed images, from which :meth:`from_bytes` refits."""
        arrays = {"seeds": self._fitted_seeds}
        if self.seed_labels is not None:
            arrays["seed_labels"] = self.seed_labels
        c = self.config
        config = {**asdict(c), "levels": list(c.levels), "all_seed_levels": list(c.all_seed_levels)}
        return pack({"purifier": KIND, "config": config, "image_shape": list(self.image_shape)}, arrays)

    @classmethod
    def from_bytes(
        cls, data: bytes, *, num_threads: Optional[int] = None, source: str = "model file"
    ) -> NearestSeedRepair:
        """A fitted purifier from model-file bytes, validated (:class:`ModelFileError`
        naming ``source``) before any array is inflated."""
        reader = ModelReader(data, source)
        metadata, found = reader.metadata, reader.members
        try:
            if metadata.get("purifier") != KIND:
                raise ValueError(
                    f"purifier: expected {KIND!r} (this file holds a SifterNet: use SifterNet.load)"
                )
            extra = sorted(set(metadata) - {*HEADER_FIELDS, "purifier", "config", "image_shape"})
            if extra:
                raise ValueError(f"metadata: unexpected fields {', '.join(extra)}")
            config = metadata.get("config")
            if not isinstance(config, dict):
                raise TypeError(f"config: expected a JSON object of options, got {type(config).__name__}")
            config = {"all_seed_levels": [], **config}  # files from before the vote: without it
            missing = [field.name for field in fields(NearestConfig) if field.name not in config]
            if missing:
                raise ValueError(f"config: expected every option, missing {', '.join(missing)}")
            for name in ("levels", "all_seed_levels"):
                if not isinstance(config[name], list):
                    raise TypeError(f"config: {name}: expected a list, got {type(config[name]).__name__}")
            tuples = {name: tuple(config[name]) for name in ("levels", "all_seed_levels")}
            purifier = cls(num_threads=num_threads, **{**config, **tuples})
            shape: Any = metadata.get("image_shape")
            sides_ok = isinstance(shape, list) and all(type(d) is int and d >= 1 for d in shape)
            if not sides_ok or len(shape) not in (2, 3):
                raise ValueError(f"image_shape: expected [H, W] or [H, W, C] of positive ints, got {shape!r}")
            seeds = found.get("seeds")
            count = seeds.shape[0] if seeds is not None and len(seeds.shape) == len(shape) + 1 else 0
            if count < 1:
                raise ValueError(f"seeds: expected uint8 seeds (P, {', '.join(map(str, shape))}), P >= 1")
            layout = {
                "seeds": (("uint8",), (count, *shape)),
                "seed_labels": (("int8", "int32", "int64"), (count,)),
            }
            reader.expect(layout, optional=("seed_labels",))
            arrays = reader.arrays()
            labels = arrays.get("seed_labels")
            return purifier.fit(arrays["seeds"], None if labels is None else labels.astype(np.int64))
        except ModelFileError:
            raise
        except (KeyError, TypeError, ValueError, ArithmeticError, RuntimeError, MemoryError) as error:
            raise reader.error(f"invalid model content: {error}") from None
