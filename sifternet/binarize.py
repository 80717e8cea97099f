"""Binarisation of uint8 image batches into {-1, +1} states (docs/method.md, Binarisation).

``global`` thresholds the intensity rescaled to [-1, 1]; ``local_mean`` is the
paper's "localized differentiation": each pixel against the mean of its k x k
neighbourhood; ``otsu`` uses OpenCV's Otsu threshold per image and channel.
Colour channels are binarised independently.
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Literal, Optional, get_args

import cv2
import numpy as np
import numpy.typing as npt

from sifternet._checks import check_choice, check_finite, check_int, check_uint8
from sifternet._threads import resolve_num_threads

__all__ = ["BORDERS", "METHODS", "Binarization", "Border", "binarize", "states_to_pixels"]

Binarization = Literal["global", "local_mean", "otsu"]
Border = Literal["zero", "replicate", "reflect"]
METHODS: tuple[str, ...] = get_args(Binarization)
BORDERS: tuple[str, ...] = get_args(Border)

# Each border mode as np.pad mode (rows, padded per image) and OpenCV border (columns).
_NP_PAD_MODE: dict[str, Literal["constant", "edge", "reflect"]] = {
    "zero": "constant",
    "replicate": "edge",
    "reflect": "reflect",
}
_CV_BORDER = {
    "zero": cv2.BORDER_CONSTANT,
    "replicate": cv2.BORDER_REPLICATE,
    "reflect": cv2.BORDER_REFLECT_101,
}
MAX_BLOCK_SIZE = 2901  # largest k with 255*k*k + 1 < 2**31: sums and limits fit int32
_CV_MAX_CHANNELS = 128  # OpenCV 5's CV_CN_MAX: most channels one cv::Mat carries
_CHUNK_BYTES = 1 << 19  # padded bytes per local_mean chunk, so its buffers stay in cache


def binarize(
    images: npt.NDArray[np.uint8],
    method: Binarization = "local_mean",
    *,
    block_size: int = 11,
    offset: float = 0.0,
    threshold: float = 0.0,
    border: Border = "zero",
    num_threads: int | None = None,
) -> npt.NDArray[np.int8]:
    """Binarise a batch of uint8 images into states -1 / +1.

    Parameters
    ----------
    images : ndarray of uint8, shape (B, H, W) or (B, H, W, C)
        A batch; add the batch axis for a single image. Any memory layout.
    method : {"global", "local_mean", "otsu"}
        ``global``: +1 where 2p/255 - 1 > `threshold`. ``local_mean`` (the
        paper's localized differentiation): +1 where p > A - `offset`, A the
        mean of the k x k window around p. ``otsu``: +1 where p exceeds
        OpenCV's Otsu threshold of its image and channel.
    block_size : int
        The paper's k-size: window side k in [1, 2901], odd or even (the window
        spans rows and columns i - k//2 .. i + k - 1 - k//2). ``local_mean`` only.
    offset : float
        The paper's offset c subtracted from the local mean. ``local_mean`` only.
    threshold : float
        The paper's global threshold t on the [-1, 1] scale. ``global`` only.
    border : {"zero", "replicate", "reflect"}
        Padding outside the image for ``local_mean``: zeros (the paper's
        choice, border means pulled down), edge pixel repeated, or mirrored
        without repeating the edge (gfedcb|abcdefgh).
    num_threads : int or None
        Threads splitting a ``local_mean`` batch, by sifternet's one convention
        (``None``: ``OMP_NUM_THREADS`` capped at the usable cores; ``-1``: all).

    Returns
    -------
    ndarray of int8, same shape as `images`
        States in {-1, +1}.

    Raises
    ------
    TypeError
        If `images` is not a uint8 ndarray, `block_size` not an int, or `offset` /
        `threshold` not a number.
    ValueError
        If `images` is not 3-D or 4-D, `method` / `border` is unknown,
        `block_size` is outside [1, 2901], or `offset` / `threshold` is not finite.
    """
    check_uint8("images", images)
    if images.ndim not in (3, 4):
        raise ValueError(
            f"images: expected shape (B, H, W) or (B, H, W, C), got {images.ndim}-D shape {images.shape}"
        )
    check_choice("method", method, METHODS)
    check_choice("border", border, BORDERS)
    block_size = check_int("block_size", block_size, low=1, high=MAX_BLOCK_SIZE)
    offset = check_finite("offset", offset)
    threshold = check_finite("threshold", threshold)
    threads = resolve_num_threads(num_threads)

    if images.size == 0:
        return np.empty(images.shape, np.int8)
    batch = images if images.ndim == 4 else images[..., np.newaxis]
    if method == "global":
        states = _global(batch, threshold)
    elif method == "local_mean":
        states = _local_mean(batch, block_size, offset, border, threads)
    else:
        states = _otsu(batch)
    return states.reshape(images.shape)


def states_to_pixels(states: npt.NDArray[np.int8]) -> npt.NDArray[np.uint8]:
    """Map int8 states to uint8 pixels: +1 -> 255, -1 -> 0 (any shape).

    Raises
    ------
    TypeError
        If `states` is not an int8 ndarray.
    """
    if not isinstance(states, np.ndarray) or states.dtype != np.int8:
        kind = states.dtype if isinstance(states, np.ndarray) else type(states).__name__
        raise TypeError(f"states: expected an int8 numpy.ndarray, got {kind}")
    return np.multiply(states > 0, np.uint8(255), dtype=np.uint8)


def _global(batch: np.ndarray, threshold: float) -> np.ndarray:
    """``global`` states of a (B, H, W, C) batch via a 256-entry lookup table."""
    levels = 2 * np.arange(256) / 255 - 1
    table = np.where(levels > threshold, 1, -1).astype(np.int8)
    return cv2.LUT(batch.reshape(batch.shape[0], -1), table)


def _local_mean(batch: np.ndarray, k: int, offset: float, border: str, threads: int) -> np.ndarray:
    """``local_mean`` states of a (B, H, W, C) batch.

    The batch is split among threads; each thread takes its images a chunk at a
    time, pads their rows per image into a reused buffer, and views the chunk as
    one tall image whose k x k window sums S come from a single box filter (each
    image's own padding keeps windows from crossing images; OpenCV pads the
    columns). A pixel p is -1 iff S >= limits[p].
    """
    n_images, height, width, n_channels = batch.shape
    if n_channels > _CV_MAX_CHANNELS:
        return np.concatenate(
            [
                _local_mean(batch[..., c : c + _CV_MAX_CHANNELS], k, offset, border, threads)
                for c in range(0, n_channels, _CV_MAX_CHANNELS)
            ],
            axis=3,
        )
    top = k // 2
    padded_height = height + k - 1
    # Source row of each padded row; zero padding needs none (those rows stay zero).
    row_map: Optional[np.ndarray] = None
    if border != "zero":
        row_map = np.pad(np.arange(height), (top, k - 1 - top), mode=_NP_PAD_MODE[border])
    sum_type: type[np.integer]
    if 255 * k * k < np.iinfo(np.uint16).max:
        sum_type, sum_depth = np.uint16, cv2.CV_16U
    else:
        sum_type, sum_depth = np.int32, cv2.CV_32S
    limits: np.ndarray = _window_sum_limits(k, offset).astype(sum_type)
    states = np.empty(batch.shape, np.int8)
    per_chunk = max(1, _CHUNK_BYTES // (padded_height * width * n_channels))

    def work(images: range) -> None:
        # Buffers reused across chunks (fresh ones would cost a page fault per 4 KiB).
        chunk_size = min(per_chunk, len(images))
        padded = np.zeros((chunk_size, padded_height, width, n_channels), np.uint8)
        sums = np.empty((chunk_size * padded_height, width, n_channels), sum_type)
        pixel_limits = np.empty_like(sums)
        off_mask = np.empty((chunk_size * padded_height, width * n_channels), np.uint8)
        for start in images[::chunk_size]:
            chunk = batch[start : min(start + chunk_size, images.stop)]
            n = len(chunk)
            rows = n * padded_height
            if row_map is None:
                padded[:n, top : top + height] = chunk
            else:
                np.take(chunk, row_map, axis=1, out=padded[:n], mode="clip")
            tall = padded[:n].reshape(rows, width, n_channels)
            window_sums = cv2.boxFilter(
                tall,
                sum_depth,
                (k, k),
                dst=sums[:rows],
                normalize=False,
                borderType=_CV_BORDER[border],
            )
            off = cv2.compare(
                window_sums.reshape(rows, -1),
                cv2.LUT(tall, limits, dst=pixel_limits[:rows]).reshape(rows, -1),
                cv2.CMP_GE,
                dst=off_mask[:rows],
            )
            # off is 255 (state -1) or 0 (state +1); OR 1 gives 255 / 1, as int8 -1 / +1.
            np.bitwise_or(
                off.reshape(n, padded_height, width, n_channels)[:, top : top + height],
                1,
                out=states[start : start + n].view(np.uint8),
            )

    small = batch.size < _CHUNK_BYTES  # tiny batches stay serial: threads cost more
    workers = 1 if small else min(n_images, threads)
    bounds = np.linspace(0, n_images, workers + 1).astype(int)
    parts = [range(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
    if workers == 1:
        work(parts[0])
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(work, parts))
    return states


@functools.lru_cache(maxsize=64)
def _window_sum_limits(k: int, offset: float) -> np.ndarray:
    """limits[p], p = 0..255: the number of window sums S in [0, 255*k*k] that pass.

    The test ``k*k*p > S - k*k*offset`` (float64; docs/method.md, Local mean) is
    monotone in the integer S, so it holds exactly when S < limits[p]; the count is
    found by binary lifting, evaluating that very expression.
    """
    kk = k * k
    scaled_pixel = kk * np.arange(256, dtype=np.float64)
    shift = kk * offset
    largest_sum = 255 * kk
    passing = np.zeros(256, np.int64)
    step = 1 << largest_sum.bit_length()
    while step:
        candidate = passing + step - 1
        passing[(candidate <= largest_sum) & (scaled_pixel > candidate - shift)] += step
        step >>= 1
    passing.flags.writeable = False  # shared by the cache
    return passing


def _otsu(batch: np.ndarray) -> np.ndarray:
    """``otsu`` states of a (B, H, W, C) batch, one cv2.threshold call per image channel.

    Equal to OpenCV by construction. A vectorised replica of OpenCV's criterion
    (bit-exact only with its sequential float recurrence over the 256 bins) was
    about 7x slower than these calls.
    """
    n_images, height, width, n_channels = batch.shape
    planes = np.moveaxis(batch, 3, 1).reshape(-1, height, width)
    off = np.empty(planes.shape, np.uint8)
    for plane, plane_off in zip(planes, off):
        # Writes plane_off in place: 255 (state -1) where p <= the Otsu threshold, else 0.
        cv2.threshold(plane, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU, dst=plane_off)
    per_channel = np.moveaxis(off.reshape(n_images, n_channels, height, width), 1, 3)
    return np.bitwise_or(per_channel, 1, order="C").view(np.int8)
