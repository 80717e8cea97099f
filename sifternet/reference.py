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


def thumbnails(images: np.ndarray, side: int) -> np.ndarray:
    """Block sums (B, side * side * C) of images (B, H, W, C): pixel (y, x) falls in block
    (y * side // H, x * side // W)."""
    n_images, height, width, n_channels = images.shape
    out = np.zeros((n_images, side, side, n_channels), np.int64)
    for y in range(height):
        for x in range(width):
            out[:, y * side // height, x * side // width] += images[:, y, x]
    return out.reshape(n_images, -1)


def _blobs(mask: np.ndarray) -> list[list[tuple[int, int]]]:
    """The 8-connected components of a (H, W) bool mask, as pixel lists."""
    height, width = mask.shape
    seen = np.zeros_like(mask)
    blobs = []
    for y0 in range(height):
        for x0 in range(width):
            if not mask[y0, x0] or seen[y0, x0]:
                continue
            seen[y0, x0] = True
            blob, todo = [], [(y0, x0)]
            while todo:
                y, x = todo.pop()
                blob.append((y, x))
                for ny in range(max(0, y - 1), min(height, y + 2)):
                    for nx in range(max(0, x - 1), min(width, x + 2)):
                        if mask[ny, nx] and not seen[ny, nx]:
                            seen[ny, nx] = True
                            todo.append((ny, nx))
            blobs.append(blob)
    return blobs


def nearest_repair(
    images: np.ndarray,
    seeds: np.ndarray,
    *,
    side: int,
    neighbours: int,
    cuts: list[int],
    all_seed_levels: int,
    agreement: float,
    tolerance: int,
    max_area: int,
    grow: int,
    fill_size: int,
    window: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Nearest-seed repair of images (B, H, W, C) with seeds (P, H, W, C), uint8 (the
    kernel's arguments, but the seeds' 3x3 ranges and thumbnails are computed here):
    (repaired images, holes (B, H, W) bool, most marked pixels (the holes before the
    support blobs grow) in a window x window square (B,), the largest sum in any such
    square of each pixel's largest change in a channel (B,)). The first ``all_seed_levels``
    cuts gate with the votes of every seed, the others with the nearest seeds' field."""
    n_images, height, width, n_channels = images.shape
    pad = np.pad(seeds.astype(np.int64), ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    windows = [pad[:, dy : dy + height, dx : dx + width] for dy in range(3) for dx in range(3)]
    low, high = np.min(windows, axis=0), np.max(windows, axis=0)
    seed_thumbs = thumbnails(seeds, side)
    out = images.copy()
    holes = np.zeros((n_images, height, width), bool)
    scores = np.zeros(n_images, np.int64)
    moved = np.zeros(n_images, np.int64)
    for b in range(n_images):
        image = images[b].astype(np.int64)
        thumb = thumbnails(images[b : b + 1], side)[0]
        distances = [int(((thumb - t) ** 2).sum()) for t in seed_thumbs]
        memories = sorted(range(len(seeds)), key=lambda j: (distances[j], j))[:neighbours]
        hole = holes[b]
        for cut in cuts[:all_seed_levels]:  # every seed votes with the same weight
            s = np.where(image > cut, 1, -1)
            votes = np.where(seeds.astype(np.int64) > cut, 1, -1).sum(axis=0)
            hole |= (-s * votes > agreement * len(seeds)).any(axis=2)
        for cut in cuts[all_seed_levels:]:
            s = np.where(image > cut, 1, -1)
            for c in range(n_channels):
                xs = [np.where(seeds[j, :, :, c].astype(np.int64) > cut, 1, -1) for j in memories]
                overlaps = [int((x * s[:, :, c]).sum()) for x in xs]
                field = sum(m * x for m, x in zip(overlaps, xs))
                mass = sum(abs(m) for m in overlaps)
                hole |= -s[:, :, c] * field > agreement * mass
        marked = hole.copy()
        if tolerance >= 0:
            supported = np.zeros((height, width), bool)
            for j in memories:
                inside = (image >= low[j] - tolerance) & (image <= high[j] + tolerance)
                supported |= inside.all(axis=2)
            for blob in _blobs(~supported):
                if len(blob) <= max_area:
                    for y, x in blob:
                        marked[y, x] = True
                        hole[max(0, y - grow) : y + grow + 1, max(0, x - grow) : x + grow + 1] = True
        known = ~hole
        before, after = fill_size // 2, fill_size - 1 - fill_size // 2
        while not known.all():
            filled = {}
            for y, x in zip(*np.nonzero(~known)):
                window_known = known[max(0, y - before) : y + after + 1, max(0, x - before) : x + after + 1]
                count = int(window_known.sum())
                if count:
                    values = out[b, max(0, y - before) : y + after + 1, max(0, x - before) : x + after + 1]
                    total = values[window_known].astype(np.int64).sum(axis=0)
                    filled[y, x] = (total + count // 2) // count
            if not filled:
                break
            for (y, x), value in filled.items():
                out[b, y, x] = value
                known[y, x] = True
        w = min(window, height, width)
        corners = [(y, x) for y in range(height - w + 1) for x in range(width - w + 1)]
        scores[b] = max(int(marked[y : y + w, x : x + w].sum()) for y, x in corners)
        change = np.abs(out[b].astype(np.int64) - images[b]).max(axis=2)
        moved[b] = max(int(change[y : y + w, x : x + w].sum()) for y, x in corners)
    return out, holes, scores, moved
