"""The one set of argument checks of sifternet's Python layer, with one error wording:
``"<name>: expected <what>, got <value>"`` (arrays are checked again by the binding)."""

from __future__ import annotations

import math
import numbers
from typing import Any, Optional

import numpy as np


def check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    """ValueError unless ``value`` is one of the strings ``allowed``."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, allowed))}; got {value!r}")


def check_int(name: str, value: Any, *, low: int, high: Optional[int] = None) -> int:
    """``value`` as an int in [low, high]: TypeError unless an integer, ValueError outside."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    number = int(value)
    if number < low or (high is not None and number > high):
        upper = "" if high is None else f" and <= {high}"
        raise ValueError(f"{name}: expected an int >= {low}{upper}, got {number}")
    return number


def check_finite(name: str, value: Any) -> float:
    """``value`` as a float: TypeError unless a real number, ValueError unless finite."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
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
