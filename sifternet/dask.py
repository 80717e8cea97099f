"""Purify a chunked Dask array of images (optional extra ``dask``).

``purify(images, purifier)`` maps :meth:`SifterNet.purify` over the blocks of a
``dask.array`` chunked along the batch axis, each block keyed by its global start, so the
result equals the one-shot ``purifier.purify(images.compute())`` bit for bit for any
chunking, scheduler or cluster.

Threads: each task runs the kernel with ``num_threads`` threads (default 1). Dask already
gives one task per worker thread, and its process workers start with
``OMP_NUM_THREADS=1``; a threaded worker running an all-cores kernel in every thread would
oversubscribe the machine. Recommended layouts: process workers with one thread each
(``LocalCluster(n_workers=cores, threads_per_worker=1)``), or one threaded worker with
``nthreads=cores`` (the kernel releases the GIL); keep ``num_threads=1`` in both.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import dask
import dask.array as da
import numpy as np
from dask.base import tokenize

from sifternet._threads import resolve_num_threads
from sifternet.purifiers import Purifier, check_fitted

__all__ = ["purify"]


def purify(images: da.Array, purifier: Purifier, *, num_threads: Optional[int] = 1) -> da.Array:
    """Purified ``images`` as a lazy uint8 ``dask.array`` of the same shape and chunks.

    Parameters
    ----------
    images : dask.array.Array
        uint8 batch (B, H, W) or (B, H, W, C) of the purifier's fitted image shape. Chunks
        along the batch axis are kept; the image axes are brought to one chunk each.
    purifier : SifterNet
        A fitted purifier. It enters the task graph once (one key that every block task
        depends on), so each worker receives it once, not with every task.
    num_threads : int or None
        Kernel threads per task (see the module notes); ``None`` follows
        ``OMP_NUM_THREADS``, ``-1`` all cores. Results never depend on it.

    Returns
    -------
    dask.array.Array
        Image ``b`` is purified with global index ``b``, exactly as
        ``purifier.purify(images.compute())`` would purify it.
    """
    if not isinstance(images, da.Array):
        raise TypeError(f"images: expected a dask.array.Array, got {type(images).__name__}")
    shape = check_fitted(purifier).image_shape
    if images.dtype != np.uint8:
        raise TypeError(f"images: expected dtype uint8, got {images.dtype}")
    if images.shape[1:] != shape:
        raise ValueError(
            f"images: expected a batch (B, {', '.join(map(str, shape))}) for this purifier, "
            f"got shape {images.shape}"
        )
    if any(math.isnan(size) for size in images.chunks[0]):
        raise ValueError(
            "images: the batch axis has unknown chunk sizes, so the blocks' global indices "
            "are unknown; call images.compute_chunk_sizes() first"
        )
    resolve_num_threads(num_threads)  # validates before any task runs
    images = images.rechunk({axis: -1 for axis in range(1, images.ndim)})
    model = dask.delayed(purifier, name=f"sifternet-model-{tokenize(purifier.to_bytes())}", traverse=False)
    return images.map_blocks(
        _purify_block,  # type: ignore[arg-type]  # dask's annotation of map_blocks is Array-only
        model,
        num_threads=num_threads,
        dtype=np.uint8,
        meta=np.empty((0,) * images.ndim, np.uint8),
        token="sifternet-purify",
    )


def _purify_block(
    block: np.ndarray, purifier: Purifier, num_threads: Optional[int], block_info: Any = None
) -> np.ndarray:
    """One block, keyed by its first image's position in the whole array."""
    start = block_info[0]["array-location"][0][0]
    return purifier.purify(block, index_offset=start, num_threads=num_threads)
