"""Target models for the evaluation (optional extra ``eval``: PyTorch, CPU).

The paper's small CNN (two convolutions, two dense layers, dropout), trained
deterministically from a seed; and adapters so that any black box
``predict(images) -> labels`` can be evaluated the same way.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol

import numpy as np
from tqdm import tqdm

from sifternet._threads import resolve_num_threads
from sifternet.modelfile import PathLike, write_atomically

if TYPE_CHECKING:  # for annotations only: torch is an optional extra, imported by _torch()
    import torch


class Classifier(Protocol):
    """What the evaluation needs of a model: uint8 images (B, H, W[, C]) -> labels (B,)."""

    def predict(self, images: np.ndarray) -> np.ndarray: ...


def _torch() -> ModuleType:
    try:
        import torch
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the target models need PyTorch: pip install torch==2.13.0 'sifternet[eval]'"
        ) from None
    return torch


def small_cnn(in_channels: int, height: int, width: int, n_classes: int) -> torch.nn.Sequential:
    """conv3x3(32)-ReLU-conv3x3(64)-ReLU-maxpool2-dropout(0.25)-dense(128)-ReLU-dropout(0.5)-dense."""
    nn = _torch().nn
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Dropout(0.25),
        nn.Flatten(),
        nn.Linear(64 * (height // 2) * (width // 2), 128),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(128, n_classes),
    )


def _as_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (B, H, W[, C]) -> float32 (B, C, H, W) in [0, 1]."""
    _torch()  # PyTorch, or the error that says how to install it
    from sifternet.torch import images_to_tensor

    return images_to_tensor(images)


class TorchClassifier:
    """A PyTorch module as a :class:`Classifier` (argmax of its outputs, in batches)."""

    def __init__(self, module: Any, *, batch_size: int = 1024) -> None:
        self.module = module.eval()
        self.batch_size = batch_size

    def _outputs(self, images: np.ndarray, head: Callable[[Any], Any]) -> np.ndarray:
        """``head(logits)`` of every batch of images, concatenated (no gradients; an empty
        batch still goes through the module, which gives the output's shape)."""
        torch = _torch()
        with torch.no_grad():
            return np.concatenate(
                [
                    head(self.module(_as_tensor(images[start : start + self.batch_size]))).numpy()
                    for start in range(0, max(len(images), 1), self.batch_size)
                ]
            )

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self._outputs(images, lambda logits: logits.argmax(1)).astype(np.int64)

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities, the softmax of the module's outputs: float32 (B, K)."""
        return self._outputs(images, lambda logits: logits.softmax(1))

    def _last_conv(self) -> Optional[tuple[str, Any]]:
        """The last ``torch.nn.Conv2d`` among the module's submodules (registration order),
        with its name; None for a TorchScript module (no Python layers to hook) or one
        without convolutions."""
        conv = _torch().nn.Conv2d
        found = [(name, layer) for name, layer in self.module.named_modules() if isinstance(layer, conv)]
        return found[-1] if found else None

    @property
    def saliency_method(self) -> str:
        """What :meth:`saliency` computes, for descriptions."""
        last = self._last_conv()
        if last is None:
            return "input-gradient saliency (no Conv2d layer to hook: TorchScript or no convolution)"
        return f"Grad-CAM on the last Conv2d, layer '{last[0]}'"

    def saliency(self, images: np.ndarray, classes: Optional[np.ndarray] = None) -> np.ndarray:
        """Where in each image the evidence for its class lies: float32 (B, H, W) maps >= 0.

        The class is ``classes`` (B,) or, by default, the predicted one; the map is Grad-CAM
        on the last ``Conv2d`` (the ReLU of the activations weighted by their spatially
        averaged gradients of the class's logit, bilinearly resized to H x W), or, for a
        TorchScript module or one without convolutions, the largest absolute gradient of
        the logit with respect to the input pixels over the channels.
        """
        if classes is not None:
            classes = np.asarray(classes)
            if classes.shape != (len(images),) or not np.issubdtype(classes.dtype, np.integer):
                raise ValueError(
                    f"saliency: classes: expected {len(images)} integers, got {classes.dtype} {classes.shape}"
                )
        maps = [np.zeros((0,) + images.shape[1:3], np.float32)]
        for start in range(0, len(images), self.batch_size):
            chosen = None if classes is None else classes[start : start + self.batch_size]
            maps.append(self._saliency_batch(images[start : start + self.batch_size], chosen))
        return np.concatenate(maps)

    def _saliency_batch(self, images: np.ndarray, classes: Optional[np.ndarray]) -> np.ndarray:
        """:meth:`saliency` of one batch."""
        torch = _torch()
        height, width = images.shape[1:3]
        x = _as_tensor(images).requires_grad_(True)  # a graph even when the weights are frozen
        last = self._last_conv()
        captured: list[Any] = []
        handle = (
            None if last is None else last[1].register_forward_hook(lambda *args: captured.append(args[2]))
        )
        try:
            with torch.enable_grad():
                logits = self.module(x)
                chosen = logits.argmax(1) if classes is None else torch.from_numpy(classes.astype(np.int64))
                evidence = logits.gather(1, chosen[:, None]).sum()  # the images do not interact
                if last is None:
                    (gradient,) = torch.autograd.grad(evidence, x)
                    return gradient.abs().amax(1).detach().float().numpy()
                if not captured:
                    raise RuntimeError(f"saliency: the module's forward did not call its Conv2d {last[0]}")
                activations = captured[-1]
                (gradient,) = torch.autograd.grad(evidence, activations)
        finally:
            if handle is not None:
                handle.remove()
        weights = gradient.mean(dim=(2, 3), keepdim=True)
        cam = torch.relu((weights * activations.detach()).sum(1, keepdim=True))
        if cam.shape[2:] != (height, width):
            cam = torch.nn.functional.interpolate(
                cam, size=(height, width), mode="bilinear", align_corners=False
            )
        return cam[:, 0].float().numpy()


class ProbabilisticClassifier(Classifier, Protocol):
    """A :class:`Classifier` that also gives class probabilities (what STRIP needs)."""

    def predict_proba(self, images: np.ndarray) -> np.ndarray: ...


class GradientClassifier(ProbabilisticClassifier, Protocol):
    """A :class:`ProbabilisticClassifier` with gradient access (what SentiNet needs), as
    :class:`TorchClassifier` has: :meth:`TorchClassifier.saliency` maps."""

    @property
    def saliency_method(self) -> str: ...

    def saliency(self, images: np.ndarray, classes: Optional[np.ndarray] = None) -> np.ndarray: ...


class CallableClassifier:
    """Any ``predict(images) -> labels`` function as a :class:`Classifier`."""

    def __init__(self, predict: Callable[[np.ndarray], np.ndarray]) -> None:
        self._predict = predict

    def predict(self, images: np.ndarray) -> np.ndarray:
        return np.asarray(self._predict(images)).astype(np.int64)


def load_torchscript(path: PathLike) -> TorchClassifier:
    """A user's model saved with ``torch.jit.save`` (no pickle is run to load it)."""
    return TorchClassifier(_torch().jit.load(str(path), map_location="cpu"))


def training_key(images: np.ndarray, labels: np.ndarray, settings: dict[str, Any]) -> str:
    """SHA-256 of the training data and settings: a cached model is reused only for both."""
    sha = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    sha.update(np.ascontiguousarray(images).tobytes())
    sha.update(np.ascontiguousarray(labels).astype(np.int64).tobytes())
    return sha.hexdigest()


def _train(
    module: Any,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    num_threads: Optional[int],
    progress: bool,
    what: str,
) -> None:
    """Train ``module`` in place: Adam on cross-entropy, mini-batches in an order drawn from
    ``seed``; dropout draws from PyTorch's global generator, which the caller seeds."""
    torch = _torch()
    threads_before = torch.get_num_threads()
    torch.set_num_threads(resolve_num_threads(num_threads))
    try:
        x, y = _as_tensor(images), torch.from_numpy(np.asarray(labels).astype(np.int64))
        optimiser = torch.optim.Adam(module.parameters(), lr=learning_rate)
        rng = np.random.default_rng(seed)
        module.train()
        with tqdm(total=epochs * len(x), unit="img", desc=what, disable=not progress or None) as bar:
            for _ in range(epochs):
                order = torch.from_numpy(rng.permutation(len(x)))
                for start in range(0, len(x), batch_size):
                    batch = order[start : start + batch_size]
                    optimiser.zero_grad()
                    loss = torch.nn.functional.cross_entropy(module(x[batch]), y[batch])
                    loss.backward()
                    optimiser.step()
                    bar.update(len(batch))
    finally:
        module.eval()
        torch.set_num_threads(threads_before)


def train_small_cnn(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    n_classes: int,
    epochs: int = 6,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    seed: int = 0,
    num_threads: Optional[int] = None,
    cache: Optional[PathLike] = None,
    progress: bool = True,
) -> TorchClassifier:
    """Train :func:`small_cnn` with Adam on the CPU, deterministically from ``seed`` for a
    given thread count (PyTorch's float reductions differ in the last bits across thread
    counts; the purification itself does not).

    With ``cache``, a model trained on the same data and settings is loaded from that
    file instead (weights only, no pickle), and a newly trained one is saved there; a
    cache file trained on anything else is refused, never overwritten.
    """
    torch = _torch()
    settings = dict(
        n_classes=n_classes,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
        shape=list(images.shape[1:]),
    )
    key = training_key(images, labels, settings)
    channels = 1 if images.ndim == 3 else images.shape[3]
    torch.manual_seed(seed)  # before the module: its initial weights come from this seed
    module = small_cnn(channels, images.shape[1], images.shape[2], n_classes)
    if cache is not None and Path(cache).exists():
        saved = torch.load(str(cache), map_location="cpu", weights_only=True)
        if saved.get("key") != key:
            raise ValueError(
                f"{cache}: a model cache trained on other data or settings; name another "
                "file or delete this one"
            )
        module.load_state_dict(saved["state_dict"])
        return TorchClassifier(module)

    _train(
        module,
        images,
        labels,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
        num_threads=num_threads,
        progress=progress,
        what="train target model",
    )
    if cache is not None:
        buffer = io.BytesIO()
        torch.save({"key": key, "settings": settings, "state_dict": module.state_dict()}, buffer)
        write_atomically(cache, buffer.getvalue())
    return TorchClassifier(module)


def fine_tune(
    classifier: Classifier,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    epochs: int,
    seed: int = 0,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    num_threads: Optional[int] = None,
    progress: bool = True,
) -> TorchClassifier:
    """A copy of ``classifier``'s PyTorch module trained ``epochs`` more epochs on
    ``images`` (such as purified clean images: the paper's data augmentation, its
    appendix E.0.2), with the training loop of :func:`train_small_cnn` and a fresh Adam;
    deterministic from ``seed`` for a given thread count. ``classifier`` is not changed.
    """
    if not isinstance(classifier, TorchClassifier):
        raise TypeError(
            f"fine_tune: expected a TorchClassifier (a PyTorch module), got "
            f"{type(classifier).__name__}; a black-box model cannot be fine-tuned"
        )
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"fine_tune: epochs: expected an integer >= 1, got {epochs!r}")
    if len(images) != len(labels) or len(images) == 0:
        raise ValueError(
            f"fine_tune: expected as many labels as images (at least one), got {len(images)} "
            f"images and {len(labels)} labels"
        )
    torch = _torch()
    module = copy.deepcopy(classifier.module)
    torch.manual_seed(seed)  # dropout's draws
    _train(
        module,
        images,
        labels,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
        num_threads=num_threads,
        progress=progress,
        what="fine-tune target model",
    )
    return TorchClassifier(module, batch_size=classifier.batch_size)
