"""Stress: ``sifternet purify`` of a folder, killed (SIGKILL) at random points and resumed
with ``--resume`` each time, ends byte for byte as one uninterrupted run, with no stray file."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from sifternet import SifterNet

pytestmark = pytest.mark.slow

MNIST = Path(__file__).resolve().parents[1] / "sifternet" / "data" / "mnist_sample.npz"
CLI = "import sys\nfrom sifternet.cli import main\nsys.exit(main(sys.argv[1:]))"
MANIFEST = ".sifternet-manifest.json"
IMAGES = 300
KILLS = 10


def tree(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder``, dot files included, by relative path: its bytes."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def outputs(folder: Path) -> int:
    try:
        return sum(1 for _ in folder.rglob("*.png"))
    except FileNotFoundError:
        return 0


def start(argv: list[str], cwd: Path) -> subprocess.Popen:
    """The command in a fresh interpreter, in ``cwd`` (outside the source tree, so that the
    installed package runs)."""
    return subprocess.Popen(
        [sys.executable, "-c", CLI, *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
    )


def test_random_kills_and_resumes_end_as_one_uninterrupted_run(tmp_path):
    with np.load(MNIST) as sample:
        images, labels = sample["images"], sample["labels"]
    model = tmp_path / "model.npz"
    # about 10 ms of recall per image: a run takes a few seconds, its kills land mid-work
    SifterNet(binarize="global", steps=3_000_000).fit(images[:30], labels[:30]).save(model)
    source = tmp_path / "in"
    for k in range(IMAGES):  # sub-folders, so that relative paths and folder creation are exercised
        path = source / f"part{k % 3}" / f"{k:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(cv2.imencode(".png", images[30 + k])[1].tobytes())
    whole, out = tmp_path / "whole", tmp_path / "out"
    run = start(["purify", str(model), str(source), str(whole), "--chunk", "8"], tmp_path)
    assert run.wait(timeout=120) == 0, run.stderr.read() if run.stderr else ""
    run.stderr.close()  # type: ignore[union-attr]
    expected = tree(whole)
    assert len(expected) == IMAGES + 1 and MANIFEST in expected  # the outputs and the manifest only

    rng = random.Random(20240611)
    # Kill points: one during start-up, the others as soon as a growing number of outputs is
    # written (plus up to 5 ms), which lands inside a chunk's writes: temporaries, renames and
    # manifest updates are hit, not only the recall.
    marks = sorted(rng.sample(range(1, IMAGES - 20), KILLS - 1))
    killed = 0
    for k in range(KILLS):
        chunk = rng.choice(["8", "32"])  # results never depend on the chunk size
        run = start(["purify", str(model), str(source), str(out), "--resume", "--chunk", chunk], tmp_path)
        if k == 0:
            time.sleep(rng.uniform(0.05, 0.5))
        else:
            deadline = time.monotonic() + 60
            while outputs(out) < marks[k - 1] and run.poll() is None and time.monotonic() < deadline:
                time.sleep(0.001)
            time.sleep(rng.uniform(0, 0.005))
        run.send_signal(signal.SIGKILL)
        status = run.wait(timeout=60)
        stderr = run.stderr.read() if run.stderr else ""
        run.stderr.close()  # type: ignore[union-attr]
        assert status in (0, -signal.SIGKILL), stderr
        killed += status == -signal.SIGKILL
    assert killed >= KILLS - 2, f"only {killed} of {KILLS} runs were killed before they finished"

    run = start(["purify", str(model), str(source), str(out), "--resume"], tmp_path)
    assert run.wait(timeout=120) == 0, run.stderr.read() if run.stderr else ""
    run.stderr.close()  # type: ignore[union-attr]
    assert tree(out) == expected
    assert not [name for name in os.listdir(out) if name.startswith(".") and name != MANIFEST]
