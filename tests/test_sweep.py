"""Sweeps over steps x seeds per class (x block size): eval.sweep and ``sifternet sweep``."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from sifternet import SifterNet
from sifternet.eval import evaluate as ev
from sifternet.eval.attacks import make_attack
from sifternet.eval.metrics import accuracy, attack_success_rate
from sifternet.eval.models import CallableClassifier
from sifternet.eval.sweep import SweepResult, paper_ranges, sweep, write_sweep

SAMPLE = Path(__file__).resolve().parents[1] / "sifternet" / "data" / "mnist_sample.npz"
BADNET = make_attack("badnet")


def toy_data(per_class=12, seed=0):
    """12x12 images: a bright 4x4 block whose column says the class (0, 1, 2), on noise."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), per_class)
    images = rng.integers(0, 90, (len(labels), 12, 12)).astype(np.uint8)
    for image, label in zip(images, labels):
        image[2:6, 1 + 3 * label : 5 + 3 * label] = 230
    return images, labels


def backdoored(images):
    """Class 0 when the bottom-right pixel is white (the backdoor), else the brightest block."""
    blocks = np.stack([images[:, 2:6, 1 + 3 * k : 5 + 3 * k].mean(axis=(1, 2)) for k in range(3)], axis=1)
    return np.where(images[:, -1, -1] > 127, 0, blocks.argmax(axis=1))


MODEL = CallableClassifier(backdoored)
SETTINGS = {"data": "toy.npz", "attack": "badnet", "attack_params": {}}


def test_paper_ranges_by_file_name():
    assert paper_ranges("../shared/data/mnist_test.npz") == {"steps": [(800, 1200, "self-built CNN")]}
    assert paper_ranges("fashion_mnist_test.npz")["steps"] == [(800, 1000, "self-built CNN")]
    assert paper_ranges("CIFAR-10.npz")["block_size"] == [(15, 25, "BackdoorBench")]
    assert (50, 500, "BackdoorBench") in paper_ranges("gtsrb.npz")["steps"]
    assert paper_ranges("svhn.npz") == {}


def test_each_point_is_the_purifier_fitted_by_hand():
    images, labels = toy_data()
    split = ev.split_data(len(images), 0.5, seed=0)
    result = sweep(images, labels, attack=BADNET, model=MODEL, split=split, steps=[40, 0], per_class=[2, 1],
                   block_sizes=[5, 3], options={"seed": 7}, seed=1, settings=SETTINGS, progress=False)
    assert result.baseline == {"acc": 1.0, "asr": 1.0, "ra": 0.0}
    assert [(p.per_class, p.block_size, p.steps) for p in result.points] == [
        (c, k, s) for c in (1, 2) for k in (3, 5) for s in (0, 40)]  # sorted grids
    clean, truth = images[split.evaluation], labels[split.evaluation]
    triggered = BADNET.apply(clean)
    for point in result.points:
        seeds, seed_labels = ev.seeds_from(images, labels, split, point.per_class, 1)
        purifier = SifterNet(block_size=point.block_size, steps=point.steps, seed=7).fit(seeds, seed_labels)
        on_clean = MODEL.predict(purifier.purify(clean, indices=split.evaluation))
        on_triggered = MODEL.predict(purifier.purify(triggered, indices=split.evaluation))
        assert point.acc == accuracy(on_clean, truth)
        assert point.asr == attack_success_rate(on_triggered, truth, 0)
    assert len({(p.acc, p.asr) for p in result.points}) > 1  # the settings matter here
    assert result.ranges == {} and "no range" in result.notes[0]


def test_binarising_alone_keeps_a_white_corner():
    images, labels = toy_data()
    split = ev.split_data(len(images), 0.5, seed=0)
    result = sweep(images, labels, attack=BADNET, model=MODEL, split=split, steps=[0], per_class=[1],
                   options={"binarize": "global"}, settings={**SETTINGS, "data": "mnist.npz"}, progress=False)
    (point,) = result.points
    assert point.block_size is None and point.asr == 1.0  # global binarisation has no block size
    assert result.ranges["steps"] == [(800, 1200, "self-built CNN")]
    assert "| 1 | - | 0 |" in result.to_markdown()


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"steps": []}, r"steps: expected a non-empty list of integers >= 0, got \[\]"),
     ({"per_class": [0]}, r"per_class: expected a non-empty list of integers >= 1"),
     ({"steps": [1.5]}, r"steps: expected"),
     ({"block_sizes": [5], "options": {"binarize": "otsu"}}, "acts on local_mean binarisation only"),
     ({"block_sizes": [5], "options": {"block_size": 3}}, "block_size is the sweep's grid"),
     ({"options": {"steps": 5}}, "steps is the sweep's grid")],
)
def test_sweep_refuses_bad_grids(changes, message):
    images, labels = toy_data(2)
    arguments = dict(attack=BADNET, model=MODEL, split=ev.split_data(6, 0.5, seed=0), steps=[0], per_class=[1],
                     settings=SETTINGS, progress=False)
    with pytest.raises(ValueError, match=message):
        sweep(images, labels, **{**arguments, **changes})


def test_write_sweep_files_and_refusals(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed (optional extra 'eval')")
    images, labels = toy_data()
    split = ev.split_data(len(images), 0.5, seed=0)
    result = sweep(images, labels, attack=BADNET, model=MODEL, split=split, steps=[0, 20, 60], per_class=[1, 2],
                   block_sizes=[3, 5, 7], settings={**SETTINGS, "data": "gtsrb.npz"}, progress=False)
    written = write_sweep(result, tmp_path)
    assert sorted(p.name for p in written) == ["sweep-block.png", "sweep.json", "sweep.md", "sweep.png"]
    for name in ("sweep.png", "sweep-block.png"):
        assert cv2.imread(str(tmp_path / name)).shape[2] == 3
    saved = json.loads((tmp_path / "sweep.json").read_text())
    assert len(saved["points"]) == 18 and saved["ranges"]["block_size"] == [[5, 15, "BackdoorBench"]]
    assert "block size in [5, 15] (BackdoorBench)" in (tmp_path / "sweep.md").read_text()
    with pytest.raises(FileExistsError, match="pass overwrite=True"):
        write_sweep(result, tmp_path)
    one_block = SweepResult(result.settings, result.baseline, [p for p in result.points if p.block_size == 3])
    assert not any(p.name == "sweep-block.png" for p in write_sweep(one_block, tmp_path / "one"))
    write_sweep(one_block, tmp_path, overwrite=True)  # the older run's block figure is not left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "sweep.json", "sweep.md", "sweep.png"]


def test_cli_sweep(tmp_path, capsys):
    pytest.importorskip("torch", reason="PyTorch is not installed (optional extra 'eval')")
    pytest.importorskip("matplotlib", reason="matplotlib is not installed (optional extra 'eval')")
    from sifternet.cli import main

    args = ["sweep", str(SAMPLE), "--out", str(tmp_path), "--epochs", "1", "--binarize", "global",
            "--steps", "0,100", "--per-class", "1,2", "--threads", "1"]
    assert main(args) == 0
    points = json.loads((tmp_path / "sweep.json").read_text())["points"]
    assert [(p["per_class"], p["steps"]) for p in points] == [(1, 0), (1, 100), (2, 0), (2, 100)]
    assert (tmp_path / "sweep.png").exists() and "| seeds/class |" in capsys.readouterr().out
    assert main(args) == 1
    assert "already exists: pass --force" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["sweep", str(SAMPLE), "--out", str(tmp_path), "--steps", "a,b"])
    assert "expected comma-separated integers" in capsys.readouterr().err
