"""sifternet.dask: chunked purification equals one-shot purification, bit for bit."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

da = pytest.importorskip(
    "dask.array", reason="the dask extra is not installed (pip install 'sifternet[dask]')"
)

import sifternet  # noqa: E402
from sifternet import SifterNet, select_seeds  # noqa: E402
from sifternet.dask import purify  # noqa: E402

SAMPLE = Path(sifternet.__file__).parent / "data" / "gtsrb_sample.npz"


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    with np.load(SAMPLE) as data:
        return data["images"]


@pytest.fixture(scope="module")
def purifier(images: np.ndarray) -> SifterNet:
    with np.load(SAMPLE) as data:
        seeds, labels = select_seeds(data["images"], data["labels"], per_class=1, seed=0)
    return SifterNet(steps=300, seed=3).fit(seeds, labels)


@pytest.fixture(scope="module")
def expected(images: np.ndarray, purifier: SifterNet) -> np.ndarray:
    return purifier.purify(images)


CHUNKINGS = [516, 100, (1, 515), (200, 16, 300), (7,) * 73 + (5,)]


@pytest.mark.parametrize("chunks", CHUNKINGS)
def test_threaded_scheduler_matches_one_shot(images, purifier, expected, chunks):
    chunked = da.from_array(images, chunks=(chunks, -1, -1, -1))
    lazy = purify(chunked, purifier)
    assert lazy.dtype == np.uint8 and lazy.chunks == chunked.chunks
    np.testing.assert_array_equal(lazy.compute(scheduler="threads"), expected)


def test_image_axes_are_rechunked(images, purifier, expected):
    lazy = purify(da.from_array(images, chunks=(50, 16, 8, 1)), purifier)
    assert all(len(c) == 1 for c in lazy.chunks[1:])
    np.testing.assert_array_equal(lazy.compute(scheduler="sync"), expected)


def test_grey_images_match_one_shot(images):
    grey = images[..., 0].copy()
    grey_purifier = SifterNet(steps=200).fit(grey[:30])
    np.testing.assert_array_equal(
        purify(da.from_array(grey, chunks=(77, -1, -1)), grey_purifier).compute(scheduler="sync"),
        grey_purifier.purify(grey),
    )


def test_model_enters_the_graph_once(images, purifier):
    lazy = purify(da.from_array(images, chunks=(50, -1, -1, -1)), purifier)
    graph = dict(lazy.__dask_graph__())
    model_keys = [k for k in graph if isinstance(k, str) and k.startswith("sifternet-model-")]
    assert len(model_keys) == 1
    block_tasks = [task for key, task in graph.items() if isinstance(key, tuple) and key[0] == lazy.name]
    assert len(block_tasks) == 11
    model_size = len(purifier.to_bytes())
    assert all(len(pickle.dumps(task)) < model_size / 4 for task in block_tasks)  # a key, not a copy


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda im: im, TypeError, "images: expected a dask.array.Array, got ndarray"),
        (
            lambda im: da.from_array(im.astype(np.float32)),
            TypeError,
            "images: expected dtype uint8, got float32",
        ),
        (
            lambda im: da.from_array(im[..., :1]),
            ValueError,
            r"images: expected a batch \(B, 32, 32, 3\) for this purifier, got shape \(516, 32, 32, 1\)",
        ),
        (
            lambda im: da.from_array(im[0]),
            ValueError,
            r"images: expected a batch \(B, 32, 32, 3\) for this purifier, got shape \(32, 32, 3\)",
        ),
    ],
    ids=["numpy", "float", "one-channel", "one-image"],
)
def test_bad_images_are_refused(images, purifier, make, error, message):
    with pytest.raises(error, match=message):
        purify(make(images), purifier)


def test_an_unfitted_purifier_is_refused(images):
    with pytest.raises(RuntimeError, match=r"not fitted yet: call fit\(seed_images\)"):
        purify(da.from_array(images), SifterNet())


def test_something_else_than_a_purifier_is_refused(images):
    with pytest.raises(TypeError, match="expected a fitted SifterNet or NearestSeedRepair, got str"):
        purify(da.from_array(images), "model.npz")


def test_a_bad_thread_count_is_refused_before_any_task_runs(images, purifier):
    with pytest.raises(ValueError, match="num_threads: expected a positive count, -1 or None, got 0"):
        purify(da.from_array(images), purifier, num_threads=0)


def test_unknown_chunk_sizes_are_refused(images, purifier):
    unknown = da.from_array(images, chunks=(100, -1, -1, -1))
    unknown = unknown[unknown[:, 0, 0, 0] < 255]  # boolean mask: unknown chunk sizes
    with pytest.raises(ValueError, match=r"unknown chunk sizes.*call images\.compute_chunk_sizes\(\) first"):
        purify(unknown, purifier)


def test_core_package_imports_no_adapter_dependency(tmp_path):
    probe = (
        "import sys, sifternet, sifternet.cli; "
        "print(*(m for m in ('dask', 'torch', 'art') if m in sys.modules))"
    )
    # outside the source tree, so that the installed package is the one imported
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_process_cluster_matches_one_shot(images, purifier, expected):
    distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        assert set(client.run(os.getpid).values()).isdisjoint({os.getpid()})
        assert set(client.run(os.environ.get, "OMP_NUM_THREADS").values()) == {"1"}
        for chunks in (100, (1, 515), (200, 16, 300)):
            lazy = purify(da.from_array(images, chunks=(chunks, -1, -1, -1)), purifier)
            np.testing.assert_array_equal(client.compute(lazy).result(), expected)


def test_a_nearest_seed_repair_is_mapped_too(images: np.ndarray):
    nearest = sifternet.NearestSeedRepair().fit(images[::40])
    chunked = purify(da.from_array(images, chunks=(100, 32, 32, 3)), nearest, num_threads=2)
    np.testing.assert_array_equal(chunked.compute(), nearest.purify(images))
