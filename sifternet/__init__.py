"""sifternet: black-box backdoor-trigger purification with Hopfield networks."""

from sifternet._version import __version__
from sifternet.hopfield import HopfieldNetwork, RecallResult
from sifternet.modelfile import ModelFileError
from sifternet.purifier import PurifierConfig, SifterNet
from sifternet.seeds import seed_indices, select_seeds

__all__ = [
    "HopfieldNetwork",
    "ModelFileError",
    "PurifierConfig",
    "RecallResult",
    "SifterNet",
    "__version__",
    "seed_indices",
    "select_seeds",
]
