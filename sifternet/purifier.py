"""``SifterNet``: fit per-channel Hopfield networks on clean seeds, purify any images."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Iterable, Literal, Optional, Union, overload

import numpy as np

from sifternet._checks import (
    check_choice,
    check_finite,
    check_fraction,
    check_image_batch,
    check_int,
    check_memory,
    check_seeds,
)
from sifternet._threads import resolve_num_threads
from sifternet.binarize import (
    BORDERS,
    MAX_BLOCK_SIZE,
    METHODS,
    Binarization,
    Border,
    binarize,
    states_to_pixels,
)
from sifternet.hopfield import ORDERS, RULES, HopfieldNetwork, Order, Rule, global_indices
from sifternet.modelfile import (
    HEADER_FIELDS,
    ModelFileError,
    ModelReader,
    StoredModel,
    pack,
)
from sifternet.repair import OUTPUTS, Output, flipped_pixels, repair, suspicion

if TYPE_CHECKING:  # nearest.py builds on this module
    from sifternet.nearest import NearestSeedRepair

#: The recommended repair mode (docs/method.md, Repair presets): a "highlights"
#: binarisation (+1 only above 242 of 255, global threshold 0.9), so the memories learn
#: where near-white pixels belong; one sweep (every neuron visited once, in a random
#: order) of a recall that flips a pixel only where 90 % of the memories' vote mass is
#: against it; the input's own pixels kept except the flipped ones (in any channel:
#: replaced in all), which are filled from their unflipped 5x5 neighbours. It removes
#: bright patch triggers (BadNet) and leaves image-wide triggers (Blended, SIG, WaNet)
#: alone.
REPAIR_OPTIONS: dict[str, Any] = dict(
    binarize="global",
    threshold=0.9,
    order="sweep",
    steps=None,
    max_sweeps=1,
    agreement=0.9,
    output="inpaint",
    fill_size=5,
    joint_channels=True,
)
#: The preset's mirror image for dark triggers ("shadows"): -1 only at 12 of 255 and
#: below, and a stricter gate (docs/evaluation.md, Dark triggers: a black patch on GTSRB).
DARK_REPAIR_OPTIONS: dict[str, Any] = dict(threshold=-0.9, agreement=0.95)
#: The presets of :meth:`SifterNet.repairing`, the default first.
REPAIR_PRESETS: tuple[str, ...] = ("agnostic", "highlights", "shadows")
#: Options that act at recall time only, changeable on a fitted purifier.
RECALL_OPTIONS: tuple[str, ...] = (
    "steps",
    "max_sweeps",
    "order",
    "seed",
    "output",
    "fill_size",
    "joint_channels",
    "margin",
    "agreement",
)


@dataclass(frozen=True)
class PurifierConfig:
    """The options of a :class:`SifterNet` (see its docs), validated here and saved with
    its model."""

    binarize: Binarization = "local_mean"
    block_size: int = 11
    offset: float = 0.0
    threshold: float = 0.0
    border: Border = "zero"
    rule: Rule = "hebbian"
    steps: Optional[int] = 500
    max_sweeps: int = 100
    order: Order = "random"
    seed: int = 0
    output: Output = "binary"
    fill_size: int = 3
    joint_channels: bool = False
    margin: float = 0.0
    agreement: float = 0.0

    def __post_init__(self) -> None:
        for name, allowed in (
            ("binarize", METHODS),
            ("border", BORDERS),
            ("rule", RULES),
            ("order", ORDERS),
            ("output", OUTPUTS),
        ):
            check_choice(name, getattr(self, name), allowed)
        check_int("block_size", self.block_size, low=1, high=MAX_BLOCK_SIZE)
        check_int("fill_size", self.fill_size, low=1)
        check_int("seed", self.seed, low=0, high=2**64 - 1)
        if self.steps is not None:
            check_int("steps", self.steps, low=0, high=2**63 - 1)
        check_int("max_sweeps", self.max_sweeps, low=1, high=2**63 - 1)
        check_fraction("margin", self.margin)
        check_fraction("agreement", self.agreement)
        check_finite("offset", self.offset)
        check_finite("threshold", self.threshold)
        if self.agreement > 0 and self.rule != "hebbian":
            raise ValueError(
                f"agreement: the agreement gate needs the Hebbian rule (it counts the memories' "
                f"votes), got agreement={self.agreement} with rule={self.rule!r}; use margin instead"
            )
        if not isinstance(self.joint_channels, bool):
            raise TypeError(f"joint_channels: expected a bool, got {type(self.joint_channels).__name__}")


_DEFAULTS = PurifierConfig()


@dataclass(frozen=True)
class Purification:
    """What :meth:`SifterNet.purify_scored` returns for a batch (B images of H x W)."""

    #: the purified images, exactly as :meth:`SifterNet.purify` returns them
    images: np.ndarray
    #: bool (B, H, W): the pixels whose state the recall changed in any channel
    flipped: np.ndarray
    #: float64 (B,) in [0, 1]: how strongly the memories disagree with each image, the
    #: largest share of flipped pixels in any 3 x 3 square (docs/method.md, Suspicion score)
    scores: np.ndarray


class SifterNet(StoredModel):
    """The SifterNet purifier: binarise, recall toward memorised seeds, map back.

    Parameters (keyword-only; the paper's names in brackets)
    ----------------------------------------------------------
    binarize : {"local_mean", "global", "otsu"}
        How pixels become states. ``local_mean`` is the paper's localized
        differentiation: +1 where a pixel exceeds the mean of its window minus ``offset``.
    block_size : int
        The window side of ``local_mean`` [k-size]; the paper finds [15, 25] best on
        CIFAR-10 and [5, 15] on GTSRB.
    offset : float
        ``local_mean``'s offset c (pixel units), default 0.
    threshold : float
        ``global``'s threshold t on the [-1, 1] scale, default 0.
    border : {"zero", "replicate", "reflect"}
        Padding of ``local_mean`` windows at the border; ``zero`` is the paper's.
    rule : {"hebbian", "storkey", "projection"}
        Learning rule; Hebbian is the paper's.
    steps : int or None
        Single-neuron update attempts per image and channel [RemoveTime]; the paper uses
        [50, 500] for 32x32 images and [800, 1200] for MNIST. ``None``: sweeps of N
        attempts until a fixed point, at most ``max_sweeps`` of them.
    max_sweeps : int
        The cap on sweeps when ``steps`` is None (default 100; the repair preset: 1).
    order : {"random", "sweep"}
        ``random`` draws neurons with replacement (the paper); ``sweep`` a permutation.
    output : {"binary", "restore", "inpaint"}
        ``binary``: the recalled 0/255 image (the paper). ``restore``: the input's own
        pixels except those the recall flipped (set to the recalled 0/255). ``inpaint``:
        the input's pixels, the flipped ones filled from their unflipped neighbours.
    fill_size : int
        ``inpaint``'s neighbourhood side (default 3).
    joint_channels : bool
        ``restore``/``inpaint`` of colour images: a pixel the recall flips in any channel
        is replaced in every channel (default False: channel by channel).
    margin : float
        Confidence gate in [0, 1): the recall changes a pixel only when the memories'
        field against it exceeds this fraction of its largest possible value (every
        memory agreeing). 0 is the paper's rule.
    agreement : float
        Agreement gate in [0, 1) (Hebbian rule): the recall changes a pixel only when the
        memories' field against it exceeds this fraction of their current vote mass
        sum_mu |m_mu| / N, i.e. when the memories close to the image agree against it,
        however similar the image is to them. 0 is the paper's rule.
    seed : int
        Seeds the random streams; with an image's global index it fixes its result.
    num_threads : int or None
        Kernel threads (not saved with the model): ``None`` follows ``OMP_NUM_THREADS``
        capped at the usable cores, ``-1`` all cores. Results never depend on it.
        OpenCV's binarisation uses its own pool (``cv2.setNumThreads``).

    Notes
    -----
    A fitted purifier is read-only in :meth:`purify`: it may be shared by several Python
    threads, and the kernel releases the GIL.
    """

    def __init__(
        self,
        *,
        binarize: Binarization = _DEFAULTS.binarize,
        block_size: int = _DEFAULTS.block_size,
        offset: float = _DEFAULTS.offset,
        threshold: float = _DEFAULTS.threshold,
        border: Border = _DEFAULTS.border,
        rule: Rule = _DEFAULTS.rule,
        steps: Optional[int] = _DEFAULTS.steps,
        max_sweeps: int = _DEFAULTS.max_sweeps,
        order: Order = _DEFAULTS.order,
        seed: int = _DEFAULTS.seed,
        output: Output = _DEFAULTS.output,
        fill_size: int = _DEFAULTS.fill_size,
        joint_channels: bool = _DEFAULTS.joint_channels,
        margin: float = _DEFAULTS.margin,
        agreement: float = _DEFAULTS.agreement,
        num_threads: Optional[int] = None,
    ) -> None:
        self.config = PurifierConfig(
            binarize=binarize,
            block_size=block_size,
            offset=offset,
            threshold=threshold,
            border=border,
            rule=rule,
            steps=steps,
            max_sweeps=max_sweeps,
            order=order,
            seed=seed,
            output=output,
            fill_size=fill_size,
            joint_channels=joint_channels,
            margin=margin,
            agreement=agreement,
        )
        resolve_num_threads(num_threads)
        self.num_threads = num_threads
        self.networks: list[HopfieldNetwork] = []
        self.seed_labels: Optional[np.ndarray] = None
        self._image_shape: Optional[tuple[int, ...]] = None

    @classmethod
    def from_config(cls, config: PurifierConfig, *, num_threads: Optional[int] = None) -> SifterNet:
        """An unfitted purifier with the options of ``config``."""
        return cls(num_threads=num_threads, **asdict(config))

    @overload
    @classmethod
    def repairing(
        cls, preset: Literal["agnostic"] = ..., *, num_threads: Optional[int] = None, **options: Any
    ) -> NearestSeedRepair: ...

    @overload
    @classmethod
    def repairing(
        cls, preset: Literal["highlights", "shadows"], *, num_threads: Optional[int] = None, **options: Any
    ) -> SifterNet: ...

    @classmethod
    def repairing(
        cls, preset: str = "agnostic", *, num_threads: Optional[int] = None, **options: Any
    ) -> Union[SifterNet, NearestSeedRepair]:
        """The recommended repair (docs/method.md, Repair presets), which keeps clean
        accuracy where the paper's binary output loses it; ``options`` override the preset's.

        - ``"agnostic"`` (default): no trigger colour or position assumed, a
          :class:`~sifternet.nearest.NearestSeedRepair` (a repair against each image's
          nearest seeds at every intensity, and against all the seeds at the highlights).
        - ``"highlights"``: a SifterNet that removes near-white pixels where the memories
          agree none belong (:data:`REPAIR_OPTIONS`).
        - ``"shadows"``: its mirror image for dark triggers (:data:`DARK_REPAIR_OPTIONS`).
        """
        if preset == "agnostic":
            from sifternet.nearest import NearestConfig, NearestSeedRepair  # noqa: PLC0415  (imports this module)

            foreign = sorted(set(options) - {field.name for field in fields(NearestConfig)})
            if foreign:
                raise TypeError(
                    f"{', '.join(foreign)}: not an option of the agnostic preset (a NearestSeedRepair: "
                    f"{', '.join(field.name for field in fields(NearestConfig))}); SifterNet's options "
                    "go to the Hopfield presets, repairing('highlights', ...) or repairing('shadows', ...)"
                )
            return NearestSeedRepair(num_threads=num_threads, **options)
        if preset not in REPAIR_PRESETS:
            raise ValueError(f"preset: expected one of {', '.join(REPAIR_PRESETS)}, got {preset!r}")
        dark = DARK_REPAIR_OPTIONS if preset == "shadows" else {}
        return cls(num_threads=num_threads, **{**REPAIR_OPTIONS, **dark, **options})

    # -- shapes ---------------------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`fit` (or :meth:`load`) has given the purifier its networks."""
        return self._image_shape is not None

    @property
    def image_shape(self) -> tuple[int, ...]:
        """(H, W) or (H, W, C) of the fitted images; RuntimeError before :meth:`fit`."""
        if self._image_shape is None:
            raise RuntimeError("this SifterNet is not fitted yet: call fit(seed_images)")
        return self._image_shape

    @property
    def n_channels(self) -> int:
        """Colour channels of the fitted images (1 for grey)."""
        shape = self.image_shape
        return shape[2] if len(shape) == 3 else 1

    def _as_batch(self, images: np.ndarray, name: str) -> tuple[np.ndarray, bool]:
        """(B, H, W, C) view of one image or a batch of the fitted shape, and whether the
        input was a single image."""
        return check_image_batch(name, images, self.image_shape)

    def _states_shape(self, states: Any, name: str) -> tuple[int, ...]:
        """Check ``states`` as int8 (B, H, W, C) of the fitted images; return its shape."""
        expected = self.image_shape[:2] + (self.n_channels,)
        if not isinstance(states, np.ndarray) or states.dtype != np.int8:
            kind = states.dtype if isinstance(states, np.ndarray) else type(states).__name__
            raise TypeError(f"{name}: expected an int8 numpy array, got {kind}")
        if states.ndim != 4 or states.shape[1:] != expected:
            raise ValueError(
                f"{name}: expected states (B, {', '.join(map(str, expected))}) from to_states, "
                f"got {states.shape}"
            )
        return states.shape

    # -- fit ------------------------------------------------------------------------
    def fit(self, seed_images: np.ndarray, labels: Optional[np.ndarray] = None) -> SifterNet:
        """Memorise binarised ``seed_images``: (B, H, W) grey or (B, H, W, C) uint8.

        One Hopfield network per channel stores the B binarised seeds of that channel.
        ``labels`` (optional, one per seed) are only checked and kept with the model.
        Returns ``self``.
        """
        labels = check_seeds(seed_images, labels)
        self._image_shape = tuple(int(d) for d in seed_images.shape[1:])
        self.networks = [
            HopfieldNetwork(num_threads=self.num_threads).fit(plane, rule=self.config.rule)
            for plane in _planes(self.to_states(seed_images))
        ]
        self.seed_labels = labels
        return self

    # -- the stages: images -> states -> recall -> states -> images ------------------
    def to_states(self, images: np.ndarray, *, num_threads: Optional[int] = None) -> np.ndarray:
        """Binarised ``images`` (one image of the fitted shape or a batch): int8 states in
        {-1, +1} of shape (B, H, W, C), C = 1 for grey (docs/method.md, Binarisation)."""
        batch, _ = self._as_batch(images, "images")
        check_memory("images", f"{len(batch)} images", batch.size, _ADVICE)
        c = self.config
        return binarize(
            batch,
            c.binarize,
            block_size=c.block_size,
            offset=c.offset,
            threshold=c.threshold,
            border=c.border,
            num_threads=self.num_threads if num_threads is None else num_threads,
        )

    def recall_states(
        self,
        states: np.ndarray,
        *,
        index_offset: int = 0,
        indices: Optional[np.ndarray] = None,
        thresholds: Optional[np.ndarray] = None,
        num_threads: Optional[int] = None,
    ) -> np.ndarray:
        """``states`` (B, H, W, C) from :meth:`to_states` relaxed toward the memories,
        channel by channel (docs/method.md, Recall): a new array of the same shape.

        State b uses the global index ``index_offset + b`` (or ``indices[b]``) to key its
        random streams. ``thresholds`` (H, W, C) float64, theta per pixel and channel in
        the units of the field (default zero). Thread-safe; the kernel releases the GIL.
        """
        shape = self._states_shape(states, "states")
        channels = shape[3]
        copied = channels > 1 or not states.flags.c_contiguous  # a channel's plane
        # The result, one channel's plane if copied, and its recalled plane.
        need = states.size * (channels > 1) + states.size // channels * (1 + copied)
        check_memory("states", f"{shape[0]} images", need, _ADVICE)
        keys = global_indices(shape[0], index_offset, indices)
        theta = None
        if thresholds is not None:
            if np.shape(thresholds) != shape[1:]:
                raise ValueError(
                    f"thresholds: expected shape {shape[1:]}, one per pixel and channel, "
                    f"got {np.shape(thresholds)}"
                )
            theta = [plane[0] for plane in _planes(np.asarray(thresholds, np.float64)[None])]
        c = self.config
        recalled = (
            network.recall(
                _plane(states, channel),
                steps=c.steps,
                max_sweeps=c.max_sweeps,
                order=c.order,
                seed=c.seed,
                indices=keys,
                channel=channel,
                channels=self.n_channels,
                stats=False,
                margin=c.margin,
                agreement=c.agreement,
                thresholds=None if theta is None else theta[channel],
                num_threads=self.num_threads if num_threads is None else num_threads,
            ).states
            for channel, network in enumerate(self.networks)
        )
        return _merge(recalled, shape)

    def to_images(
        self, images: np.ndarray, before: np.ndarray, after: np.ndarray, *, num_threads: Optional[int] = None
    ) -> np.ndarray:
        """The output step (docs/method.md, Output modes): uint8 images of the input's
        shape from the input ``images``, their states ``before`` recall and ``after`` it,
        by the ``output`` option (``binary``, ``restore`` or ``inpaint``)."""
        batch, single = self._as_batch(images, "images")
        for name, states in (("before", before), ("after", after)):
            if self._states_shape(states, name) != batch.shape:
                raise ValueError(
                    f"{name}: expected states of shape {batch.shape}, one per image, got {states.shape}"
                )
        c = self.config
        pixels = repair(
            c.output,
            batch,
            before,
            after,
            c.fill_size,
            c.joint_channels,
            self.num_threads if num_threads is None else num_threads,
        ).reshape(batch.shape[:1] + self.image_shape)
        return pixels[0] if single else pixels

    def purify(
        self,
        images: np.ndarray,
        *,
        index_offset: int = 0,
        indices: Optional[np.ndarray] = None,
        num_threads: Optional[int] = None,
    ) -> np.ndarray:
        """Purified images: uint8 of the input's shape (0/255 in the paper's ``binary``
        output mode). The composition of :meth:`to_states`, :meth:`recall_states` and
        :meth:`to_images`.

        ``images``: one image of the fitted shape or a batch of them. Image b uses the
        global index ``index_offset + b`` (or ``indices[b]``) to key its random streams,
        so a single image, a chunk or a shuffled batch purifies exactly as it would
        inside the whole data set. Thread-safe; the kernel releases the GIL.
        """
        states, recalled = self._recall_images(images, index_offset, indices, num_threads)
        return self.to_images(images, states, recalled, num_threads=num_threads)

    def _recall_images(
        self,
        images: np.ndarray,
        index_offset: int,
        indices: Optional[np.ndarray],
        num_threads: Optional[int],
    ) -> tuple[np.ndarray, np.ndarray]:
        """The states of ``images`` before and after recall (the stages before the output)."""
        batch, _ = self._as_batch(images, "images")
        # At the end: states, recalled states and pixels, and the kernel's copy of strided images.
        held = 3 + (not batch.flags.c_contiguous)
        check_memory("images", f"{len(batch)} images", held * batch.size, _ADVICE)
        states = self.to_states(images, num_threads=num_threads)
        recalled = self.recall_states(
            states, index_offset=index_offset, indices=indices, num_threads=num_threads
        )
        return states, recalled

    def purify_scored(
        self,
        images: np.ndarray,
        *,
        index_offset: int = 0,
        indices: Optional[np.ndarray] = None,
        num_threads: Optional[int] = None,
    ) -> Purification:
        """:meth:`purify` that also returns, per image, the pixels the recall flipped and
        a suspicion score from them (:class:`Purification`; a single image gives a batch
        of one). The same pass: the images are bit-identical to :meth:`purify`'s."""
        states, recalled = self._recall_images(images, index_offset, indices, num_threads)
        flipped = flipped_pixels(states, recalled)
        pixels = self.to_images(images, states, recalled, num_threads=num_threads)
        return Purification(
            images=pixels.reshape((len(states), *self.image_shape)),
            flipped=flipped,
            scores=suspicion(flipped),
        )

    def binarize(self, images: np.ndarray) -> np.ndarray:
        """The binarised input as 0/255 uint8 of the input's shape: purification without
        recall, for previews and the binarise-only control."""
        pixels = states_to_pixels(self.to_states(images))
        return pixels.reshape(images.shape)

    def with_options(self, **changes: Any) -> SifterNet:
        """A copy with other recall options (:data:`RECALL_OPTIONS`), sharing the
        memorised networks; options that shape the memories need a new :meth:`fit`."""
        fixed = set(changes) - set(RECALL_OPTIONS)
        if fixed:
            raise ValueError(
                f"{', '.join(sorted(fixed))}: shape the memories; fit a new SifterNet to change "
                f"them (with_options takes {', '.join(RECALL_OPTIONS)})"
            )
        copy = SifterNet.from_config(replace(self.config, **changes), num_threads=self.num_threads)
        copy.networks, copy._image_shape, copy.seed_labels = (
            self.networks,
            self._image_shape,
            self.seed_labels,
        )
        return copy

    # -- model files and pickling -----------------------------------------------------
    def to_bytes(self) -> bytes:
        """The model file's bytes (see :mod:`sifternet.modelfile`)."""
        arrays: dict[str, np.ndarray] = {}
        for channel, network in enumerate(self.networks):
            for name, value in network.to_dict().items():
                if isinstance(value, np.ndarray):
                    arrays[f"{name}_{channel}"] = value
        if self.seed_labels is not None:
            arrays["seed_labels"] = self.seed_labels
        metadata = {"config": asdict(self.config), "image_shape": list(self.image_shape)}
        return pack(metadata, arrays)

    @classmethod
    def from_bytes(
        cls, data: bytes, *, num_threads: Optional[int] = None, source: str = "model file"
    ) -> SifterNet:
        """A purifier from model-file bytes, fully validated (:class:`ModelFileError` naming
        ``source``): the options by the constructor and an empty :meth:`purify`, the arrays
        against the layout the metadata implies before any of them is inflated."""
        reader = ModelReader(data, source)
        metadata, found = reader.metadata, reader.members
        try:
            if "purifier" in metadata:
                raise ValueError(
                    f"purifier: this file holds {metadata['purifier']!r}, not a SifterNet: load it with "
                    "NearestSeedRepair.load"
                )
            extra = sorted(set(metadata) - {*HEADER_FIELDS, "config", "image_shape"})
            if extra:
                raise ValueError(
                    f"metadata: expected the fields config and image_shape, got also {', '.join(extra)}"
                )
            config = metadata.get("config")
            if not isinstance(config, dict):
                raise TypeError(f"config: expected a JSON object of options, got {type(config).__name__}")
            missing = [field.name for field in fields(PurifierConfig) if field.name not in config]
            if reader.version >= 2 and missing:  # format 1 predates some options: their defaults
                raise ValueError(f"config: expected every option, missing {', '.join(missing)}")
            purifier = cls.from_config(PurifierConfig(**config), num_threads=num_threads)
            shape: Any = metadata.get("image_shape")
            sides_ok = isinstance(shape, list) and all(type(d) is int and d >= 1 for d in shape)
            if not sides_ok or len(shape) not in (2, 3):
                raise ValueError(f"image_shape: expected [H, W] or [H, W, C] of positive ints, got {shape!r}")
            purifier._image_shape = tuple(shape)
            n, channels = shape[0] * shape[1], purifier.n_channels
            if channels > len(found):
                raise ValueError(
                    f"image_shape: expected at most as many channels as arrays ({len(found)}), got {channels}"
                )
            first = found.get("patterns_0")
            if first is None:
                raise ValueError(f"patterns_0: missing (expected int8 patterns of shape (P, {n}))")
            seeds = first.shape[0] if len(first.shape) == 2 else 0
            if seeds < 1:
                raise ValueError(
                    f"patterns_0: expected int8 patterns of shape (P, {n}), P >= 1, got {first.shape}"
                )
            layout: dict[str, tuple[tuple[str, ...], tuple[int, ...]]] = {
                f"patterns_{c}": (("int8",), (seeds, n)) for c in range(channels)
            }
            if purifier.config.rule != "hebbian":
                layout.update({f"weights_{c}": (("float64",), (n, n)) for c in range(channels)})
            layout["seed_labels"] = (("int8", "int32", "int64"), (seeds,))
            reader.expect(layout, optional=("seed_labels",))  # the budget: nothing inflated yet

            def spins(name: str, block: np.ndarray) -> None:  # a bomb of junk stops at its first block
                if name.startswith("patterns_") and not ((block == 1) | (block == -1)).all():
                    bad = block[(block != 1) & (block != -1)][0]
                    raise ValueError(f"{name}: expected values -1 or +1, got {bad}")

            arrays = reader.arrays(check=spins)
            for channel in range(channels):
                state = {"rule": purifier.config.rule, "patterns": arrays[f"patterns_{channel}"]}
                if f"weights_{channel}" in arrays:
                    state["weights"] = arrays[f"weights_{channel}"]
                purifier.networks.append(HopfieldNetwork.from_dict(state, num_threads=num_threads))
            labels = arrays.get("seed_labels")
            purifier.seed_labels = None if labels is None else labels.astype(np.int64)
            # Every check purify makes, at no cost.
            purifier.purify(np.zeros((0, *purifier.image_shape), np.uint8))
        except ModelFileError:
            raise
        except (KeyError, TypeError, ValueError, ArithmeticError, RuntimeError) as error:
            raise reader.error(f"invalid model content: {error}") from None
        return purifier

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in asdict(self.config).items())
        fitted = (
            f", image_shape={self.image_shape}, seeds={self.networks[0].n_patterns}"
            if self.is_fitted
            else ", unfitted"
        )
        return f"SifterNet({options}{fitted})"


_ADVICE = "purify it in chunks: purify(images[i:j], index_offset=i) gives each image its one-shot result"


def _plane(array: np.ndarray, channel: int) -> np.ndarray:
    """Channel ``channel`` of a (B, H, W, C) array as a contiguous (B, H*W) array (a view if
    it is one already). NumPy, not OpenCV: any layout, channel count or size."""
    b, h, w, _ = array.shape
    return np.ascontiguousarray(array[..., channel]).reshape(b, h * w)


def _planes(array: np.ndarray) -> list[np.ndarray]:
    """(B, H, W, C) -> C contiguous (B, H*W) planes, one per channel."""
    return [_plane(array, channel) for channel in range(array.shape[3])]


def _merge(planes: Iterable[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """C (B, H*W) int8 planes -> (B, H, W, C), taking one plane at a time (a generator of
    them keeps a single one alive)."""
    b, h, w, c = shape
    if c == 1:
        return next(iter(planes)).reshape(shape)
    merged = np.empty(shape, np.int8)
    for channel, plane in enumerate(planes):
        merged[..., channel] = plane.reshape(b, h, w)
    return merged
