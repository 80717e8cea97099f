"""Backdoor triggers as pure functions over uint8 batches (B, H, W) or (B, H, W, C)."""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, Union

import cv2
import numpy as np

from sifternet._checks import check_batch
from sifternet.triggers import stamp_patch

Position = Union[str, tuple[int, int]]
Colour = Union[int, Sequence[int]]
CORNERS = ("bottom_right", "bottom_left", "top_right", "top_left")
#: Named positions besides the corners: "interior" is 4 pixels in from the bottom-right
#: corner (clear of the border that zero-padded binarisation whitens); "centre" is the
#: middle (row (H - size) // 2, column (W - size) // 2); "random" is one per image.
INTERIOR_MARGIN = 4
POSITIONS = (*CORNERS, "interior", "centre", "random")
#: Patch patterns: one colour; colour and black alternating; a fixed random colour per
#: pixel (from ``pattern_seed``); that random pattern with the checkerboard's black cells.
PATTERNS = ("solid", "checkerboard", "random", "random-checkerboard")


def _check_batch(images: np.ndarray) -> None:
    check_batch("images", images)
    if 0 in images.shape[1:]:
        raise ValueError(
            f"images: expected images with at least one pixel and channel, got shape {images.shape}"
        )


def patch_origin(shape: tuple[int, ...], size: int, position: Position) -> tuple[int, int]:
    """Top-left pixel of a ``size`` x ``size`` patch at a named position (a corner,
    ``"interior"``, ``"centre"``) or at (row, col) in images of batch shape ``shape``."""
    height, width = shape[1], shape[2]
    if isinstance(position, str):
        if position not in POSITIONS or position == "random":
            raise ValueError(f"position: expected one of {POSITIONS} or (row, col), got {position!r}")
        if position == "centre":
            return (height - size) // 2, (width - size) // 2
        if position == "interior":
            row, col = height - size - INTERIOR_MARGIN, width - size - INTERIOR_MARGIN
            if row < 0 or col < 0:
                raise ValueError(
                    f"position: expected a patch side of at most {min(height, width) - INTERIOR_MARGIN} "
                    f"for 'interior' in a {height}x{width} image, got {size}"
                )
            return row, col
        row = height - size if position.startswith("bottom") else 0
        col = width - size if position.endswith("right") else 0
        return row, col
    if len(position) != 2:
        raise ValueError(f"position: expected one of {POSITIONS} or (row, col), got {position!r}")
    row, col = (operator.index(v) for v in position)
    if not (0 <= row <= height - size and 0 <= col <= width - size):
        raise ValueError(f"position: a {size}x{size} patch at {(row, col)} leaves the {height}x{width} image")
    return row, col


def random_origins(
    shape: tuple[int, ...], size: int, indices: np.ndarray, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of a ``size`` x ``size`` patch per image: image ``g`` of ``indices``
    gets a uniform position inside the image from ``SeedSequence([seed, g])``, so a
    position depends on the image's index and the seed only, not on the batch."""
    rows = np.empty(len(indices), np.int64)
    cols = np.empty(len(indices), np.int64)
    for k, index in enumerate(indices):
        rows[k], cols[k] = np.random.default_rng([seed, int(index)]).integers(
            0, (shape[1] - size + 1, shape[2] - size + 1)
        )
    return rows, cols


def _patch_colour(value: Colour, channels: Optional[int]) -> np.ndarray:
    """``value`` as one level per channel, (C,) or () for grey images (``channels`` None)."""
    colour = np.asarray(value)
    if colour.dtype.kind not in "iu" or colour.ndim > 1 or colour.size == 0:
        raise ValueError(f"value: expected a level or (R, G, B) of integers in 0 .. 255, got {value!r}")
    if colour.min() < 0 or colour.max() > 255:
        raise ValueError(f"value: expected levels in 0 .. 255, got {value!r}")
    if colour.ndim == 0 or colour.size == 1:
        return colour.reshape(()) if channels is None else np.full(channels, colour.reshape(()))
    if channels is None or channels == 1:
        if (colour != colour[0]).any():
            raise ValueError(
                f"value: expected one level or R = G = B for grey images, got the colour "
                f"{tuple(int(v) for v in colour)}"
            )
        return colour[0] if channels is None else colour[:1]
    if colour.size != channels:
        raise ValueError(
            f"value: expected one level or {channels} (one per channel), got {tuple(int(v) for v in colour)}"
        )
    return colour


def badnet_patch(
    shape: tuple[int, ...],
    *,
    size: int = 3,
    value: Colour = 255,
    pattern: str = "solid",
    pattern_seed: int = 0,
) -> np.ndarray:
    """The uint8 patch, (size, size) or (size, size, C), that :func:`badnet` stamps on
    images of batch shape ``shape`` (see there)."""
    if pattern not in PATTERNS:
        raise ValueError(f"pattern: expected one of {PATTERNS}, got {pattern!r}")
    channels = shape[3] if len(shape) == 4 else None
    colour = _patch_colour(value, channels)
    patch_shape = (size, size) + tuple(shape[3:])
    if pattern.startswith("random"):
        patch = np.random.default_rng(pattern_seed).integers(0, 256, patch_shape, dtype=np.uint8)
    else:
        patch = np.broadcast_to(colour.astype(np.uint8), patch_shape).copy()
    if pattern.endswith("checkerboard"):
        patch[(np.add.outer(np.arange(size), np.arange(size)) % 2).astype(bool)] = 0
    return patch


def badnet(
    images: np.ndarray,
    *,
    size: int = 3,
    position: Position = "bottom_right",
    value: Colour = 255,
    pattern: str = "solid",
    pattern_seed: int = 0,
    seed: int = 0,
    indices: Optional[np.ndarray] = None,
) -> np.ndarray:
    """BadNet (Gu et al. 2017): a ``size`` x ``size`` patch stamped on every image.

    ``position``: a corner, ``"interior"``, ``"centre"``, a fixed (row, col), or
    ``"random"``: a position per image from its index (``indices``, default 0 .. B - 1)
    and ``seed`` (:func:`random_origins`). ``value``: the patch colour, one level or one
    per channel (R, G, B); grey images take a colour only if R = G = B. ``pattern``: one
    of :data:`PATTERNS`; the random ones draw a colour per pixel from ``pattern_seed``
    (``value`` unused), the same patch for every image. Default: 3x3 white,
    bottom-right corner. Returns a new batch.
    """
    _check_batch(images)
    size = operator.index(size)
    if not 1 <= size <= min(images.shape[1:3]):
        raise ValueError(f"size: expected 1 .. {min(images.shape[1:3])}, got {size}")
    patch = badnet_patch(images.shape, size=size, value=value, pattern=pattern, pattern_seed=pattern_seed)
    if isinstance(position, str) and position == "random":
        if indices is None:
            indices = np.arange(len(images))
        elif len(indices) != len(images):
            raise ValueError(f"indices: expected one per image ({len(images)}), got {len(indices)}")
        return stamp_patch(images, patch, random_origins(images.shape, size, indices, seed))
    return stamp_patch(images, patch, patch_origin(images.shape, size, position))


#: Side of the neighbourhood whose median colours a content patch (:func:`content_patch`).
CONTENT_WINDOW = 7


def content_patch(
    images: np.ndarray,
    *,
    size: int = 3,
    position: Position = "bottom_right",
    delta: float = 40.0,
    seed: int = 0,
    indices: Optional[np.ndarray] = None,
) -> np.ndarray:
    """A low-contrast BadNet patch coloured by the image: a ``size`` x ``size`` patch at
    ``position`` (as :func:`badnet`) whose level, per image and channel, is the median of
    the 7 x 7 neighbourhood around the patch centre (row + size // 2, col + size // 2; cut
    at the image border) plus ``delta``, rounded and clipped to 0 .. 255. No one threshold
    separates it from every image. Each image depends only on itself (and, for
    ``"random"``, its index and ``seed``). Returns a new batch."""
    _check_batch(images)
    size = operator.index(size)
    if not 1 <= size <= min(images.shape[1:3]):
        raise ValueError(f"size: expected 1 .. {min(images.shape[1:3])}, got {size}")
    if not np.isfinite(delta):
        raise ValueError(f"delta: expected a finite number of levels, got {delta}")
    count = len(images)
    if isinstance(position, str) and position == "random":
        if indices is None:
            indices = np.arange(count)
        elif len(indices) != count:
            raise ValueError(f"indices: expected one per image ({count}), got {len(indices)}")
        rows, cols = random_origins(images.shape, size, np.asarray(indices), seed)
    else:
        row, col = patch_origin(images.shape, size, position)
        rows, cols = np.full(count, row), np.full(count, col)
    height, width, half = images.shape[1], images.shape[2], CONTENT_WINDOW // 2
    out = images.copy()
    for b in range(count):
        top, left = int(rows[b]), int(cols[b])
        centre_row, centre_col = top + size // 2, left + size // 2
        window = images[
            b,
            max(centre_row - half, 0) : min(centre_row + half + 1, height),
            max(centre_col - half, 0) : min(centre_col + half + 1, width),
        ]
        median = np.median(window.reshape((-1,) + images.shape[3:]).astype(np.float64), axis=0)
        out[b, top : top + size, left : left + size] = np.clip(np.rint(median + delta), 0, 255).astype(
            np.uint8
        )
    return out


def blend_pattern(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """The default Blended pattern: uniform noise of one image's shape from ``seed`` (a
    fixed image the package generates; no third-party picture)."""
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def blended(
    images: np.ndarray, *, alpha: float = 0.2, pattern: Optional[np.ndarray] = None, seed: int = 0
) -> np.ndarray:
    """Blended (Chen et al. 2017): ``(1 - alpha) x + alpha pattern``, rounded.

    ``alpha``: BackdoorBench uses 0.2, the paper 0.065. ``pattern``: one uint8 image of
    the images' shape; default :func:`blend_pattern` of ``seed``.
    """
    _check_batch(images)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha: expected 0 .. 1, got {alpha}")
    if pattern is None:
        pattern = blend_pattern(images.shape[1:], seed)
    if not isinstance(pattern, np.ndarray) or pattern.shape != images.shape[1:] or pattern.dtype != np.uint8:
        raise ValueError(f"pattern: expected uint8 of shape {images.shape[1:]}")
    mixed = (1.0 - alpha) * images + alpha * pattern.astype(np.float64)
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def sig(images: np.ndarray, *, delta: float = 40.0, frequency: float = 6.0) -> np.ndarray:
    """SIG (Barni et al. 2019): ``x + delta sin(2 pi j f / width)`` on every row and
    channel (j the column), clipped to 0 .. 255; BackdoorBench's delta 40, f 6."""
    _check_batch(images)
    width = images.shape[2]
    wave = delta * np.sin(2 * np.pi * np.arange(width) * frequency / width)
    wave = wave.reshape((1, 1, width) + (1,) * (images.ndim - 3))
    return np.clip(np.rint(images + wave), 0, 255).astype(np.uint8)


def warp_field(
    height: int, width: int, *, grid: int = 4, strength: float = 0.5, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """WaNet's fixed warp (Nguyen and Tran 2021) as OpenCV remap maps (map_x, map_y).

    A ``grid`` x ``grid`` field of random 2-D offsets in [-1, 1], scaled to mean absolute
    value 1, upsampled bicubically to the image; the displacement is ``strength / height``
    in normalised [-1, 1] coordinates, i.e. ``strength (size - 1) / (2 height)`` pixels.
    """
    if grid < 2 or strength < 0:
        raise ValueError(f"grid: expected >= 2 and strength >= 0, got {grid}, {strength}")
    offsets = np.random.default_rng(seed).uniform(-1, 1, (grid, grid, 2))
    offsets /= np.abs(offsets).mean()
    field = cv2.resize(offsets.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    map_x = cols + field[..., 0] * strength / height * (width - 1) / 2
    map_y = rows + field[..., 1] * strength / height * (height - 1) / 2
    return np.clip(map_x, 0, width - 1), np.clip(map_y, 0, height - 1)


def wanet(images: np.ndarray, *, grid: int = 4, strength: float = 0.5, seed: int = 0) -> np.ndarray:
    """WaNet: every image warped by the same smooth random field (:func:`warp_field`),
    bilinear, with ``cv2.remap``; defaults k = 4, s = 0.5."""
    _check_batch(images)
    map_x, map_y = warp_field(images.shape[1], images.shape[2], grid=grid, strength=strength, seed=seed)
    out = np.empty_like(images)
    for b, image in enumerate(images):
        out[b] = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).reshape(
            image.shape
        )
    return out


@dataclass(frozen=True)
class Attack:
    """An attack with its poisoning protocol: ``apply(images) -> triggered images``."""

    name: str
    apply: Callable[[np.ndarray], np.ndarray]
    poison_ratio: float
    clean_label: bool = False  # poison target-class images only, labels unchanged (SIG)


def make_attack(name: str, **params: Any) -> Attack:
    """One of :data:`ATTACKS` with its parameters (see each function) and the paper's
    poisoning protocol: ratio 0.1 (BadNet, content patch, WaNet), 0.075 (Blended, SIG); SIG clean-label."""
    if name not in ATTACKS:
        raise ValueError(f"attack: expected one of {tuple(ATTACKS)}, got {name!r}")
    function, ratio, clean_label = ATTACKS[name]
    return Attack(name, functools.partial(function, **params), ratio, clean_label)


ATTACKS: dict[str, tuple[Callable[..., np.ndarray], float, bool]] = {
    "badnet": (badnet, 0.1, False),
    "content-patch": (content_patch, 0.1, False),
    "blended": (blended, 0.075, False),
    "sig": (sig, 0.075, True),
    "wanet": (wanet, 0.1, False),
}
