"""The benchmarks' pytest fixtures and closing summary; helpers live in common.py."""

from __future__ import annotations

import pytest
from common import GTSRB, load_gtsrb, summary_lines, w1_purifier


@pytest.fixture(scope="session")
def gtsrb():
    """GTSRB test images and labels from ../shared/data; the benchmark skips without them."""
    if not GTSRB.exists():
        pytest.skip(f"{GTSRB} not found: the benchmarks use the project's shared data sets")
    return load_gtsrb()


@pytest.fixture(scope="session")
def gtsrb_purifier(gtsrb):
    return w1_purifier(*gtsrb)


def pytest_terminal_summary(terminalreporter):
    for line in summary_lines():
        terminalreporter.write_line(line)
