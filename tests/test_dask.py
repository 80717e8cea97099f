"""sifternet.dask: chunked purification equals one-shot purification, bit for bit."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

da = pytest.importorskip("dask.array", reason="the dask extra is not installed (pip install 'sifternet[dask]')")

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


def test_image_axes_are_rechunked_and_grey_works(images, purifier, expected):
    lazy = purify(da.from_array(images, chunks=(50, 16, 8, 1)), purifier)
    assert all(len(c) == 1 for c in lazy.chunks[1:])
    np.testing.assert_array_equal(lazy.compute(scheduler="sync"), expected)
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


def test_bad_input(images, purifier):
    with pytest.raises(TypeError, match="dask.array.Array"):
        purify(images, purifier)
    with pytest.raises(TypeError, match="uint8"):
        purify(da.from_array(images.astype(np.float32)), purifier)
    with pytest.raises(ValueError, match=r"expected a batch \(B, 32, 32, 3\)"):
        purify(da.from_array(images[..., :1]), purifier)
    with pytest.raises(ValueError, match=r"expected a batch \(B, 32, 32, 3\)"):
        purify(da.from_array(images[0]), purifier)
    with pytest.raises(RuntimeError, match="not fitted"):
        purify(da.from_array(images), SifterNet())
    with pytest.raises(ValueError, match="num_threads"):
        purify(da.from_array(images), purifier, num_threads=0)
    unknown = da.from_array(images, chunks=(100, -1, -1, -1))
    unknown = unknown[unknown[:, 0, 0, 0] < 255]  # boolean mask: unknown chunk sizes
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        purify(unknown, purifier)


def test_core_package_imports_no_adapter_dependency(tmp_path):
    probe = "import sys, sifternet, sifternet.cli; print(*(m for m in ('dask', 'torch', 'art') if m in sys.modules))"
    # outside the source tree, so that the installed package is the one imported
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_process_cluster_matches_one_shot(images, purifier, expected):
    distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:
        assert set(client.run(os.getpid).values()).isdisjoint({os.getpid()})
        assert set(client.run(os.environ.get, "OMP_NUM_THREADS").values()) == {"1"}
        for chunks in (100, (1, 515), (200, 16, 300)):
            lazy = purify(da.from_array(images, chunks=(chunks, -1, -1, -1)), purifier)
            np.testing.assert_array_equal(client.compute(lazy).result(), expected)
