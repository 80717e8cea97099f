"""Output repair: put the recall's verdict back into the ORIGINAL image (docs/method.md, Output modes).

The paper outputs the recalled binary image; these modes keep the input's own pixels
and touch only those the recall flipped, so the model sees an image of its training
domain. The work is the kernel's (``csrc/repair.cpp``); ``sifternet.reference.repair``
is its NumPy oracle.
"""

from __future__ import annotations

from typing import Literal, Optional, get_args

import numpy as np

from sifternet import _core
from sifternet._checks import ALWAYS_FITS, check_int, check_memory
from sifternet._threads import resolve_num_threads

Output = Literal["binary", "restore", "inpaint"]
OUTPUTS: tuple[str, ...] = get_args(Output)
#: The side of the square window of the suspicion score: the smallest patch with an inside.
SUSPICION_WINDOW = 3
_ADVICE = "repair the images in chunks (successive slices of the batch)"


def repair(
    output: Output,
    images: np.ndarray,
    binarised: np.ndarray,
    recalled: np.ndarray,
    fill_size: int,
    joint_channels: bool = False,
    num_threads: Optional[int] = None,
) -> np.ndarray:
    """The purified pixels (B, H, W, C) uint8 for an ``output`` mode, from the input
    images (uint8) and their binarised and recalled states (int8), all (B, H, W, C).

    ``binary``: the recalled states as 0/255 (the paper). ``restore``: the input, except
    the values the recall flipped, which take the recalled 0/255. ``inpaint``: the input,
    except each flipped value, which takes the rounded mean of the unflipped values of
    its channel in the ``fill_size`` x ``fill_size`` window around it (outside the image
    counts as absent; exact integers, the same for an image alone or in a batch), or the
    recalled 0/255 where there is none. With ``joint_channels``, a pixel flipped in any
    channel counts as flipped in every channel (a colour trigger is one object).
    """
    fill_size = check_int("fill_size", fill_size, low=1, high=2**63 - 1)  # the kernel's int64
    arrays = (images, binarised, recalled)
    large = isinstance(images, np.ndarray) and images.ndim == 4 and images.size >= ALWAYS_FITS // 4
    if large and all(
        isinstance(a, np.ndarray) and a.shape == images.shape and a.itemsize == 1 for a in arrays
    ):
        # The pixels and the kernel's contiguous copies of strided inputs.
        copies = sum(not a.flags.c_contiguous for a in arrays)
        check_memory("images", f"{len(images)} images", (1 + copies) * images.size, _ADVICE)
    return _core.repair(
        images,
        binarised,
        recalled,
        output=output,
        fill_size=fill_size,
        joint_channels=joint_channels,
        num_threads=resolve_num_threads(num_threads),
    )


def flipped_pixels(binarised: np.ndarray, recalled: np.ndarray) -> np.ndarray:
    """bool (B, H, W): the pixels whose state the recall changed in any channel, from
    int8 states (B, H, W, C) before and after recall."""
    if binarised.shape != recalled.shape or binarised.ndim != 4:
        raise ValueError(
            f"states: expected two arrays of one shape (B, H, W, C), got {binarised.shape} and "
            f"{recalled.shape}"
        )
    flipped = binarised[..., 0] != recalled[..., 0]
    for channel in range(1, binarised.shape[3]):
        flipped |= binarised[..., channel] != recalled[..., channel]
    return flipped


def suspicion(flipped: np.ndarray, window: int = SUSPICION_WINDOW) -> np.ndarray:
    """float64 (B,): per image, the largest share of flipped pixels in any ``window`` x
    ``window`` square of ``flipped`` (B, H, W) bool (docs/method.md, Suspicion score): 1
    where the recall changed a whole square, as it does on a patch trigger it removes,
    and low where its changes are scattered, as they are on clean images. Exact: integer
    counts (sums of shifted rows, then of shifted columns), divided once."""
    window = check_int("window", window, low=1, high=255)  # counts of at most 255**2 in uint16
    batch, height, width = flipped.shape
    side = min(window, height, width)
    mask = flipped.astype(np.uint16)
    rows = mask[:, : height - side + 1].copy()
    for k in range(1, side):
        rows += mask[:, k : height - side + 1 + k]
    counts = rows[:, :, : width - side + 1].copy()
    for k in range(1, side):
        counts += rows[:, :, k : width - side + 1 + k]
    return counts.reshape(batch, -1).max(axis=1, initial=0) / (side * side) if batch else np.zeros(0)
