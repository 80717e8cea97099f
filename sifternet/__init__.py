"""sifternet: black-box backdoor-trigger purification with Hopfield networks."""

from sifternet._version import __version__
from sifternet.hopfield import HopfieldNetwork, RecallResult

__all__ = ["HopfieldNetwork", "RecallResult", "__version__"]
