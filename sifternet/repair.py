"""Output repair: put the recall's verdict back into the ORIGINAL image (issue 8).

The paper outputs the recalled binary image; these modes keep the input's own pixels
and touch only those the recall flipped, so the model sees an image of its training
domain.
"""

from __future__ import annotations

import cv2
import numpy as np

OUTPUTS = ("binary", "restore", "inpaint")


def fill_from_neighbours(images: np.ndarray, holes: np.ndarray, size: int, fallback: np.ndarray) -> np.ndarray:
    """``images`` (B, H, W, C) uint8 with every ``holes`` pixel replaced by the rounded
    mean of the non-hole pixels of its channel in the ``size`` x ``size`` window around
    it (zero-padded per image, integer sums: exact, and the same for an image alone or
    in a batch); a hole with no such neighbour takes ``fallback``.

    Window sums come from one unnormalised box filter over the padded batch stacked into
    a tall image (16-bit sums while size^2 * 255 fits), and the means are taken at the
    holes only."""
    b, h, w, c = images.shape
    top, bottom = size // 2, size - 1 - size // 2
    depth = cv2.CV_16U if size * size * 255 <= np.iinfo(np.uint16).max else cv2.CV_32S
    valid = (~holes).view(np.uint8)
    at = np.flatnonzero(holes)
    # the same pixel in the batch padded with top + bottom rows per image
    padded = at + (at // (h * w * c) * (size - 1) + top) * (w * c)

    def window_sums(values: np.ndarray) -> np.ndarray:
        tall = np.pad(values, ((0, 0), (top, bottom), (0, 0), (0, 0))).reshape(b * (h + size - 1), w, c)
        sums = cv2.boxFilter(tall, depth, (size, size), normalize=False, borderType=cv2.BORDER_CONSTANT)
        return sums.reshape(-1)[padded].astype(np.int64)

    total, count = window_sums(images * valid), window_sums(valid)
    out = images.copy()
    out.reshape(-1)[at] = np.where(count > 0, (total + count // 2) // np.maximum(count, 1), np.ravel(fallback)[at])
    return out


def repair(
    output: str, images: np.ndarray, binarised: np.ndarray, recalled: np.ndarray, fill_size: int,
    joint_channels: bool = False,
) -> np.ndarray:
    """The purified pixels (B, H, W, C) for an ``output`` mode, from the input images,
    their binarised states and the recalled states.

    ``binary``: the recalled states as 0/255 (the paper). ``restore``: the input, except
    the pixels the recall flipped, which take the recalled 0/255. ``inpaint``: the input,
    except the flipped pixels, filled from their unflipped neighbours. With
    ``joint_channels``, a pixel flipped in any channel counts as flipped in every channel
    (each channel's recall judges it alone; a colour trigger is one object).
    """
    binary = np.multiply(recalled > 0, np.uint8(255), dtype=np.uint8)
    if output == "binary":
        return binary
    flipped = recalled != binarised
    if joint_channels:
        flipped = np.broadcast_to(flipped.any(axis=-1, keepdims=True), flipped.shape)
    if output == "restore":
        return np.where(flipped, binary, images)
    return fill_from_neighbours(images, flipped, fill_size, binary)
