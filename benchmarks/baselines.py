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


def neuron_draws(n, steps, seed, indices, channel=0, channels=1):
    """The neuron each step visits, (steps, B): the kernel's stream of each row's image
    index and channel, r_t = mix(key + t), and i_t = ((r_t >> 32) n) >> 32."""
    seed_mix = mix(np.array([seed], np.uint64))
    keys = mix(seed_mix ^ (np.asarray(indices, np.uint64) * np.uint64(channels) + np.uint64(channel)))
    draws = mix(keys[None, :] + np.arange(steps, dtype=np.uint64)[:, None])
    return (((draws >> np.uint64(32)) * np.uint64(n)) >> np.uint64(32)).astype(np.intp)


def numpy_recall(patterns, states, *, steps, seed, indices, channel=0, channels=1):
    """Hebbian random-order recall in the overlap form, vectorised across the batch in
    NumPy: the overlaps m = s Xi^T of every row at once (B, P), then per step, for all rows
    together, one gather of the visited neuron's pattern column xi_i (B, P), the field
    h_i = xi_i . m - P s_i (the kernel's Hebbian field, self-coupling removed), the rule
    s_i <- +1 if h_i >= 0 else -1, and the rank-1 update m += 2 s_i xi_i of the rows whose
    neuron flipped. All values are integers held in float32 (float64 when P N >= 2^24),
    exact because |every partial sum| <= P N (float32 because this loop runs about twice
    as fast on it as on int32). Returns the final states, int8."""
    p, n = patterns.shape
    exact = np.float32 if p * n < 2**24 else np.float64
    columns = np.ascontiguousarray(patterns.T, dtype=exact)  # (N, P): row i is xi_i
    s = states.astype(exact)  # (B, N), a copy
    overlaps = s @ columns  # (B, P)
    flat = s.reshape(-1)
    starts = np.arange(len(s)) * n
    field = np.empty(len(s), exact)
    for i in neuron_draws(n, steps, seed, indices, channel, channels):
        xi = columns[i]  # (B, P)
        at = starts + i
        now = flat[at]
        np.einsum("bp,bp->b", xi, overlaps, out=field)  # h_i + P s_i
        up = field >= p * now  # h_i >= 0
        flipped = np.flatnonzero(up != (now > 0))
        if flipped.size:
            new = np.where(up[flipped], 1, -1).astype(exact)
            overlaps[flipped] += (2 * new)[:, None] * xi[flipped]
            flat[at[flipped]] = new
    return s.astype(np.int8)


def per_image_local_mean(images: np.ndarray, block_size: int) -> np.ndarray:
    """local_mean binarisation one image at a time with OpenCV (zero padding, exact
    integer comparison k^2 p > S), channels split and merged per image."""
    k2 = block_size * block_size
    out = np.empty(images.shape, np.int8)
    for b, image in enumerate(images):
        planes = []
        for plane in cv2.split(image):
            sums = cv2.boxFilter(
                plane, cv2.CV_32S, (block_size, block_size), normalize=False, borderType=cv2.BORDER_CONSTANT
            )
            planes.append(np.where(k2 * plane.astype(np.int32) > sums, 1, -1).astype(np.int8))
        out[b] = cv2.merge(planes)
    return out


def python_loop_recall(weights, states, *, steps, seed, indices):
    """The style of the popular NumPy Hopfield code: one image at a time, one neuron at a
    time, h_i = W_i . s with float weights (same streams, so the same result)."""
    out = states.astype(np.float64)
    for row, visits in zip(out, neuron_draws(weights.shape[0], steps, seed, indices).T):
        for i in visits:
            row[i] = 1.0 if weights[i] @ row >= 0 else -1.0
    return out.astype(np.int8)
