"""The trigger primitive of the core: a patch stamped on a batch of images (the demo's
BadNet patch; the evaluation attacks build on it)."""

from __future__ import annotations

from typing import Optional

import numpy as np


def stamp_patch(images: np.ndarray, patch: np.ndarray, origin: Optional[tuple] = None) -> np.ndarray:
    """A copy of the batch ``images`` (B, H, W) or (B, H, W, C) with ``patch`` (h, w) or
    (h, w, C) pasted with its top-left pixel at ``origin``: one (row, col) for every
    image, or (rows, cols) arrays with one position per image; default the bottom-right
    corner."""
    height, width = patch.shape[:2]
    rows, cols = origin if origin is not None else (images.shape[1] - height, images.shape[2] - width)
    out = images.copy()
    if np.ndim(rows) == 0:
        out[:, rows : rows + height, cols : cols + width] = patch
    else:
        for image, row, col in zip(out, rows, cols):
            image[row : row + height, col : col + width] = patch
    return out
