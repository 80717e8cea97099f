"""PyTorch data pipelines (optional extra ``torch``): a transform and a dataset wrapper.

:class:`PurifyTransform` purifies uint8 CHW tensors (one image or a batch) and PIL images,
returning the input's type; it is a plain callable for ``transforms.Compose`` and, when
torchvision has ``transforms.v2``, a ``v2.Transform``. A transform never learns a
sample's position, so every image it sees is keyed by ``index_offset``;
:class:`PurifiedDataset` passes each item's index instead, which gives every sample the
bits of the one-shot ``purifier.purify(all_images)`` whatever the loader's order, batch
size or worker count.

Threads: both default to ``num_threads=1``: DataLoader workers already run in parallel
(a worker forked after a multi-threaded kernel call in the parent runs the kernel serially,
with the same results).
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Callable, Optional, Union

import numpy as np
import torch
from PIL import Image

from sifternet._threads import resolve_num_threads
from sifternet.purifiers import Purifier, check_fitted

try:  # torchvision is optional: without it the transform is a plain callable
    from torchvision import tv_tensors
    from torchvision.transforms import v2
except ImportError:
    v2 = None
except (OSError, RuntimeError) as error:  # installed for another torch build (e.g. CUDA vs CPU)
    warnings.warn(
        f"torchvision is installed but does not load ({error}); PurifyTransform "
        "works as a plain callable, not as a transforms.v2 Transform",
        stacklevel=2,
    )
    v2 = None

__all__ = ["PurifiedDataset", "PurifyTransform", "TorchScriptLabels", "images_to_tensor", "purify_image"]

ImageLike = Union[torch.Tensor, Image.Image]


def purify_image(
    purifier: Purifier, image: ImageLike, *, index_offset: int = 0, num_threads: Optional[int] = 1
) -> ImageLike:
    """``image`` purified, in its own type: a uint8 tensor (C, H, W) or (B, C, H, W) or a
    PIL image (mode ``L`` for a grey purifier, ``RGB`` for a colour one).

    Image b of a batch uses the global index ``index_offset + b``. Tensors keep their
    device and tensor subclass; the purifier works on a CPU copy.
    """
    shape = purifier.image_shape
    height, width, channels = shape[0], shape[1], purifier.n_channels
    if isinstance(image, Image.Image):
        mode = "L" if channels == 1 else "RGB"
        if image.mode != mode or image.size != (width, height):
            raise ValueError(
                f"image: expected a {width}x{height} PIL image of mode {mode!r} for this purifier, "
                f"got {image.size[0]}x{image.size[1]} mode {image.mode!r}"
            )
        pixels = purifier.purify(
            np.asarray(image).reshape(shape), index_offset=index_offset, num_threads=num_threads
        )
        return Image.fromarray(pixels.reshape((height, width) if channels == 1 else shape))
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"image: expected a torch.Tensor or a PIL image, got {type(image).__name__}")
    if image.dtype != torch.uint8:
        raise TypeError(
            f"image: expected a uint8 tensor (0-255, as PILToTensor makes), got {image.dtype}; "
            "put PurifyTransform before ToTensor / ToDtype / Normalize"
        )
    chw = (channels, height, width)
    if image.ndim not in (3, 4) or tuple(image.shape[-3:]) != chw:
        raise ValueError(
            f"image: expected a uint8 tensor (C, H, W) = {chw} or a batch "
            f"(B, {', '.join(map(str, chw))}), got shape {tuple(image.shape)}"
        )
    lead = tuple(image.shape[:-3])
    channels_last = image.detach().cpu().movedim(-3, -1).numpy()
    pixels = purifier.purify(
        np.ascontiguousarray(channels_last).reshape(lead + shape),
        index_offset=index_offset,
        num_threads=num_threads,
    )
    out = torch.from_numpy(pixels.reshape(lead + (height, width, channels))).movedim(-1, -3)
    out = out.contiguous().to(image.device)
    return out if type(image) is torch.Tensor else out.as_subclass(type(image))


def _is_plain_tensor(value: Any) -> bool:
    """A tensor that is not a torchvision tv_tensor (boxes, masks, ... pass through)."""
    return type(value) is torch.Tensor


class PurifyTransform(v2.Transform if v2 is not None else object):  # type: ignore[misc]
    """Purify an image in a torchvision pipeline: uint8 tensor (C, H, W) or (B, C, H, W)
    or PIL image in, the same type out (see :func:`purify_image`).

    Parameters
    ----------
    purifier : SifterNet or NearestSeedRepair
        A fitted purifier; the transform only reads it (safe across DataLoader workers).
    index_offset : int
        The global index of every single image (of image 0 of a batch). Use
        :class:`PurifiedDataset` to key each sample by its own index.
    num_threads : int or None
        Kernel threads per call (default 1: see the module notes on DataLoader workers).

    Notes
    -----
    Place it before ``ToTensor`` / ``ToDtype`` / ``Normalize``, on uint8 pixels. With
    torchvision's ``transforms.v2`` it is a ``v2.Transform`` that purifies ``tv_tensors.Image``,
    plain tensors and PIL images and passes boxes, masks and labels through.
    """

    if v2 is not None:
        _transformed_types = (tv_tensors.Image, Image.Image, _is_plain_tensor)

    def __init__(self, purifier: Purifier, *, index_offset: int = 0, num_threads: Optional[int] = 1) -> None:
        super().__init__()
        check_fitted(purifier)
        resolve_num_threads(num_threads)
        if isinstance(index_offset, bool) or not isinstance(index_offset, int) or index_offset < 0:
            raise ValueError(f"index_offset: expected a non-negative int, got {index_offset!r}")
        self.purifier = purifier
        self.index_offset = index_offset
        self.num_threads = num_threads

    def transform(self, inpt: ImageLike, params: dict[str, Any]) -> ImageLike:
        """The v2 hook (also the plain path's body): purify one image or batch."""
        return purify_image(self.purifier, inpt, index_offset=self.index_offset, num_threads=self.num_threads)

    _transform = transform  # the name of the v2 hook before torchvision 0.21

    if v2 is None:

        def __call__(self, image: ImageLike) -> ImageLike:
            return self.transform(image, {})

    def extra_repr(self) -> str:
        return f"index_offset={self.index_offset}, num_threads={self.num_threads}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


class PurifiedDataset(torch.utils.data.Dataset):
    """A map-style dataset whose images are purified with their own index as global index.

    Item ``i`` of ``dataset`` (an image, or a tuple/list whose first element is the image)
    comes back with the image purified exactly as ``purifier.purify(all_images)[i]``; other
    elements (labels, ...) pass through. Random augmentation belongs in ``transform``,
    which runs after purification, so the purified pixels do not depend on it.

    Parameters
    ----------
    dataset : torch.utils.data.Dataset
        Map-style, with ``__len__``; its images are uint8 tensors (C, H, W) or PIL images.
    purifier : SifterNet or NearestSeedRepair
        A fitted purifier (read only; pickles compactly to spawned workers).
    transform : callable, optional
        Applied to each purified image (augmentation, ``ToDtype``, ``Normalize``).
    num_threads : int or None
        Kernel threads per item (default 1: see the module notes on DataLoader workers).
    """

    def __init__(
        self,
        dataset: Any,
        purifier: Purifier,
        *,
        transform: Optional[Callable[[Any], Any]] = None,
        num_threads: Optional[int] = 1,
    ) -> None:
        check_fitted(purifier)
        resolve_num_threads(num_threads)
        self.dataset = dataset
        self.purifier = purifier
        self.transform = transform
        self.num_threads = num_threads

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} is out of range for a dataset of {len(self)} items")
        index %= len(self)
        item = self.dataset[index]
        sample = item[0] if isinstance(item, (tuple, list)) else item
        image = purify_image(self.purifier, sample, index_offset=index, num_threads=self.num_threads)
        if self.transform is not None:
            image = self.transform(image)
        if isinstance(item, (tuple, list)):
            return (image, *item[1:]) if isinstance(item, tuple) else [image, *item[1:]]
        return image


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (B, H, W) or (B, H, W, C) -> float32 (B, C, H, W) in [0, 1]: what the
    evaluation's models (and a TorchScript model for query mode) take."""
    batch = images[..., None] if images.ndim == 3 else images
    planes = np.array(batch.transpose(0, 3, 1, 2), dtype=np.float32)  # a copy: input may be read-only
    return torch.from_numpy(planes).div_(255.0)


class TorchScriptLabels:
    """A classifier saved with ``torch.jit.save`` (loading it runs no pickle) as the
    ``images -> labels`` callable that :class:`sifternet.query.QueryRepair` takes: the argmax
    of its outputs on :func:`images_to_tensor` of the images, ``batch_size`` at a time."""

    def __init__(self, path: Union[str, "os.PathLike[str]"], *, batch_size: int = 1024) -> None:
        with warnings.catch_warnings():  # TorchScript's deprecation notice: the user chose the format
            warnings.simplefilter("ignore", DeprecationWarning)
            self.module = torch.jit.load(str(path), map_location="cpu").eval()
        self.batch_size = batch_size

    def __call__(self, images: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            parts = [
                self.module(images_to_tensor(images[start : start + self.batch_size])).argmax(1).numpy()
                for start in range(0, len(images), self.batch_size)
            ]
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
