"""The one set of argument checks of sifternet's Python layer, with one error wording:
``"<name>: expected <what>, got <value>"`` (arrays are checked again by the binding)."""

from __future__ import annotations

import functools
import math
import numbers
import os
from typing import Any, Optional

import numpy as np


def check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    """ValueError unless ``value`` is one of the strings ``allowed``."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, allowed))}; got {value!r}")


def check_int(name: str, value: Any, *, low: int, high: Optional[int] = None) -> int:
    """``value`` as an int in [low, high]: TypeError unless an integer, ValueError outside."""
    if type(value) is int and value >= low and (high is None or value <= high):  # the common case, fast
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    number = int(value)
    if number < low or (high is not None and number > high):
        upper = "" if high is None else f" and <= {high}"
        raise ValueError(f"{name}: expected an int >= {low}{upper}, got {number}")
    return number


def check_finite(name: str, value: Any) -> float:
    """``value`` as a float: TypeError unless a real number, ValueError unless finite."""
    exact = type(value) is float or type(value) is int  # skips the slower ABC check
    if not exact and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ValueError(f"{name}: expected a finite number, got {str(value)[:40]}")
    return number


def check_fraction(name: str, value: Any) -> float:
    """``value`` as a float in [0, 1)."""
    fraction = check_finite(name, value)
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"{name}: expected a fraction in [0, 1), got {value!r}")
    return fraction


def check_uint8(name: str, images: Any) -> np.ndarray:
    """``images`` if it is a uint8 numpy array, else TypeError."""
    if not isinstance(images, np.ndarray):
        raise TypeError(f"{name}: expected a numpy uint8 array, got {type(images).__name__}")
    if images.dtype != np.uint8:
        raise TypeError(f"{name}: expected dtype uint8, got {images.dtype}")
    return images


def check_batch(name: str, images: Any) -> np.ndarray:
    """``images`` if it is a uint8 batch (B, H, W) or (B, H, W, C), else TypeError / ValueError."""
    check_uint8(name, images)
    if images.ndim not in (3, 4):
        raise ValueError(
            f"{name}: expected shape (B, H, W) or (B, H, W, C), got {images.ndim}-D shape {images.shape}"
        )
    return images


def check_seeds(seed_images: Any, labels: Any) -> Optional[np.ndarray]:
    """Check ``seed_images`` as a non-empty uint8 batch (B, H, W) or (B, H, W, C) and
    ``labels`` as None or B integers; return the labels as int64 (or None)."""
    check_uint8("seed_images", seed_images)
    if seed_images.ndim not in (3, 4) or 0 in seed_images.shape:
        raise ValueError(
            "seed_images: expected a non-empty batch (B, H, W) or (B, H, W, C), got "
            f"shape {seed_images.shape}"
        )
    if labels is None:
        return None
    labels = np.asarray(labels)
    if labels.shape != seed_images.shape[:1] or labels.dtype.kind not in "iu":
        raise ValueError(
            f"labels: expected {len(seed_images)} integers, one per seed image, got "
            f"dtype {labels.dtype} shape {labels.shape}"
        )
    return labels.astype(np.int64)


def check_image_batch(name: str, images: Any, shape: tuple[int, ...]) -> tuple[np.ndarray, bool]:
    """(B, H, W, C) view of one uint8 image or a batch of images of ``shape`` ((H, W) or
    (H, W, C)), and whether the input was a single image; TypeError / ValueError if not."""
    images = np.asarray(check_uint8(name, images))  # a subclass (np.matrix, memmap) as a plain view
    if images.shape == shape:
        single = True
    elif images.ndim == len(shape) + 1 and images.shape[1:] == shape:
        single = False
    else:
        raise ValueError(
            f"{name}: expected one image of shape {shape} or a batch (B, "
            f"{', '.join(map(str, shape))}), got {images.shape}"
        )
    batch = images[None] if single else images
    return batch.reshape(batch.shape[:3] + (shape[2] if len(shape) == 3 else 1,)), single


#: Bytes below which check_memory does not look (any machine has them).
ALWAYS_FITS = 1 << 24


def memory_limit() -> Optional[int]:
    """Bytes of memory this process may use at most: the machine's physical memory, or its
    control group's or address-space limit if lower; None where unknown."""
    limit = _machine_memory()
    try:
        import resource

        address_space = resource.getrlimit(resource.RLIMIT_AS)[0]
    except (ImportError, ValueError, OSError):  # not a POSIX system
        return limit
    if address_space == resource.RLIM_INFINITY or address_space <= 0:
        return limit
    return address_space if limit is None else min(limit, address_space)


@functools.lru_cache(maxsize=1)
def _machine_memory() -> Optional[int]:
    """Physical memory, or the control group's limit if lower (read once)."""
    try:
        limit = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not a POSIX system
        return None
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as file:
                text = file.read().strip()
        except OSError:
            continue
        if text.isdigit():
            limit = min(limit, int(text))
    return limit if limit > 0 else None


def check_memory(name: str, what: str, nbytes: int, advice: str) -> None:
    """MemoryError with ``advice`` if ``what`` (say "10 images") needs more than
    :func:`memory_limit` bytes: checked before allocating, since where Linux overcommits, a
    too large allocation may succeed and the process be killed once it is touched."""
    if nbytes < ALWAYS_FITS:
        return
    limit = memory_limit()
    if limit is not None and nbytes > limit:
        raise MemoryError(
            f"{name}: expected at most {limit / 2**30:.1f} GiB of working memory, got {what} "
            f"needing {nbytes / 2**30:.1f} GiB; {advice}"
        )


def empty(shape: tuple[int, ...], dtype: Any, name: str, what: str, advice: str) -> np.ndarray:
    """``np.empty(shape, dtype)`` after :func:`check_memory`; a failed allocation is a
    MemoryError with ``advice`` too."""
    nbytes = math.prod(shape) * np.dtype(dtype).itemsize
    check_memory(name, what, nbytes, advice)
    try:
        return np.empty(shape, dtype)
    except MemoryError:
        raise MemoryError(
            f"{name}: expected {nbytes / 2**30:.1f} GiB of free memory for {what}, got an "
            f"allocation failure; {advice}"
        ) from None
