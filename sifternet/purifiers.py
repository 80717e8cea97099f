"""Either purifier, for the code that takes any: :class:`SifterNet` or
:class:`NearestSeedRepair` (both fit on seeds, purify and score images, and save model files)."""

from __future__ import annotations

from typing import Any, Optional, Union

from sifternet.modelfile import ModelReader, PathLike, read_model_file
from sifternet.nearest import KIND as NEAREST
from sifternet.nearest import NearestSeedRepair
from sifternet.purifier import SifterNet

Purifier = Union[SifterNet, NearestSeedRepair]


def check_fitted(purifier: Any) -> Purifier:
    """``purifier`` if it is a fitted purifier: TypeError if it is none, RuntimeError if unfitted."""
    if not isinstance(purifier, (SifterNet, NearestSeedRepair)):
        raise TypeError(
            f"purifier: expected a fitted SifterNet or NearestSeedRepair, got {type(purifier).__name__}"
        )
    purifier.image_shape  # noqa: B018  (raises RuntimeError when not fitted)
    return purifier


def from_model_bytes(
    data: bytes, *, num_threads: Optional[int] = None, source: str = "model file"
) -> Purifier:
    """The purifier a model file's bytes hold, of the kind its metadata names."""
    if ModelReader(data, source).metadata.get("purifier") == NEAREST:
        return NearestSeedRepair.from_bytes(data, num_threads=num_threads, source=source)
    return SifterNet.from_bytes(data, num_threads=num_threads, source=source)


def load(path: PathLike, *, num_threads: Optional[int] = None) -> Purifier:
    """The purifier the model file at ``path`` holds, of either kind."""
    return from_model_bytes(read_model_file(path), num_threads=num_threads, source=str(path))
