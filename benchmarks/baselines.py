"""Baselines the benchmarks measure sifternet against, in the same run.

Each computes exactly what sifternet computes (same streams, same rules), so that the
benchmarks can check equality before they compare speed.
"""

from __future__ import annotations

import cv2
import numpy as np

MIX_ADD = np.uint64(0x9E3779B97F4A7C15)
MIX_MUL1 = np.uint64(0xBF58476D1CE4E5B9)
MIX_MUL2 = np.uint64(0x94D049BB133111EB)


def mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's output, vectorised over a uint64 array (wrapping arithmetic)."""
    z = z + MIX_ADD
    z = (z ^ (z >> np.uint64(30))) * MIX_MUL1
    z = (z ^ (z >> np.uint64(27))) * MIX_MUL2
    return z ^ (z >> np.uint64(31))


def numpy_recall(patterns, states, *, steps, seed, indices, channel=0, channels=1):
    """Hebbian random-order recall vectorised across the batch in NumPy: the overlap form,
    one step of every row at a time. Returns the final states."""
    p, n = patterns.shape
    columns = patterns.T.astype(np.int32)  # (N, P)
    s = states.astype(np.int32)
    overlaps = s @ patterns.T.astype(np.int32)  # (B, P)
    seed_mix = mix(np.array([seed], np.uint64))
    keys = mix(seed_mix ^ (indices.astype(np.uint64) * np.uint64(channels) + np.uint64(channel)))
    rows = np.arange(len(s))
    for t in range(steps):
        r = mix(keys + np.uint64(t))
        i = (((r >> np.uint64(32)) * np.uint64(n)) >> np.uint64(32)).astype(np.intp)
        xi = columns[i]  # (B, P)
        field = np.einsum("bp,bp->b", xi, overlaps) - p * s[rows, i]
        new = np.where(field >= 0, 1, -1)
        delta = new - s[rows, i]  # 0, or +-2 on a flip
        overlaps += delta[:, None] * xi
        s[rows, i] = new
    return s.astype(np.int8)


def per_image_local_mean(images: np.ndarray, block_size: int) -> np.ndarray:
    """local_mean binarisation one image at a time with OpenCV (zero padding, exact
    integer comparison k^2 p > S), channels split and merged per image."""
    k2 = block_size * block_size
    out = np.empty(images.shape, np.int8)
    for b, image in enumerate(images):
        planes = []
        for plane in cv2.split(image):
            sums = cv2.boxFilter(plane, cv2.CV_32S, (block_size, block_size), normalize=False,
                                 borderType=cv2.BORDER_CONSTANT)
            planes.append(np.where(k2 * plane.astype(np.int32) > sums, 1, -1).astype(np.int8))
        out[b] = cv2.merge(planes)
    return out


def python_loop_recall(weights, states, *, steps, seed, indices):
    """The style of the popular NumPy Hopfield code: one image at a time, one neuron at a
    time, h_i = W_i . s with float weights (same streams, so the same result)."""
    n = weights.shape[0]
    out = states.astype(np.float64)
    seed_mix = mix(np.array([seed], np.uint64))
    for row, index in zip(out, indices):
        key = mix(seed_mix ^ np.array([index], np.uint64))
        draws = mix(key + np.arange(steps, dtype=np.uint64))
        for i in ((draws >> np.uint64(32)) * np.uint64(n)) >> np.uint64(32):
            row[i] = 1.0 if weights[i] @ row >= 0 else -1.0
    return out.astype(np.int8)
