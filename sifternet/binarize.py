"""Binarisation of uint8 image batches into {-1, +1} states (docs/method.md, Binarisation).

``global`` thresholds the intensity rescaled to [-1, 1]; ``local_mean`` is the
paper's "localized differentiation": each pixel against the mean of its k x k
neighbourhood; ``otsu`` uses OpenCV's Otsu threshold per image and channel.
Colour channels are binarised independently.
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, Literal, Optional, get_args

import cv2
import numpy as np
import numpy.typing as npt

from sifternet._checks import check_batch, check_choice, check_finite, check_int, check_memory, empty
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
_CV_INT_MAX = 2**31 - 1  # OpenCV's sizes and pixel counts are C ints
_PIECE = 1 << 20  # values per global / otsu step: bounded copies, int-sized OpenCV calls
_ADVICE = "process the images in chunks (successive slices of the batch)"


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
        `block_size` is outside [1, 2901], `offset` / `threshold` is not finite, or an
        image is beyond OpenCV's int sizes (``local_mean``: H + k - 1 or W times the
        channels from 2**31 on; ``otsu``: H * W from 2**31 on).
    MemoryError
        If the states would not fit in memory (checked before allocating).
    """
    check_batch("images", images)
    check_choice("method", method, METHODS)
    check_choice("border", border, BORDERS)
    block_size = check_int("block_size", block_size, low=1, high=MAX_BLOCK_SIZE)
    offset = check_finite("offset", offset)
    threshold = check_finite("threshold", threshold)
    threads = resolve_num_threads(num_threads)

    images = np.asarray(images)  # a subclass (memmap, masked array) as a plain view
    if images.size == 0:
        return np.empty(images.shape, np.int8)
    batch = images if images.ndim == 4 else images[..., np.newaxis]
    _check_opencv_sizes(batch.shape, method, block_size)
    states = empty(batch.shape, np.int8, "images", f"{len(batch)} images", _ADVICE)
    if method == "global":
        _global(batch, threshold, states)
    elif method == "local_mean":
        _local_mean(batch, block_size, offset, border, threads, states)
    else:
        _otsu(batch, states)
    return states.reshape(images.shape)


def _check_opencv_sizes(shape: tuple[int, ...], method: str, k: int) -> None:
    """ValueError for a (B, H, W, C) batch whose images OpenCV's C ints cannot describe
    (``global`` works in pieces of any image)."""
    _, height, width, n_channels = shape
    if method == "local_mean":
        fits = height + k - 1 <= _CV_INT_MAX and width * min(n_channels, _CV_MAX_CHANNELS) <= _CV_INT_MAX
        rule = "H + block_size - 1 and W * C below 2**31"
    elif method == "otsu":
        fits, rule = height * width <= _CV_INT_MAX, "H * W below 2**31"
    else:
        return
    if not fits:
        raise ValueError(f"images: expected an image OpenCV can hold ({method}: {rule}), got shape {shape}")


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


def _global(batch: np.ndarray, threshold: float, states: np.ndarray) -> None:
    """``global`` states of a (B, H, W, C) batch into ``states`` via a 256-entry lookup
    table, by blocks of at most about a million values (images, rows of one image or
    pixels of one row; copied when strided), in pieces that OpenCV's int sizes hold."""
    levels = 2 * np.arange(256) / 255 - 1
    table = np.where(levels > threshold, 1, -1).astype(np.int8)
    for block in _blocks(batch.shape):
        source = np.ascontiguousarray(batch[block]).reshape(1, -1)
        target = states[block].reshape(1, -1)  # a view: states is C-contiguous
        for first in range(0, source.shape[1], _PIECE):
            piece = slice(first, first + _PIECE)
            cv2.LUT(source[:, piece], table, dst=target[:, piece])


def _blocks(shape: tuple[int, ...]) -> Iterator[tuple[slice, ...]]:
    """Indices cutting a (B, H, W, C) array into contiguous blocks of about _PIECE values:
    groups of images, else groups of rows of one image, else groups of pixels of one row."""
    n_images, height, width, n_channels = shape
    row = width * n_channels
    if height * row <= _PIECE:
        step = _PIECE // (height * row)
        yield from ((slice(b, b + step),) for b in range(0, n_images, step))
    elif row <= _PIECE:
        step = _PIECE // row
        for b in range(n_images):
            yield from ((slice(b, b + 1), slice(y, y + step)) for y in range(0, height, step))
    else:
        step = max(1, _PIECE // n_channels)
        for b in range(n_images):
            for y in range(height):
                yield from (
                    (slice(b, b + 1), slice(y, y + 1), slice(x, x + step)) for x in range(0, width, step)
                )


def _local_mean(
    batch: np.ndarray, k: int, offset: float, border: str, threads: int, states: np.ndarray
) -> None:
    """``local_mean`` states of a (B, H, W, C) batch into ``states``.

    The batch is split among threads; each thread takes its images a chunk at a
    time, pads their rows per image into a reused buffer, and views the chunk as
    one tall image whose k x k window sums S come from a single box filter (each
    image's own padding keeps windows from crossing images; OpenCV pads the
    columns). A pixel p is -1 iff S >= limits[p].
    """
    n_images, height, width, n_channels = batch.shape
    if n_channels > _CV_MAX_CHANNELS:
        for c in range(0, n_channels, _CV_MAX_CHANNELS):
            part = slice(c, c + _CV_MAX_CHANNELS)
            _local_mean(batch[..., part], k, offset, border, threads, states[..., part])
        return
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
    # Each worker's buffers: padded pixels and off mask (bytes), window sums and limits.
    buffers = min(per_chunk, n_images) * padded_height * width * n_channels * (2 + 2 * limits.itemsize)
    check_memory("images", f"{n_images} images", states.nbytes + workers * buffers, _ADVICE)
    bounds = np.linspace(0, n_images, workers + 1).astype(int)
    parts = [range(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
    if workers == 1:
        work(parts[0])
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(work, parts))


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


def _otsu(batch: np.ndarray, states: np.ndarray) -> None:
    """``otsu`` states of a (B, H, W, C) batch into ``states``, one cv2.threshold call per
    image channel, on contiguous copies of a group of images at a time.

    Equal to OpenCV by construction. A vectorised replica of OpenCV's criterion
    (bit-exact only with its sequential float recurrence over the 256 bins) was
    about 7x slower than these calls.
    """
    n_images, height, width, n_channels = batch.shape
    group = max(1, _PIECE // batch[0].size)
    for start in range(0, n_images, group):
        images = batch[start : start + group]
        planes = np.ascontiguousarray(np.moveaxis(images, 3, 1)).reshape(-1, height, width)
        off = np.empty(planes.shape, np.uint8)
        for plane, plane_off in zip(planes, off):
            # Writes plane_off in place: 255 (state -1) where p <= the Otsu threshold, else 0.
            cv2.threshold(plane, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU, dst=plane_off)
        per_channel = np.moveaxis(off.reshape(len(images), n_channels, height, width), 1, 3)
        np.bitwise_or(per_channel, 1, out=states[start : start + group].view(np.uint8))
