"""Backdoor triggers as pure functions over uint8 batches (B, H, W) or (B, H, W, C)."""

from __future__ import annotations

import operator
from typing import Union

import numpy as np

Position = Union[str, tuple[int, int]]
CORNERS = ("bottom_right", "bottom_left", "top_right", "top_left")


def _check_batch(images: np.ndarray) -> None:
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        raise TypeError(f"images: expected a uint8 numpy array, got {getattr(images, 'dtype', type(images).__name__)}")
    if images.ndim not in (3, 4):
        raise ValueError(f"images: expected a batch (B, H, W) or (B, H, W, C), got shape {images.shape}")


def patch_origin(shape: tuple[int, ...], size: int, position: Position) -> tuple[int, int]:
    """Top-left pixel of a ``size`` x ``size`` patch at a corner or at (row, col)."""
    height, width = shape[1], shape[2]
    if isinstance(position, str):
        if position not in CORNERS:
            raise ValueError(f"position: expected one of {CORNERS} or (row, col), got {position!r}")
        row = height - size if position.startswith("bottom") else 0
        col = width - size if position.endswith("right") else 0
        return row, col
    row, col = (operator.index(v) for v in position)
    if not (0 <= row <= height - size and 0 <= col <= width - size):
        raise ValueError(f"position: a {size}x{size} patch at {(row, col)} leaves the {height}x{width} image")
    return row, col


def badnet(
    images: np.ndarray, *, size: int = 3, position: Position = "bottom_right", value: int = 255
) -> np.ndarray:
    """BadNet (Gu et al. 2017): a ``size`` x ``size`` patch of ``value`` stamped on every
    image, by default 3x3 white in the bottom-right corner. Returns a new batch."""
    _check_batch(images)
    size = operator.index(size)
    if not 1 <= size <= min(images.shape[1:3]):
        raise ValueError(f"size: expected 1 .. {min(images.shape[1:3])}, got {size}")
    if not 0 <= value <= 255:
        raise ValueError(f"value: expected 0 .. 255, got {value}")
    row, col = patch_origin(images.shape, size, position)
    out = images.copy()
    out[:, row : row + size, col : col + size] = value
    return out
