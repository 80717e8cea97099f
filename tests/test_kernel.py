"""The kernel's row loop (for_each_row in csrc/parallel.hpp): an exception thrown in a row
or in a thread's scratch factory reaches Python as an exception, whatever the thread count,
instead of terminating the process; without one, every row runs exactly once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sifternet import _core

ROWS = 200


@pytest.mark.parametrize("threads", [1, 2])
def test_every_row_runs_once_without_an_error(threads):
    assert _core._fail_in_row(ROWS, ROWS, threads) == ROWS
    assert _core._fail_in_row(0, 0, threads) == 0


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("failing_row", [0, 1, 31, 32, 100, ROWS - 1])
def test_an_error_in_a_row_raises_runtime_error(threads, failing_row):
    with pytest.raises(RuntimeError, match=f"^row {failing_row} failed$"):
        _core._fail_in_row(ROWS, failing_row, threads)
    assert _core._fail_in_row(ROWS, ROWS, threads) == ROWS  # the kernel still works after


@pytest.mark.parametrize("threads", [1, 2])
def test_an_error_in_the_scratch_factory_raises_runtime_error(threads):
    with pytest.raises(RuntimeError, match="^scratch failed$"):
        _core._fail_in_row(ROWS, -1, threads)


def test_the_interpreter_survives_errors_in_rows():
    """In a child process, so that a std::terminate would show as a crash, not a lost run."""
    code = (
        "from sifternet import _core\n"
        "for threads in (1, 2, 4):\n"
        "    for row in (-1, 0, 7, 99):\n"
        "        try:\n"
        "            _core._fail_in_row(100, row, threads)\n"
        "        except RuntimeError:\n"
        "            pass\n"
        "        else:\n"
        "            raise SystemExit('no error')\n"
        "print('alive')\n"
    )
    done = subprocess.run(  # outside the source tree: the installed package runs
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=Path(__file__).parent
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "alive"


def test_fail_in_row_checks_its_arguments():
    with pytest.raises(ValueError, match="num_threads: expected a positive count"):
        _core._fail_in_row(10, 0, 0)
    with pytest.raises(ValueError, match="n_rows: expected a count >= 0"):
        _core._fail_in_row(-1, 0, 1)
