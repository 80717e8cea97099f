"""A slow, plain NumPy implementation of docs/method.md: the tests' oracle.

It never imports the C++ kernel, so that it stays an independent check. Everything is
written for clarity: Python loops over rows and steps, dense weights only.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

MASK = (1 << 64) - 1


def mix(z: int) -> int:
    """SplitMix64's output for state z (increment included), on Python ints."""
    z = (z + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def stream_key(seed: int, index: int, channels: int, channel: int) -> int:
    """Key of the stream of channel ``channel`` (of ``channels``) of image ``index``."""
    return mix(mix(seed) ^ ((index * channels + channel) & MASK))


class Stream:
    """The draws r_t = mix(key + t), t = 0, 1, ..., of one (image, channel)."""

    def __init__(self, key: int) -> None:
        self.key, self.t = key, 0

    def below(self, n: int) -> int:
        """The next draw as an integer in [0, n)."""
        r = mix((self.key + self.t) & MASK)
        self.t += 1
        return ((r >> 32) * n) >> 32

    def permutation(self, n: int) -> list[int]:
        """Fisher-Yates shuffle of 0..n-1, one draw per swap from k = n-1 down to 1."""
        perm = list(range(n))
        for k in range(n - 1, 0, -1):
            j = self.below(k + 1)
            perm[k], perm[j] = perm[j], perm[k]
        return perm


def hebbian_weights(patterns: np.ndarray) -> np.ndarray:
    """N times the Hebbian W: sum_mu xi^mu xi^mu^T with zero diagonal, int64."""
    xi = patterns.astype(np.int64)
    weights = xi.T @ xi
    np.fill_diagonal(weights, 0)
    return weights


def storkey_weights(patterns: np.ndarray) -> np.ndarray:
    """Storkey (1997): per pattern W_ij += (xi_i xi_j - xi_i h_ji - h_ij xi_j) / N with
    h_ij = sum_{k != i, j} W_ik xi_k; the diagonal stays zero."""
    n = patterns.shape[1]
    weights = np.zeros((n, n))
    for xi in patterns.astype(np.float64):
        local = weights @ xi  # h_i = sum_k W_ik xi_k (W_ii = 0)
        h = local[:, None] - weights * xi[None, :]  # h_ij = h_i - W_ij xi_j
        weights = weights + (np.outer(xi, xi) - xi[:, None] * h.T - h * xi[None, :]) / n
        np.fill_diagonal(weights, 0.0)
    return weights


def projection_weights(patterns: np.ndarray) -> np.ndarray:
    """Pseudo-inverse rule: W = (1/N) Xi^T C^+ Xi, C = (1/N) Xi Xi^T, zero diagonal."""
    xi = patterns.astype(np.float64)
    n = xi.shape[1]
    weights = xi.T @ np.linalg.pinv(xi @ xi.T / n) @ xi / n
    np.fill_diagonal(weights, 0.0)
    return weights


class Recalled(NamedTuple):
    """Per-row results of :func:`recall`."""

    states: np.ndarray
    flips: np.ndarray
    steps: np.ndarray
    converged: np.ndarray
    energy: np.ndarray


def recall(
    weights: np.ndarray,
    states: np.ndarray,
    *,
    steps: Optional[int],
    order: str = "random",
    seed: int = 0,
    indices: Optional[np.ndarray] = None,
    channel: int = 0,
    channels: int = 1,
    thresholds: Optional[np.ndarray] = None,
    margin: float = 0.0,
    agreement: float = 0.0,
    patterns: Optional[np.ndarray] = None,
    max_sweeps: int = 100,
) -> Recalled:
    """Asynchronous recall with dense ``weights``.

    Integer weights are N times W (the Hebbian integer field; thresholds and margin are
    scaled by N to match), float weights are W. With a ``margin`` a neuron changes only
    when its field is beyond theta by more than the margin against its state; with an
    ``agreement`` kappa (Hebbian ``patterns`` needed) by kappa * sum_mu |m_mu| more. Each
    field is the row's sum in index order minus
    W_ii s_i, so that float sums round exactly as the kernel's do.
    """
    n = weights.shape[0]
    integral = weights.dtype.kind in "iu"
    scale = float(n) if integral else 1.0
    theta = None if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    rows = np.arange(len(states)) if indices is None else np.asarray(indices)

    def field(s: np.ndarray, i: int) -> float:
        if integral:
            return int(weights[i].astype(np.int64) @ s) - int(weights[i, i]) * int(s[i])
        return float(np.cumsum(weights[i] * s)[-1]) - float(weights[i, i]) * s[i]

    def wants(s: np.ndarray, i: int) -> int:
        h = field(s, i)
        if theta is None and margin == 0.0 and agreement == 0.0:
            return 1 if h >= 0 else -1
        centre = 0.0 if theta is None else theta[i] * scale
        extra = 0.0
        if agreement > 0.0:
            assert patterns is not None, "the agreement gate needs the patterns"
            overlaps = patterns.astype(np.int64) @ s.astype(np.int64)
            extra = agreement * float(np.abs(overlaps).sum())
        if s[i] > 0:  # +1 stays unless the field is below theta by more than the gates
            return -1 if float(h) < (centre - margin * scale) - extra else 1
        return 1 if float(h) >= (centre + margin * scale) + extra else -1

    def stable(s: np.ndarray) -> bool:
        return all(wants(s, i) == s[i] for i in range(n))

    out = np.array(states, dtype=np.int8, copy=True)
    count = len(out)
    flips = np.zeros(count, np.int64)
    done = np.zeros(count, np.int64)
    converged = np.zeros(count, bool)
    energy = np.zeros(count)
    for b in range(count):
        s = out[b].astype(np.int64) if integral else out[b].astype(np.float64)
        stream = Stream(stream_key(seed, int(rows[b]), channels, channel))

        def visit(i: int) -> int:
            new = wants(s, i)
            if new == s[i]:
                return 0
            s[i] = new
            return 1

        def attempts(count: int) -> int:
            if order == "sweep":
                return sum(visit(i) for i in stream.permutation(n)[:count])
            return sum(visit(stream.below(n)) for _ in range(count))

        if steps is not None:
            left = steps
            while left > 0:
                count_now = min(n, left) if order == "sweep" else left
                flips[b] += attempts(count_now)
                left -= count_now
            done[b] = steps
            converged[b] = stable(s)
        else:
            for _ in range(max_sweeps):
                changed = attempts(n)
                flips[b] += changed
                done[b] += n
                if changed == 0 and (order == "sweep" or stable(s)):
                    converged[b] = True
                    break
        quadratic = sum(field(s, i) * s[i] for i in range(n))
        energy[b] = -0.5 * float(quadratic) / scale + (0.0 if theta is None else float(theta @ s))
        out[b] = s.astype(np.int8)
    return Recalled(out, flips, done, converged, energy)


def repair(
    output: str,
    images: np.ndarray,
    binarised: np.ndarray,
    recalled: np.ndarray,
    fill_size: int,
    joint_channels: bool = False,
) -> np.ndarray:
    """The output modes of ``sifternet.repair.repair`` (docs/method.md, Output modes), one hole at a time."""
    binary = np.where(recalled > 0, 255, 0).astype(np.uint8)
    if output == "binary":
        return binary
    holes = recalled != binarised
    if joint_channels:
        holes = np.broadcast_to(holes.any(axis=-1, keepdims=True), holes.shape)
    out = images.copy()
    before, after = fill_size // 2, fill_size - 1 - fill_size // 2
    for b, y, x, c in np.argwhere(holes):
        if output == "restore":
            out[b, y, x, c] = binary[b, y, x, c]
            continue
        window = (b, slice(max(0, y - before), y + after + 1), slice(max(0, x - before), x + after + 1), c)
        values = images[window][~holes[window]].astype(np.int64)
        count = len(values)
        out[b, y, x, c] = (values.sum() + count // 2) // count if count else binary[b, y, x, c]
    return out
