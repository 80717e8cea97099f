"""sifternet: black-box backdoor-trigger purification with Hopfield networks."""

import importlib as _importlib
import os as _os

from sifternet._version import __version__

# The kernel first: without it (a source tree shadowing a non-editable install, or never
# built) every module below would fail with a misleading circular-import error.
try:
    _importlib.import_module("sifternet._core")
except ModuleNotFoundError as _error:
    if _error.name != "sifternet._core":
        raise
    raise ImportError(
        "sifternet's compiled kernel (sifternet._core) is not built in "
        f"{_os.path.dirname(_os.path.abspath(__file__))}: install with `pip install .` and run "
        "`pytest` (not `python -m pytest`) from the repository root, or build in place with "
        "`python setup.py build_ext --inplace`"
    ) from _error

from sifternet.hopfield import HopfieldNetwork, RecallResult
from sifternet.modelfile import ModelFileError
from sifternet.nearest import NearestConfig, NearestSeedRepair
from sifternet.purifier import Purification, PurifierConfig, SifterNet
from sifternet.purifiers import load
from sifternet.seeds import seed_indices, select_seeds

del _importlib, _os

__all__ = [
    "HopfieldNetwork",
    "ModelFileError",
    "NearestConfig",
    "NearestSeedRepair",
    "Purification",
    "PurifierConfig",
    "RecallResult",
    "SifterNet",
    "__version__",
    "load",
    "seed_indices",
    "select_seeds",
]
