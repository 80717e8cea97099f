"""Input-Aware dynamic backdoor (Nguyen and Tran, NeurIPS 2020), small enough for a CPU.

Every image gets its own trigger: a generator network maps the image to a pattern in
[0, 1]^(H, W, C), a mask network maps it to a mask in [0, 1]^(H, W), and the triggered
image is ``x + (pattern - x) mask``. The mask network is pre-trained alone (masks that
differ between images, kept sparse by a density term); then the classifier, the
repository's small CNN (:func:`~sifternet.eval.models.small_cnn`), and the generator are
trained together on three kinds of images in every batch: triggered ones relabelled to
the target (share ``rho_b``), cross-triggered ones, carrying the trigger made from
another image and keeping their label (share ``rho_c``), and clean ones. A diversity
term keeps the patterns of two images as far apart as the images themselves.
"""

from __future__ import annotations

import io
import math
import numbers
import operator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
from tqdm import tqdm

from sifternet._checks import check_batch, check_uint8
from sifternet._threads import resolve_num_threads
from sifternet.eval.metrics import accuracy, attack_success_rate
from sifternet.eval.models import TorchClassifier, _as_tensor, _torch, small_cnn, training_key
from sifternet.modelfile import PathLike, write_atomically

if TYPE_CHECKING:  # annotations only: torch is an optional extra
    import torch

#: Images per forward pass of the trigger networks in :meth:`InputAwareBackdoor.apply`;
#: a shorter last chunk is padded to this size, so every image is computed in a batch of
#: one shape wherever it sits in the input (the result does not depend on batch splits).
APPLY_CHUNK = 64
#: Steepness of the mask's soft threshold (masks come out close to 0 or 1).
MASK_STEEPNESS = 20.0
_EPS = 1e-7
_FORMAT = "sifternet-input-aware-1"


def trigger_network(in_channels: int, out_channels: int, height: int, width: int) -> torch.nn.Sequential:
    """A small encoder-decoder, image (B, C, H, W) -> logits (B, out, H, W):
    conv3x3(16)-ReLU-pool2-conv3x3(32)-ReLU-pool2, then bilinear upsampling to H/2 x W/2,
    conv3x3(16)-ReLU, upsampling to H x W, conv3x3(out)."""
    nn = _torch().nn
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Upsample(size=(height // 2, width // 2), mode="bilinear", align_corners=False),
        nn.Conv2d(32, 16, 3, padding=1),
        nn.ReLU(),
        nn.Upsample(size=(height, width), mode="bilinear", align_corners=False),
        nn.Conv2d(16, out_channels, 3, padding=1),
    )


def _pattern(generator: Any, x: torch.Tensor) -> torch.Tensor:
    """The generator's pattern in [0, 1], (B, C, H, W)."""
    return generator(x).sigmoid()


def _mask(mask_net: Any, x: torch.Tensor) -> torch.Tensor:
    """The mask in [0, 1], (B, 1, H, W): a sigmoid, then a steep soft threshold at 0.5."""
    soft = mask_net(x).sigmoid()
    return ((soft - 0.5) * MASK_STEEPNESS).sigmoid()


def _blend(x: torch.Tensor, pattern: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``x + (pattern - x) mask`` rounded to the 256 levels of a uint8 image; the
    rounding passes gradients straight through, so training sees what :meth:`apply` gives."""
    mixed = x + (pattern - x) * mask
    return mixed + ((mixed * 255.0).round() / 255.0 - mixed).detach()


def _diversity(x1: torch.Tensor, x2: torch.Tensor, out1: torch.Tensor, out2: torch.Tensor) -> torch.Tensor:
    """Mean over pairs of ||x1 - x2|| / ||out1 - out2|| (RMS distances): small when two
    images' patterns (or masks) differ at least as much as the images."""

    def rms(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return ((a - b) ** 2).mean(dim=(1, 2, 3)).add(1e-12).sqrt()

    return (rms(x1, x2) / (rms(out1, out2) + _EPS)).mean()


@dataclass(frozen=True)
class InputAwareStats:
    """Measured on the held-out part after training (NaN where a part is empty)."""

    clean_accuracy: float  #: clean held-out images, true labels
    attack_success_rate: float  #: triggered held-out images of non-target classes -> target
    cross_trigger_accuracy: float  #: held-out images with another image's trigger, true labels
    mask_density: float  #: mean mask value over held-out images
    n_train: int
    n_holdout: int


class InputAwareBackdoor:
    """A classifier backdoored by Input-Aware triggers and the networks that make them.

    ``model``: the backdoored :class:`TorchClassifier`; ``apply(images)``: the triggered
    images; ``stats``: :class:`InputAwareStats`; ``train_index``/``holdout_index``: the
    split of the training call's images; ``from_cache``: loaded rather than trained.
    """

    def __init__(
        self,
        model: TorchClassifier,
        generator: Any,
        mask_net: Any,
        *,
        target: int,
        shape: tuple[int, ...],
        stats: InputAwareStats,
        train_index: np.ndarray,
        holdout_index: np.ndarray,
        from_cache: bool = False,
    ) -> None:
        self.model = model
        self.generator = generator.eval()
        self.mask_net = mask_net.eval()
        self.target = target
        self.shape = shape
        self.stats = stats
        self.train_index = train_index
        self.holdout_index = holdout_index
        self.from_cache = from_cache

    def _check(self, images: np.ndarray, what: str) -> None:
        check_uint8(what, images)
        if images.shape[1:] != self.shape or images.ndim != len(self.shape) + 1:
            raise ValueError(
                f"{what}: expected a batch of shape (B, {', '.join(map(str, self.shape))}), "
                f"got {images.shape}"
            )

    def _chunked(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Patterns and masks of ``x`` in chunks of :data:`APPLY_CHUNK` (the last one padded)."""
        torch = _torch()
        patterns, masks = [], []
        with torch.no_grad():
            for start in range(0, len(x), APPLY_CHUNK):
                part = x[start : start + APPLY_CHUNK]
                count = len(part)
                if count < APPLY_CHUNK:
                    part = torch.cat([part, part.new_zeros((APPLY_CHUNK - count,) + part.shape[1:])])
                patterns.append(_pattern(self.generator, part)[:count])
                masks.append(_mask(self.mask_net, part)[:count])
        if not patterns:
            channels, (height, width) = x.shape[1], x.shape[2:]
            return x.new_zeros((0, channels, height, width)), x.new_zeros((0, 1, height, width))
        return torch.cat(patterns), torch.cat(masks)

    def triggers(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each image's pattern, float32 in [0, 1] shaped like ``images``, and mask, float32
        (B, H, W) in [0, 1]."""
        self._check(images, "images")
        patterns, masks = self._chunked(_as_tensor(images))
        patterns_np = patterns.numpy().transpose(0, 2, 3, 1)
        if images.ndim == 3:
            patterns_np = patterns_np[..., 0]
        return np.ascontiguousarray(patterns_np), np.ascontiguousarray(masks.numpy()[:, 0])

    def apply(self, images: np.ndarray, *, trigger_from: Optional[np.ndarray] = None) -> np.ndarray:
        """The images with their own triggers, uint8 of their shape; with ``trigger_from``
        (as many images), image i carries the trigger made from ``trigger_from[i]`` instead
        (the cross-trigger case). Deterministic, and independent of how a batch is split."""
        self._check(images, "images")
        x = _as_tensor(images)
        source = x
        if trigger_from is not None:
            self._check(trigger_from, "trigger_from")
            if len(trigger_from) != len(images):
                raise ValueError(
                    f"trigger_from: expected as many images as images ({len(images)}), "
                    f"got {len(trigger_from)}"
                )
            source = _as_tensor(trigger_from)
        patterns, masks = self._chunked(source)
        with _torch().no_grad():
            mixed = (_blend(x, patterns, masks) * 255.0).round().clamp(0, 255)
        out = mixed.to(_torch().uint8).numpy().transpose(0, 2, 3, 1)
        return np.ascontiguousarray(out[..., 0] if images.ndim == 3 else out)


def _check_inputs(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, int]:
    check_batch("images", images)
    if images.shape[1] < 4 or images.shape[2] < 4 or (images.ndim == 4 and images.shape[3] < 1):
        raise ValueError(
            f"images: expected images of at least 4 x 4 pixels and one channel, got shape {images.shape}"
        )
    if len(images) < 2:
        raise ValueError(
            f"images: expected at least 2 images (to train on and to hold out), got {len(images)}"
        )
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(f"labels: expected one label per image ({len(images)}), got shape {labels.shape}")
    if labels.dtype.kind not in "iu" or labels.min() < 0:
        raise ValueError(f"labels: expected non-negative integers, got {labels.dtype} from {labels.min()}")
    return labels.astype(np.int64), int(labels.max()) + 1


def _count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name}: expected an integer, got bool")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__}") from None
    if value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    return int(value)


def _fraction(name: str, value: Any, low: float, high: float, *, open_low: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name}: expected a number in {low} .. {high}, got {value!r}")
    number = float(value)
    if number > high or number < low or (open_low and number == low):
        side = "(" if open_low else "["
        raise ValueError(f"{name}: expected a number in {side}{low}, {high}], got {value!r}")
    return number


def _split(count: int, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, held-out) indices: ``round(holdout count)`` held out, drawn from ``seed``."""
    order = np.random.default_rng([seed, 1]).permutation(count)
    n_holdout = int(round(holdout * count))
    if n_holdout < 1 or n_holdout >= count:
        raise ValueError(
            f"holdout: expected a share leaving at least one image on each side of the split, "
            f"got {holdout} of {count} images"
        )
    return np.sort(order[n_holdout:]), np.sort(order[:n_holdout])


def _fit(
    classifier: Any,
    generator: Any,
    mask_net: Any,
    x: torch.Tensor,
    y: torch.Tensor,
    settings: dict[str, Any],
    progress: bool,
) -> None:
    """Train the three networks in place: mask pre-training, then the joint phase."""
    torch = _torch()
    rng = np.random.default_rng([settings["seed"], 2])
    batch_size = settings["batch_size"]
    steps = (settings["mask_epochs"] + settings["epochs"]) * len(x)

    def batches(epochs: int, optimiser: Any) -> Any:
        """(first, second) index batches, two independent orders of the training images per
        epoch, with the optimiser's learning rates set on a cosine from their start to 0."""
        bases = [group["lr"] for group in optimiser.param_groups]
        total = epochs * math.ceil(len(x) / batch_size)
        for epoch in range(epochs):
            first, second = rng.permutation(len(x)), rng.permutation(len(x))
            for start in range(0, len(x), batch_size):
                step = epoch * math.ceil(len(x) / batch_size) + start // batch_size
                for group, base in zip(optimiser.param_groups, bases):
                    group["lr"] = base * 0.5 * (1.0 + math.cos(math.pi * step / total))
                yield (
                    torch.from_numpy(first[start : start + batch_size]),
                    torch.from_numpy(second[start : start + batch_size]),
                )
                bar.update(len(first[start : start + batch_size]))

    with tqdm(total=steps, unit="img", desc="train input-aware", disable=not progress or None) as bar:
        mask_optimiser = torch.optim.Adam(mask_net.parameters(), lr=settings["mask_learning_rate"])
        mask_net.train()
        for first, second in batches(settings["mask_epochs"], mask_optimiser):
            x1, x2 = x[first], x[second]
            mask_optimiser.zero_grad()
            m1, m2 = _mask(mask_net, x1), _mask(mask_net, x2)
            density = torch.nn.functional.relu(m1 - settings["mask_density"]).mean()
            loss = settings["lambda_norm"] * density + settings["lambda_div"] * _diversity(x1, x2, m1, m2)
            loss.backward()
            mask_optimiser.step()
        mask_net.eval()
        mask_net.requires_grad_(False)

        optimiser = torch.optim.Adam(
            [
                {"params": classifier.parameters(), "lr": settings["learning_rate"]},
                {"params": generator.parameters(), "lr": settings["generator_learning_rate"]},
            ]
        )
        classifier.train()
        generator.train()
        target = settings["target"]
        for first, second in batches(settings["epochs"], optimiser):
            x1, y1, x2 = x[first], y[first], x[second]
            n_bd = int(settings["rho_b"] * len(x1))
            n_cross = min(int(settings["rho_c"] * len(x1)), len(x1) - n_bd)
            n_div = max(n_bd, n_cross)
            optimiser.zero_grad()
            own = _pattern(generator, x1[:n_bd])
            other = _pattern(generator, x2[:n_div])
            poisoned = _blend(x1[:n_bd], own, _mask(mask_net, x1[:n_bd]))
            cross = x1[n_bd : n_bd + n_cross]
            crossed = _blend(cross, other[:n_cross], _mask(mask_net, x2[:n_cross]))
            inputs = torch.cat([poisoned, crossed, x1[n_bd + n_cross :]])
            wanted = torch.cat([torch.full_like(y1[:n_bd], target), y1[n_bd:]])
            loss = torch.nn.functional.cross_entropy(classifier(inputs), wanted)
            if n_bd > 0:
                loss = loss + settings["lambda_div"] * _diversity(x1[:n_bd], x2[:n_bd], own, other[:n_bd])
            loss.backward()
            optimiser.step()
    classifier.eval()
    generator.eval()


def _measure(
    backdoor: InputAwareBackdoor, images: np.ndarray, labels: np.ndarray, seed: int
) -> InputAwareStats:
    """:class:`InputAwareStats` on the held-out images (cross triggers from a shuffled
    other held-out image: a random order rolled by one, so never the image itself)."""
    model, target = backdoor.model, backdoor.target
    clean = accuracy(model.predict(images), labels) if len(images) else float("nan")
    triggered = backdoor.apply(images)
    asr = attack_success_rate(model.predict(triggered), labels, target) if len(images) else float("nan")
    cross = float("nan")
    if len(images) >= 2:
        order = np.random.default_rng([seed, 3]).permutation(len(images))
        source = np.empty_like(order)
        source[order] = np.roll(order, 1)
        cross = accuracy(model.predict(backdoor.apply(images, trigger_from=images[source])), labels)
    density = float(backdoor.triggers(images)[1].mean()) if len(images) else float("nan")
    return InputAwareStats(clean, asr, cross, density, len(backdoor.train_index), len(images))


def train_input_aware(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    target: int = 0,
    epochs: int = 10,
    mask_epochs: int = 2,
    n_classes: Optional[int] = None,
    holdout: float = 0.2,
    rho_b: float = 0.1,
    rho_c: float = 0.1,
    lambda_div: float = 1.0,
    lambda_norm: float = 100.0,
    mask_density: float = 0.032,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    generator_learning_rate: float = 1e-2,
    mask_learning_rate: float = 1e-2,
    seed: int = 0,
    num_threads: Optional[int] = None,
    cache: Optional[PathLike] = None,
    progress: bool = True,
) -> InputAwareBackdoor:
    """Train an Input-Aware backdoor (all-to-one, to ``target``) on uint8 ``images``.

    A share ``holdout`` of the images (drawn from ``seed``) is kept out of training and
    gives the stats. ``rho_b``/``rho_c``: the shares of every batch triggered (relabelled
    to ``target``) and cross-triggered (labels kept); ``lambda_div``, ``lambda_norm``,
    ``mask_density``: the diversity weight, and the weight and level of the mask density
    penalty (the mean over pixels of the mask's excess over ``mask_density``), the paper's
    values. Adam throughout: ``mask_epochs`` of mask
    pre-training, then ``epochs`` of joint training with the learning rates decaying to 0
    on a cosine (the defaults are tuned for a few thousand images on a CPU; the paper
    trains far longer).

    Deterministic from ``seed`` for a given thread count (``num_threads`` as everywhere in
    sifternet). With ``cache``, networks trained on the same data and settings are loaded
    from that file (weights only) and newly trained ones are saved there; a cache file
    trained on anything else is refused, never overwritten.
    """
    labels, n_found = _check_inputs(images, labels)
    classes = n_found if n_classes is None else _count("n_classes", n_classes, 2)
    if classes < n_found or classes < 2:
        raise ValueError(f"n_classes: expected at least 2 and more than every label, got {classes}")
    target = _count("target", target, 0)
    if target >= classes:
        raise ValueError(f"target: expected a class in 0 .. {classes - 1}, got {target}")
    settings: dict[str, Any] = dict(
        format=_FORMAT,
        target=target,
        epochs=_count("epochs", epochs, 1),
        mask_epochs=_count("mask_epochs", mask_epochs, 0),
        n_classes=classes,
        holdout=_fraction("holdout", holdout, 0.0, 1.0, open_low=True),
        rho_b=_fraction("rho_b", rho_b, 0.0, 1.0, open_low=True),
        rho_c=_fraction("rho_c", rho_c, 0.0, 1.0),
        lambda_div=_fraction("lambda_div", lambda_div, 0.0, math.inf),
        lambda_norm=_fraction("lambda_norm", lambda_norm, 0.0, math.inf),
        mask_density=_fraction("mask_density", mask_density, 0.0, 1.0),
        batch_size=_count("batch_size", batch_size, 1),
        learning_rate=_fraction("learning_rate", learning_rate, 0.0, math.inf, open_low=True),
        generator_learning_rate=_fraction(
            "generator_learning_rate", generator_learning_rate, 0.0, math.inf, open_low=True
        ),
        mask_learning_rate=_fraction("mask_learning_rate", mask_learning_rate, 0.0, math.inf, open_low=True),
        seed=_count("seed", seed, 0),
        shape=list(images.shape[1:]),
    )
    if settings["rho_b"] + settings["rho_c"] > 1.0:
        raise ValueError(f"rho_b + rho_c: expected at most 1, got {settings['rho_b'] + settings['rho_c']}")
    threads = resolve_num_threads(num_threads)
    train_index, holdout_index = _split(len(images), settings["holdout"], settings["seed"])
    key = training_key(images, labels, settings)

    torch = _torch()
    channels, height, width = (1 if images.ndim == 3 else images.shape[3]), images.shape[1], images.shape[2]
    torch.manual_seed(settings["seed"])  # initial weights, then dropout's draws
    classifier = small_cnn(channels, height, width, classes)
    generator = trigger_network(channels, channels, height, width)
    mask_net = trigger_network(channels, 1, height, width)

    def backdoor(stats: InputAwareStats, from_cache: bool) -> InputAwareBackdoor:
        return InputAwareBackdoor(
            TorchClassifier(classifier),
            generator,
            mask_net,
            target=target,
            shape=tuple(images.shape[1:]),
            stats=stats,
            train_index=train_index,
            holdout_index=holdout_index,
            from_cache=from_cache,
        )

    if cache is not None and Path(cache).exists():
        saved = torch.load(str(cache), map_location="cpu", weights_only=True)
        if not isinstance(saved, dict) or saved.get("key") != key:
            raise ValueError(
                f"{cache}: an Input-Aware cache trained on other data or settings; name another "
                "file or delete this one"
            )
        classifier.load_state_dict(saved["classifier"])
        generator.load_state_dict(saved["generator"])
        mask_net.load_state_dict(saved["mask"])
        return backdoor(InputAwareStats(**saved["stats"]), True)

    threads_before = torch.get_num_threads()
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    warn_only_before = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        x = _as_tensor(images[train_index])
        y = torch.from_numpy(labels[train_index])
        _fit(classifier, generator, mask_net, x, y, settings, progress)
        result = backdoor(InputAwareStats(math.nan, math.nan, math.nan, math.nan, 0, 0), False)
        result.stats = _measure(result, images[holdout_index], labels[holdout_index], settings["seed"])
    finally:
        torch.use_deterministic_algorithms(deterministic_before, warn_only=warn_only_before)
        torch.set_num_threads(threads_before)
    if cache is not None:
        buffer = io.BytesIO()
        torch.save(
            {
                "key": key,
                "settings": settings,
                "classifier": classifier.state_dict(),
                "generator": generator.state_dict(),
                "mask": mask_net.state_dict(),
                "stats": asdict(result.stats),
            },
            buffer,
        )
        write_atomically(cache, buffer.getvalue())
    return result
