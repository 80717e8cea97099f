"""Hostile input through the public API: the interpreter never dies or hangs. Each call
returns a correct result or raises a documented exception (TypeError, ValueError,
MemoryError with advice) in one line. Whatever could crash or hang runs in a child
process, whose return code or timeout is the verdict."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from sifternet import HopfieldNetwork, SifterNet, _checks
from sifternet._threads import resolve_num_threads
from sifternet.binarize import binarize, states_to_pixels
from sifternet.cli import main
from sifternet.repair import repair

PRELUDE = """
import numpy as np
from sifternet import HopfieldNetwork, SifterNet
from sifternet.binarize import binarize
img = np.random.default_rng(0).integers(0, 256, (20, 28, 28), dtype=np.uint8)
"""
INDEX_RANGE = r"expected global indices in \[0, 2\*\*64\)"
ADVICE = "in chunks"
MAX_THREADS = 1024
ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")


def run_python(
    code: str, *, timeout: float = 240, address_space: int | None = None
) -> subprocess.CompletedProcess:
    """Run ``code`` (after PRELUDE) in a fresh interpreter, optionally with its address space
    capped (bytes), so that a crash, a hang or a runaway allocation stays there."""

    def cap() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    return subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=cap if address_space and not ASAN else None,
        cwd=Path(__file__).parent,  # not the source tree: the installed package runs
    )


def last_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (20, 28, 28), dtype=np.uint8)


@pytest.fixture(scope="module")
def purifier(images) -> SifterNet:
    return SifterNet(steps=200).fit(images[:10])


# -- memory: a batch that cannot fit is a MemoryError with advice, never a crash -----------
@pytest.mark.parametrize("method", ["global", "local_mean", "otsu"])
def test_huge_broadcast_batch_is_a_memory_error_with_advice(method):
    done = run_python(
        f"""
        purifier = SifterNet.repairing("highlights", binarize={method!r}).fit(img[:10])
        huge = np.broadcast_to(img[0], (10**8, 28, 28))
        for call in (purifier.purify, purifier.to_states, lambda x: binarize(x, {method!r})):
            try:
                call(huge)
            except MemoryError as error:
                print(type(error).__name__, str(error).replace("\\n", " "))
        """
    )
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    assert len(lines) == 3 and all(
        line.startswith("MemoryError images: ") and ADVICE in line for line in lines
    )


def test_kernel_copies_of_huge_broadcast_arrays_are_memory_errors(purifier):
    spins = np.broadcast_to(np.ones(784, np.int8), (10**10, 784))
    with pytest.raises(MemoryError, match="^patterns: expected "):
        HopfieldNetwork().fit(spins)
    with pytest.raises(MemoryError, match=ADVICE):
        HopfieldNetwork().fit(np.ones((2, 784), np.int8)).recall(spins, steps=1)
    states = np.broadcast_to(np.ones((28, 28, 1), np.int8), (10**9, 28, 28, 1))
    pixels = np.broadcast_to(np.zeros((28, 28), np.uint8), (10**9, 28, 28))
    with pytest.raises(MemoryError, match=ADVICE):
        purifier.recall_states(states)
    with pytest.raises(MemoryError, match=ADVICE):
        purifier.to_images(pixels, states, states)
    with pytest.raises(MemoryError, match=ADVICE):
        repair("restore", pixels[..., None], states, states, 3)


def test_the_memory_bound_does_not_rely_on_overcommit(monkeypatch, purifier, images):
    """Linux may grant any allocation and kill the process when it is touched: the bound is
    checked before allocating, against the machine's memory (here, a pretended 16 MiB)."""
    monkeypatch.setattr(_checks, "memory_limit", lambda: 1 << 24)
    batch = np.broadcast_to(images[0], (30000, 28, 28))  # 22.4 MiB of states
    for call in (purifier.purify, purifier.to_states, purifier.binarize, binarize):
        with pytest.raises(MemoryError, match=f"^images: .*{ADVICE}"):
            call(batch)
    states = np.ones((30000, 28, 28, 1), np.int8)
    with pytest.raises(MemoryError, match=f"^states: .*{ADVICE}"):
        purifier.recall_states(states)
    with pytest.raises(MemoryError, match=f"^images: .*{ADVICE}"):
        purifier.to_images(batch, states, states)
    with pytest.raises(MemoryError, match=f"^states: .*{ADVICE}"):
        purifier.networks[0].recall(states.reshape(30000, -1), steps=1)
    with pytest.raises(MemoryError, match="^patterns: expected "):
        HopfieldNetwork().fit(states.reshape(30000, -1))
    purifier.purify(images)  # small batches still pass


# -- OpenCV's int sizes: never reached with an overflowing shape ---------------------------
def test_global_binarisation_of_rows_beyond_opencv_int_sizes():
    done = run_python(
        """
        x = np.broadcast_to(np.array([[10], [250]], np.uint8), (1, 2, 2**30 + 4))
        states = binarize(x, "global")
        print(states.shape, states[0, 0].max(), states[0, 1].min())
        """,
        address_space=8 << 30,
    )
    assert last_line(done) == "(1, 2, 1073741828) -1 1"


@pytest.mark.parametrize(
    "method, shape",
    [("local_mean", (1, 1, 2**31 + 8)), ("local_mean", (1, 2**31 - 5, 1)), ("otsu", (1, 2**16, 2**15 + 1))],
)
def test_images_beyond_opencv_int_sizes_are_value_errors(method, shape):
    done = run_python(
        f"""
        try:
            binarize(np.broadcast_to(np.uint8(7), {shape}), {method!r})
        except ValueError as error:
            print(error)
        """,
        address_space=6 << 30,
    )
    assert last_line(done).startswith(f"images: expected an image OpenCV can hold ({method}:")


def test_more_channels_than_one_opencv_matrix_carries():
    rng = np.random.default_rng(3)
    batch = rng.integers(0, 256, (4, 5, 6, 200), dtype=np.uint8)
    still = SifterNet(steps=0).fit(batch)
    np.testing.assert_array_equal(still.purify(batch), states_to_pixels(still.to_states(batch)))
    moving = still.with_options(steps=100)
    states = moving.to_states(batch)
    recalled = moving.recall_states(states, index_offset=2)
    np.testing.assert_array_equal(
        moving.purify(batch, index_offset=2), moving.to_images(batch, states, recalled)
    )


# -- fork: a child forked after a parallel call runs serially, with the same bits ---------
FORK_PARENT = """
import os, signal, time
batch = np.random.default_rng(1).integers(0, 256, (400, 28, 28), dtype=np.uint8)
purifier = SifterNet(steps=500, num_threads=2).fit(img[:10])
dense = HopfieldNetwork(num_threads=2).fit(purifier.to_states(img[:10]).reshape(10, -1), rule="storkey")
states = purifier.to_states(batch).reshape(400, -1)
expected = purifier.purify(batch), dense.recall(states, steps=500).states  # 2 threads here


def child_work():
    again = HopfieldNetwork(num_threads=2).fit(purifier.to_states(img[:10]).reshape(10, -1), rule="storkey")
    same = np.array_equal(again.weights, dense.weights)
    same &= np.array_equal(again.recall(states, steps=500, num_threads=2).states, expected[1])
    return same & np.array_equal(purifier.purify(batch, num_threads=2), expected[0])
"""


def test_a_forked_child_runs_after_a_parallel_parent():
    done = run_python(
        FORK_PARENT
        + textwrap.dedent(
            """
        pid = os.fork()
        if pid == 0:
            os._exit(0 if child_work() else 3)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            finished, status = os.waitpid(pid, os.WNOHANG)
            if finished:
                print("exit", os.waitstatus_to_exitcode(status))
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            print("hung")
        """
        )
    )
    assert last_line(done) == "exit 0"


def test_a_multiprocessing_fork_pool_runs_after_a_parallel_parent():
    done = run_python(
        FORK_PARENT
        + textwrap.dedent(
            """
        import multiprocessing


        def chunk(start):
            part = purifier.purify(batch[start : start + 100], index_offset=start, num_threads=2)
            return np.array_equal(part, expected[0][start : start + 100])


        pool = multiprocessing.get_context("fork").Pool(2)
        try:
            print(all(pool.map_async(chunk, range(0, 400, 100)).get(timeout=90)))
        except multiprocessing.TimeoutError:
            print("hung")
        finally:
            pool.terminate()
        """
        )
    )
    assert last_line(done) == "True"


# -- global indices: one range rule, one message ------------------------------------------
def test_index_offset_reaches_the_last_global_index(purifier, images):
    last = 2**64 - 1
    np.testing.assert_array_equal(
        purifier.purify(images[0], index_offset=last), purifier.purify(images[0], indices=[last])
    )
    np.testing.assert_array_equal(
        purifier.purify(images[:3], index_offset=last - 2),
        purifier.purify(images[:3], indices=[last - 2, last - 1, last]),
    )
    states = purifier.to_states(images[:2]).reshape(2, -1)
    network = purifier.networks[0]
    np.testing.assert_array_equal(
        network.recall(states, index_offset=last - 1).states,
        network.recall(states, indices=np.array([last - 1, last], np.uint64)).states,
    )


@pytest.mark.parametrize(
    "keys, bad",
    [
        ({"index_offset": 2**64 - 1}, "18446744073709551615..18446744073709551616"),
        ({"index_offset": 2**64}, "18446744073709551616..18446744073709551617"),
        ({"index_offset": 2**80}, str(2**80)),
        ({"index_offset": -1}, "-1..0"),
        ({"indices": [0, 2**64]}, "0..18446744073709551616"),
        ({"indices": [-1, 2**64 - 1]}, "-1..18446744073709551615"),
        ({"indices": np.array([-5, 3])}, "-5..3"),
    ],
)
def test_global_indices_follow_one_range_rule(purifier, images, keys, bad):
    name = next(iter(keys))
    with pytest.raises(ValueError, match=f"^{name}: {INDEX_RANGE}, got {bad}"):
        purifier.purify(images[:2], **keys)
    with pytest.raises(ValueError, match=f"^{name}: {INDEX_RANGE}, got {bad}"):
        purifier.networks[0].recall(purifier.to_states(images[:2]).reshape(2, -1), **keys)


# -- thread counts: a cap, one line ----------------------------------------------------------
@pytest.mark.parametrize("count", [MAX_THREADS + 1, 99999999999, 2**63, 2**64])
def test_absurd_thread_counts_are_one_line_value_errors(purifier, images, count):
    message = f"^num_threads: expected a positive count up to {MAX_THREADS}, -1 or None, got {count}$"
    assert resolve_num_threads(MAX_THREADS) == MAX_THREADS
    for call in (
        lambda: resolve_num_threads(count),
        lambda: SifterNet(num_threads=count),
        lambda: HopfieldNetwork(num_threads=count),
        lambda: purifier.purify(images, num_threads=count),
        lambda: binarize(images, num_threads=count),
        lambda: purifier.networks[0].recall(purifier.to_states(images).reshape(20, -1), num_threads=count),
    ):
        with pytest.raises(ValueError, match=message):
            call()


def test_cli_threads_beyond_the_cap_is_one_line(tmp_path, capsys):
    data = tmp_path / "data.npz"
    rng = np.random.default_rng(0)
    np.savez(data, images=rng.integers(0, 256, (6, 8, 8), dtype=np.uint8), labels=np.repeat(np.arange(3), 2))
    argv = ["fit", str(data), "--out", str(tmp_path / "m.npz"), "--threads", "99999999999"]
    assert main(argv) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("sifternet: error: ") and "99999999999" in error


# -- options beyond the kernel's integers -------------------------------------------------
@pytest.mark.parametrize(
    "options, name",
    [
        ({"steps": 2**64}, "steps"),
        ({"steps": None, "max_sweeps": 2**64}, "max_sweeps"),
        ({"output": "inpaint", "fill_size": 2**64}, "fill_size"),
        ({"seed": 2**64 - 1, "steps": 2**63}, "steps"),
    ],
)
def test_options_beyond_the_kernel_integers_are_value_errors(images, options, name):
    with pytest.raises(ValueError, match=f"^{name}: expected an int >= "):
        SifterNet(**options).fit(images[:5]).purify(images)


@pytest.mark.parametrize(
    "options, name",
    [
        ({"steps": 2**64}, "steps"),
        ({"max_sweeps": 2**63}, "max_sweeps"),
        ({"seed": 2**64}, "seed"),
        ({"channel": 2**64, "channels": 2**64 + 1}, "channel"),
        ({"channels": 2**64}, "channels"),
        ({"agreement": 2**2000}, "agreement"),
        ({"order": 3}, "order"),
    ],
)
def test_recall_options_beyond_the_kernel_integers_are_one_line_errors(options, name):
    network = HopfieldNetwork().fit(np.ones((2, 16), np.int8))
    with pytest.raises((TypeError, ValueError), match=f"^{name}: expected ") as error:
        network.recall(np.ones((3, 16), np.int8), **options)
    assert "\n" not in str(error.value)


# -- layouts and shapes that must simply work ----------------------------------------------
@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix
def test_numpy_subclasses_are_images(purifier, images):
    np.testing.assert_array_equal(purifier.purify(np.matrix(images[0])), purifier.purify(images[0]))
    masked = np.ma.masked_array(images, mask=images > 200)
    np.testing.assert_array_equal(purifier.purify(masked), purifier.purify(images))


def test_hostile_layouts_purify_like_contiguous_images(tmp_path, images):
    path = tmp_path / "images.npy"
    np.save(path, images)
    mapped = np.load(path, mmap_mode="r")
    assert not mapped.flags.writeable
    for options in (
        {},
        {"binarize": "global", "output": "inpaint"},
        {"binarize": "otsu", "output": "restore"},
    ):
        purifier = SifterNet(steps=100, **options).fit(mapped[:5])
        expected = purifier.purify(images[::-1, ::-1, ::-1].copy())
        for variant in (
            mapped[::-1, ::-1, ::-1],
            images[::-1, ::-1, ::-1],
            np.asfortranarray(images[::-1, ::-1, ::-1]),
        ):
            np.testing.assert_array_equal(purifier.purify(variant), expected)
        repeated = np.broadcast_to(images[3], (6, 28, 28))
        np.testing.assert_array_equal(
            purifier.purify(repeated, indices=[0] * 6)[5], purifier.purify(images[3], indices=[0])
        )


@pytest.mark.parametrize("method", ["global", "local_mean", "otsu"])
@pytest.mark.parametrize("output", ["binary", "restore", "inpaint"])
def test_tiny_images_and_windows_larger_than_the_image(method, output):
    rng = np.random.default_rng(5)
    for shape in ((6, 1, 1), (6, 1, 1, 3), (6, 2, 1), (6, 1, 3, 2)):
        batch = rng.integers(0, 256, shape, dtype=np.uint8)
        for border in ("zero", "replicate", "reflect"):
            purifier = SifterNet(binarize=method, block_size=2901, border=border, output=output, fill_size=99)
            purified = purifier.fit(batch).purify(batch)
            assert purified.shape == shape and purified.dtype == np.uint8
            assert purifier.purify(batch[0]).shape == shape[1:]


@pytest.mark.parametrize(
    "value, error",
    [
        (np.uint8(3), TypeError),
        (np.array(3, np.uint8), ValueError),
        (np.array([[[1]]], dtype=object), TypeError),
        (np.zeros((2, 28, 28), np.float32), TypeError),
        (np.zeros((2, 28, 29), np.uint8), ValueError),
        ([[0] * 28] * 28, TypeError),
    ],
)
def test_non_images_are_documented_errors(purifier, value, error):
    for call in (purifier.purify, purifier.to_states, purifier.binarize):
        with pytest.raises(error, match="^images: expected "):
            call(value)
