"""SifterNet as an Adversarial Robustness Toolbox defence (optional extra ``art``).

:class:`SifterNetPreprocessor` is an ART ``Preprocessor``: give it to any ART estimator
as ``preprocessing_defences`` and every ``predict`` (and, with ``apply_fit=True``,
every ``fit``) sees purified inputs. ART estimators take float images in their
``clip_values`` range, channels first or last; the preprocessor maps them to the uint8
(B, H, W[, C]) pixels the purifier was fitted on and the result back to the input's
layout, dtype and range.

Its gradient is the identity (ART's default ``estimate_gradient``), i.e. the BPDA
approximation: white-box attacks that differentiate through the estimator see the
purification as absent and attack the model at the purified input. Treat robustness
measured with gradient attacks through it accordingly.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
from art.defences.preprocessor import Preprocessor

from sifternet._threads import resolve_num_threads
from sifternet.purifiers import Purifier, check_fitted

__all__ = ["SifterNetPreprocessor"]


class SifterNetPreprocessor(Preprocessor):
    """An ART preprocessing defence that purifies images with a fitted purifier.

    Parameters
    ----------
    purifier : SifterNet or NearestSeedRepair
        A fitted purifier (grey (H, W) or colour (H, W, C)).
    clip_values : (float, float)
        The estimator's input range, mapped linearly onto pixels 0..255 (default (0, 1)).
    channels_first : bool
        Inputs are (B, C, H, W) (PyTorch) rather than (B, H, W, C). Grey inputs may also
        come without a channel axis, (B, H, W).
    num_threads : int or None
        Kernel threads: ``None`` follows ``OMP_NUM_THREADS``, ``-1`` all cores.
    apply_fit, apply_predict : bool
        Purify before training / before prediction (ART's switches; default predict only).

    Notes
    -----
    Image b of a call is keyed by its position b in that call, so
    ``preprocessor(x)`` gives the bits of ``purifier.purify(pixels_of_x)``. The gradient
    is the identity (BPDA; see the module notes). In ART's ``PyTorchClassifier`` a
    NumPy preprocessor like this one must be the only defence (optionally followed by
    ART's standardisation).
    """

    params = ["clip_values", "channels_first", "num_threads"]

    def __init__(
        self,
        purifier: Purifier,
        *,
        clip_values: tuple[float, float] = (0.0, 1.0),
        channels_first: bool = False,
        num_threads: Optional[int] = None,
        apply_fit: bool = False,
        apply_predict: bool = True,
    ) -> None:
        check_fitted(purifier)
        super().__init__(is_fitted=True, apply_fit=apply_fit, apply_predict=apply_predict)
        self.purifier = purifier
        self.clip_values = clip_values
        self.channels_first = channels_first
        self.num_threads = num_threads
        self._check_params()

    def _check_params(self) -> None:
        try:
            low, high = (float(v) for v in self.clip_values)
        except (TypeError, ValueError):
            raise ValueError(
                f"clip_values: expected two numbers (min, max), got {self.clip_values!r}"
            ) from None
        if not np.isfinite([low, high]).all() or low >= high:
            raise ValueError(f"clip_values: expected finite min < max, got {self.clip_values!r}")
        if not isinstance(self.channels_first, bool):
            raise TypeError(f"channels_first: expected a bool, got {type(self.channels_first).__name__}")
        resolve_num_threads(self.num_threads)

    def _sample_shapes(self) -> list[tuple[int, ...]]:
        """The accepted shapes of one input image, the purifier's own layout first."""
        shape = self.purifier.image_shape
        height, width = shape[:2]
        channels = self.purifier.n_channels
        moved = (channels, height, width) if self.channels_first else (height, width, channels)
        return [moved, (height, width)] if channels == 1 else [moved]

    def __call__(self, x: np.ndarray, y: Any = None) -> tuple[np.ndarray, Any]:
        """Purify the batch ``x`` (in ``clip_values`` range); ``y`` passes through.

        Returns ``x`` purified, with ``x``'s shape and dtype, in ``clip_values`` range.
        """
        if not isinstance(x, np.ndarray) or x.dtype.kind not in "fiu":
            kind = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
            raise TypeError(f"x: expected a real-valued numpy array, got {kind}")
        shapes = self._sample_shapes()
        if x.shape[1:] not in shapes:
            expected = " or ".join("(B, " + ", ".join(map(str, s)) + ")" for s in shapes)
            raise ValueError(f"x: expected a batch {expected}, got shape {x.shape}")
        low, high = (float(v) for v in self.clip_values)
        if x.size and not (np.isfinite(x).all() and low <= x.min() and x.max() <= high):
            raise ValueError(
                f"x: expected finite values in clip_values [{low}, {high}], found "
                f"[{np.nanmin(x)}, {np.nanmax(x)}]"
            )
        channels_last = np.moveaxis(x, 1, -1) if self.channels_first and x.ndim == 4 else x
        scaled = (channels_last.astype(np.float64) - low) * (255.0 / (high - low))
        pixels = np.rint(scaled).clip(0, 255).astype(np.uint8)
        purified = self.purifier.purify(
            np.ascontiguousarray(pixels.reshape((len(x),) + self.purifier.image_shape)),
            num_threads=self.num_threads,
        ).reshape(channels_last.shape)
        restored = low + purified * ((high - low) / 255.0)
        if x.dtype.kind in "iu":
            restored = np.rint(restored)
        if self.channels_first and x.ndim == 4:
            restored = np.moveaxis(restored, -1, 1)
        return np.ascontiguousarray(restored, dtype=x.dtype), y

    def __repr__(self) -> str:
        return (
            f"SifterNetPreprocessor(clip_values={self.clip_values!r}, "
            f"channels_first={self.channels_first}, num_threads={self.num_threads!r}, "
            f"apply_fit={self.apply_fit}, apply_predict={self.apply_predict})"
        )
