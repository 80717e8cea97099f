"""sifternet's benchmarks (pytest-benchmark). A package, so that the test modules import
their helpers as ``benchmarks.common`` and ``benchmarks.baselines`` under any of pytest's
import modes, and never clash with another directory's ``conftest``."""
