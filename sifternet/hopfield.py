"""``HopfieldNetwork``: the thin, typed face of the C++ kernel (docs/method.md, Recall)."""

from __future__ import annotations

import numbers
import operator
from dataclasses import dataclass
from typing import Any, Literal, Optional, Union, cast, get_args

import numpy as np

from sifternet import _core
from sifternet._checks import ALWAYS_FITS, check_choice, check_fraction, check_int, check_memory
from sifternet._threads import resolve_num_threads

Rule = Literal["hebbian", "storkey", "projection"]
Order = Literal["random", "sweep"]
Representation = Literal["auto", "dense", "overlap"]

RULES: tuple[str, ...] = get_args(Rule)
ORDERS: tuple[str, ...] = get_args(Order)
REPRESENTATIONS: tuple[str, ...] = get_args(Representation)

#: Dense weights larger than this are refused: use the overlap form or fewer neurons.
MAX_DENSE_BYTES = 4 << 30

_INDEX_END = 2**64  # global indices are in [0, 2**64)
_INT64_END = 2**63  # the kernel's counts are int64
_ADVICE = "recall it in chunks: recall(states[i:j], index_offset=i) gives each row its one-shot result"


@dataclass(frozen=True)
class RecallResult:
    """What :meth:`HopfieldNetwork.recall` returns, one entry per state row.

    Attributes
    ----------
    states : (B, N) int8 in {-1, +1}, the recalled states.
    flips : (B,) int64, neurons that changed sign along the run.
    steps : (B,) int64, single-neuron update attempts made.
    converged : (B,) bool, whether the final state is a fixed point; ``None`` when it was
        not computed (fixed ``steps`` with ``stats=False``).
    energy : (B,) float64, E(s) = -1/2 s^T W s + theta^T s; ``None`` with ``stats=False``.
    """

    states: np.ndarray
    flips: np.ndarray
    steps: np.ndarray
    converged: Optional[np.ndarray]
    energy: Optional[np.ndarray]


def global_indices(count: int, index_offset: int, indices: Any) -> np.ndarray:
    """The global index of every row (it keys the row's random streams), as uint64.

    One rule for both ways of giving them: every index is in [0, 2**64), so
    ``index_offset + count <= 2**64``; Python ints beyond int64 are taken as such.
    """
    offset = operator.index(index_offset)
    if indices is None:
        if offset < 0 or offset + max(count, 1) > _INDEX_END:
            raise _index_range_error("index_offset", offset, offset + count - 1)
        return np.arange(count, dtype=np.uint64) + np.uint64(offset)
    if offset != 0:
        raise ValueError("give either indices or index_offset, not both")
    idx = np.asarray(indices)
    if idx.dtype.kind not in "iu":
        # Python ints that NumPy holds inexactly (float64) or not at all (object): as such.
        exact = np.asarray(indices, dtype=object) if idx.dtype.kind in "fO" else idx
        if exact.dtype != object or not all(_is_int(value) for value in exact.flat):
            raise TypeError(f"indices: expected an integer array, got dtype {idx.dtype}")
        idx = exact
    if idx.shape != (count,):
        raise ValueError(f"indices: expected shape ({count},), one per row, got {idx.shape}")
    if count and (idx.dtype.kind != "u" or idx.dtype.itemsize > 8):
        low, high = int(idx.min()), int(idx.max())
        if low < 0 or high >= _INDEX_END:
            raise _index_range_error("indices", low, high)
    return idx.astype(np.uint64)


def _is_int(value: Any) -> bool:
    return type(value) is int or (isinstance(value, numbers.Integral) and not isinstance(value, bool))


def _kernel_int(name: str, value: Any) -> int:
    """``value`` as an int that the kernel's int64 holds (the kernel checks its range)."""
    return check_int(name, value, low=-_INT64_END, high=_INT64_END - 1)


def _index_range_error(name: str, low: int, high: int) -> ValueError:
    span = f"{low}..{high}" if high > low else str(low)
    return ValueError(f"{name}: expected global indices in [0, 2**64), got {span}")


class HopfieldNetwork:
    """A binary Hopfield network with asynchronous zero-temperature recall.

    Parameters
    ----------
    num_threads : int or None
        Threads of the kernel: ``None`` follows ``OMP_NUM_THREADS`` (capped at the usable
        cores), ``-1`` all cores. Threads split the batch; results never depend on them.

    Notes
    -----
    A fitted network is read-only during recall: calls from several Python threads at once
    are safe, and the GIL is released while the kernel runs.
    """

    def __init__(self, *, num_threads: Optional[int] = None) -> None:
        resolve_num_threads(num_threads)
        self.num_threads = num_threads
        self._patterns: Optional[np.ndarray] = None
        self._rule: Rule = "hebbian"
        self._weights: Optional[np.ndarray] = None  # int32 N*W (hebbian) or float64 W

    # -- learning -------------------------------------------------------------------
    def fit(self, patterns: np.ndarray, *, rule: Rule = "hebbian") -> HopfieldNetwork:
        """Memorise ``patterns`` (P, N) int8 in {-1, +1} with a learning rule.

        ``hebbian`` (the paper, exact integers), ``storkey`` or ``projection``
        (pseudo-inverse; both float64, higher capacity). Returns ``self``.
        """
        check_choice("rule", rule, RULES)
        if isinstance(patterns, np.ndarray) and patterns.dtype == np.int8 and patterns.ndim == 2:
            copies = 1 + (not patterns.flags.c_contiguous)  # the kernel's contiguous copy, then ours
            check_memory(
                "patterns",
                f"{len(patterns)} patterns",
                copies * patterns.size,
                "fit fewer or smaller patterns",
            )
        stored = _core.check_patterns(patterns).copy()
        stored.flags.writeable = False
        threads = resolve_num_threads(self.num_threads)
        if rule == "hebbian":
            weights = None  # built on demand: the overlap form needs none
        elif rule == "storkey":
            self._check_dense_size(stored.shape[1], 8)
            weights = _core.storkey_weights(stored, threads)
        else:
            self._check_dense_size(stored.shape[1], 8)
            weights = _projection_weights(stored)
        self._patterns, self._rule, self._weights = stored, rule, weights
        return self

    @staticmethod
    def _check_dense_size(n: int, itemsize: int) -> None:
        size = n * n * itemsize
        if size > MAX_DENSE_BYTES:
            raise MemoryError(
                f"dense weights for N={n} would take {size / 2**30:.1f} GiB (limit "
                f"{MAX_DENSE_BYTES / 2**30:.0f} GiB): use rule='hebbian' with "
                "representation='overlap', which needs no N x N matrix"
            )

    # -- properties -----------------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`fit` has been called."""
        return self._patterns is not None

    def _fitted_patterns(self) -> np.ndarray:
        if self._patterns is None:
            raise RuntimeError("this HopfieldNetwork is not fitted yet: call fit(patterns)")
        return self._patterns

    @property
    def patterns(self) -> np.ndarray:
        """The memorised patterns (P, N) int8, read-only."""
        return self._fitted_patterns()

    @property
    def n_neurons(self) -> int:
        """N, the number of neurons."""
        return int(self._fitted_patterns().shape[1])

    @property
    def n_patterns(self) -> int:
        """P, the number of memorised patterns."""
        return int(self._fitted_patterns().shape[0])

    @property
    def rule(self) -> Rule:
        """The learning rule of the last :meth:`fit`."""
        return self._rule

    @property
    def weights(self) -> np.ndarray:
        """The dense weight matrix W (N, N) float64 of docs/method.md (Hebbian: (1/N) Xi^T Xi)."""
        weights = self._dense_weights()
        return weights / self.n_neurons if self._rule == "hebbian" else weights

    def _dense_weights(self) -> np.ndarray:
        """What the dense kernel takes: int32 N*W (hebbian, built once) or float64 W."""
        if self._weights is None:
            patterns = self._fitted_patterns()
            self._check_dense_size(patterns.shape[1], 4)
            weights = _core.hebbian_weights(patterns, resolve_num_threads(self.num_threads))
            weights.flags.writeable = False
            self._weights = weights
        return self._weights

    def representation_for(self, steps: Optional[int]) -> Literal["dense", "overlap"]:
        """The cheaper field representation for a recall of ``steps`` attempts per row.

        Measured per row (benchmarks/REPORT.md): the overlap form (Hebbian only) costs
        about P (steps + N/32) and dense weights about 1.4 N steps, since the overlap
        form's int16 steps vectorise twice as wide; ``None`` counts as 4 sweeps.
        """
        if self._rule != "hebbian":
            return "dense"
        n, p = self.n_neurons, self.n_patterns
        work = 4 * n if steps is None else steps
        return "overlap" if p * (work + n / 32) <= 1.4 * work * n else "dense"

    # -- recall ---------------------------------------------------------------------
    def recall(
        self,
        states: np.ndarray,
        *,
        steps: Optional[int] = None,
        order: Order = "random",
        seed: int = 0,
        index_offset: int = 0,
        indices: Optional[np.ndarray] = None,
        channel: int = 0,
        channels: int = 1,
        thresholds: Optional[np.ndarray] = None,
        margin: float = 0.0,
        agreement: float = 0.0,
        max_sweeps: int = 100,
        representation: Representation = "auto",
        stats: bool = True,
        num_threads: Optional[int] = None,
    ) -> RecallResult:
        """Relax ``states`` (B, N) int8 in {-1, +1} toward the memories.

        Parameters
        ----------
        steps : int or None
            Single-neuron update attempts per row (the paper's RemoveTime). ``None`` runs
            sweeps of N attempts until a quiet sweep reaches a fixed point, at most
            ``max_sweeps``.
        order : {"random", "sweep"}
            ``random`` draws each neuron uniformly with replacement (the paper);
            ``sweep`` visits a fresh random permutation of all neurons per sweep.
        seed, index_offset, indices, channel, channels
            Key the random stream of each row: row b uses the global index
            ``index_offset + b`` (or ``indices[b]``), so chunked or shuffled runs give the
            one-shot result.
        thresholds : (N,) float64, optional
            theta in the units of W s; zero by default.
        margin : float
            Confidence gate in [0, 1), a fraction of P (the largest Hebbian field, every
            memory agreeing): a neuron changes only when its field is beyond theta by
            more than g = ``margin`` * P against it (+1 stays unless h < theta - g; -1
            turns +1 only if h >= theta + g). 0 is the plain rule; energy never
            increases either way. :class:`SifterNet`'s ``margin`` is the same fraction.
        agreement : float
            Agreement gate in [0, 1) (Hebbian, overlap form): a neuron changes only when
            its field is beyond theta +- margin by more than ``agreement`` times the vote
            mass sum_mu |m_mu| / N, i.e. when the memories agree strongly against it.
        representation : {"auto", "dense", "overlap"}
            Field representation (bit-identical results); ``auto`` picks the cheaper one.
        stats : bool
            Compute energies and, for fixed ``steps``, the fixed-point test (O(N P) or
            O(N^2) per row more).
        num_threads : int or None
            Overrides the network's ``num_threads`` for this call.

        Returns
        -------
        RecallResult
            The input is never modified. Thread-safe; releases the GIL.
        """
        patterns = self._fitted_patterns()
        check_choice("representation", representation, REPRESENTATIONS)
        # What the kernel's C types cannot hold, as one-line errors (it checks the rest).
        agreement = check_fraction("agreement", agreement)
        steps = None if steps is None else _kernel_int("steps", steps)
        max_sweeps = _kernel_int("max_sweeps", max_sweeps)
        channel = _kernel_int("channel", channel)
        channels = _kernel_int("channels", channels)
        if not _is_int(seed):
            raise TypeError(f"seed: expected an int, got {type(seed).__name__}")
        check_choice("order", order, ORDERS)
        if type(stats) is not bool and not isinstance(stats, np.bool_):
            raise TypeError(f"stats: expected a bool, got {type(stats).__name__}")
        if isinstance(states, np.ndarray) and states.size >= ALWAYS_FITS and states.ndim == 2:
            rows, n = states.shape
            copied = not states.flags.c_contiguous
            # The recalled states, the kernel's contiguous copy, and 33 bytes of results per row.
            check_memory("states", f"{rows} rows", rows * (n * (1 + copied) + 33), _ADVICE)
        if representation == "auto":
            representation = "overlap" if agreement > 0 else self.representation_for(steps)
        if representation == "overlap" and self._rule != "hebbian":
            raise ValueError(f"representation='overlap' needs rule='hebbian', not {self._rule!r}")
        if representation == "overlap":  # the kernel's (N, P rounded up to 16) pattern columns
            p, n = patterns.shape
            narrow = n < 2**15 and p * n < 2**31  # int16 columns, else int32
            columns = n * -(-p // 16) * 16 * (2 if narrow else 4)
            advice = "the overlap form keeps N x P small integers: use smaller images"
            check_memory("patterns", f"{p} patterns of {n} neurons", columns, advice)
        count = states.shape[0] if isinstance(states, np.ndarray) and states.ndim == 2 else 0
        options = dict(
            steps=steps,
            order=order,
            seed=seed,
            channel=channel,
            channels=channels,
            thresholds=thresholds,
            margin=check_fraction("margin", margin) * patterns.shape[0],
            agreement=agreement,
            max_sweeps=max_sweeps,
            stats=stats,
            num_threads=resolve_num_threads(self.num_threads if num_threads is None else num_threads),
        )
        memory = patterns if representation == "overlap" else self._dense_weights()
        kernel = _core.recall_overlap if representation == "overlap" else _core.recall_dense
        out, flips, done, converged, energy = kernel(
            memory, states, global_indices(count, index_offset, indices), **options
        )
        known = stats or steps is None
        return RecallResult(out, flips, done, converged if known else None, energy if stats else None)

    def energy(self, states: np.ndarray, *, thresholds: Optional[np.ndarray] = None) -> np.ndarray:
        """E(s) = -1/2 s^T W s + theta^T s for each row of ``states`` (B, N) int8."""
        result = self.recall(states, steps=0, thresholds=thresholds, stats=True)
        assert result.energy is not None
        return result.energy

    # -- persistence ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Union[str, np.ndarray]]:
        """The fitted state as plain arrays and strings (what model files store)."""
        state: dict[str, Union[str, np.ndarray]] = {
            "rule": self._rule,
            "patterns": self._fitted_patterns(),
        }
        if self._rule != "hebbian":
            state["weights"] = self._dense_weights()
        return state

    @classmethod
    def from_dict(cls, state: dict[str, Any], *, num_threads: Optional[int] = None) -> HopfieldNetwork:
        """Rebuild a network from :meth:`to_dict`'s output, validating it."""
        network = cls(num_threads=num_threads)
        rule = state.get("rule")
        check_choice("rule", rule, RULES)
        network._patterns = _core.check_patterns(state.get("patterns")).copy()
        network._patterns.flags.writeable = False
        network._rule = cast(Rule, rule)
        if rule != "hebbian":
            weights = state.get("weights")
            n = network.n_neurons
            if (
                not isinstance(weights, np.ndarray)
                or weights.dtype.newbyteorder("=") != np.float64
                or weights.shape != (n, n)
            ):
                raise ValueError(f"weights: expected a float64 array of shape ({n}, {n})")
            if not np.isfinite(weights).all():
                raise ValueError("weights: expected finite values")
            network._weights = np.array(weights, dtype=np.float64, order="C")
            network._weights.flags.writeable = False
        return network

    def __getstate__(self) -> dict[str, Any]:
        state: dict[str, Any] = {"num_threads": self.num_threads}
        if self.is_fitted:
            state.update(self.to_dict())
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "patterns" in state:
            fitted = HopfieldNetwork.from_dict(state, num_threads=state.get("num_threads"))
            self.__dict__.update(fitted.__dict__)
        else:
            self.__init__(num_threads=state.get("num_threads"))  # type: ignore[misc]

    def __repr__(self) -> str:
        if not self.is_fitted:
            return f"HopfieldNetwork(num_threads={self.num_threads!r}, unfitted)"
        return (
            f"HopfieldNetwork(rule={self._rule!r}, n_neurons={self.n_neurons}, "
            f"n_patterns={self.n_patterns}, num_threads={self.num_threads!r})"
        )


def _projection_weights(patterns: np.ndarray) -> np.ndarray:
    """Projection (pseudo-inverse) rule: W = Xi^+ Xi, the projector onto the patterns'
    span (equal to (1/N) Xi^T C^+ Xi, C = (1/N) Xi Xi^T), diagonal zeroed."""
    xi = patterns.astype(np.float64)
    weights = np.linalg.pinv(xi) @ xi
    np.fill_diagonal(weights, 0.0)
    weights = np.ascontiguousarray(weights)
    weights.flags.writeable = False
    return weights
