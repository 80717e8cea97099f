"""Sweeps over steps x seeds per class (x block size): eval.sweep and ``sifternet sweep``."""

from __future__ import annotations

import contextlib
import io
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


@pytest.mark.parametrize(
    ("data", "what", "want"),
    [
        ("../shared/data/mnist_test.npz", "steps", [(800, 1200, "self-built CNN")]),
        ("fashion_mnist_test.npz", "steps", [(800, 1000, "self-built CNN")]),
        ("CIFAR-10.npz", "block_size", [(15, 25, "BackdoorBench")]),
    ],
)
def test_paper_ranges_by_file_name(data, what, want):
    assert paper_ranges(data)[what] == want


def test_mnist_has_a_steps_range_only():
    assert set(paper_ranges("mnist_test.npz")) == {"steps"}


def test_gtsrb_steps_include_backdoorbench_range():
    assert (50, 500, "BackdoorBench") in paper_ranges("gtsrb.npz")["steps"]


def test_unknown_data_set_has_no_range():
    assert paper_ranges("svhn.npz") == {}


def toy_sweep(**grid):
    """(images, labels, split, result): a sweep of MODEL on toy_data(), half of it held out."""
    images, labels = toy_data()
    split = ev.split_data(len(images), 0.5, seed=0)
    result = sweep(images, labels, attack=BADNET, model=MODEL, split=split, progress=False, **grid)
    return images, labels, split, result


@pytest.fixture(scope="module")
def grid():
    return toy_sweep(
        steps=[40, 0], per_class=[2, 1], block_sizes=[5, 3], options={"seed": 7}, seed=1, settings=SETTINGS
    )


def test_baseline_is_the_undefended_model(grid):
    assert grid[3].baseline == {"acc": 1.0, "asr": 1.0, "ra": 0.0}


def test_points_follow_the_sorted_grids(grid):
    assert [(p.per_class, p.block_size, p.steps) for p in grid[3].points] == [
        (c, k, s) for c in (1, 2) for k in (3, 5) for s in (0, 40)
    ]


def test_each_point_is_the_purifier_fitted_by_hand(grid):
    images, labels, split, result = grid
    clean, truth = images[split.evaluation], labels[split.evaluation]
    triggered = BADNET.apply(clean)
    for point in result.points:
        seeds, seed_labels = ev.seeds_from(images, labels, split, point.per_class, 1)
        purifier = SifterNet(block_size=point.block_size, steps=point.steps, seed=7).fit(seeds, seed_labels)
        on_clean = MODEL.predict(purifier.purify(clean, indices=split.evaluation))
        on_triggered = MODEL.predict(purifier.purify(triggered, indices=split.evaluation))
        assert point.acc == accuracy(on_clean, truth)
        assert point.asr == attack_success_rate(on_triggered, truth, 0)


def test_the_settings_matter_on_the_toy_data(grid):
    assert len({(p.acc, p.asr) for p in grid[3].points}) > 1


def test_a_data_set_without_ranges_says_so(grid):
    assert grid[3].ranges == {} and "no range" in grid[3].notes[0]


@pytest.fixture(scope="module")
def binarised_only():
    return toy_sweep(
        steps=[0], per_class=[1], options={"binarize": "global"}, settings={**SETTINGS, "data": "mnist.npz"}
    )[3]


def test_binarising_alone_keeps_a_white_corner(binarised_only):
    (point,) = binarised_only.points
    assert point.asr == 1.0


def test_global_binarisation_has_no_block_size(binarised_only):
    (point,) = binarised_only.points
    assert point.block_size is None
    assert "| 1 | - | 0 |" in binarised_only.to_markdown()


def test_sweep_names_the_data_sets_range(binarised_only):
    assert binarised_only.ranges["steps"] == [(800, 1200, "self-built CNN")]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"steps": []}, r"steps: expected a non-empty list of integers >= 0, got \[\]"),
        ({"per_class": [0]}, r"per_class: expected a non-empty list of integers >= 1"),
        ({"steps": [1.5]}, r"steps: expected"),
        ({"block_sizes": [5], "options": {"binarize": "otsu"}}, "acts on local_mean binarisation only"),
        ({"block_sizes": [5], "options": {"block_size": 3}}, "block_size is the sweep's grid"),
        ({"options": {"steps": 5}}, "steps is the sweep's grid"),
    ],
)
def test_sweep_refuses_bad_grids(changes, message):
    images, labels = toy_data(2)
    arguments = dict(
        attack=BADNET,
        model=MODEL,
        split=ev.split_data(6, 0.5, seed=0),
        steps=[0],
        per_class=[1],
        settings=SETTINGS,
        progress=False,
    )
    with pytest.raises(ValueError, match=message):
        sweep(images, labels, **{**arguments, **changes})


@pytest.fixture(scope="module")
def block_grid():
    pytest.importorskip("matplotlib", reason="matplotlib is not installed (optional extra 'eval')")
    return toy_sweep(
        steps=[0, 20, 60], per_class=[1, 2], block_sizes=[3, 5, 7], settings={**SETTINGS, "data": "gtsrb.npz"}
    )[3]


@pytest.fixture
def written(block_grid, tmp_path):
    return write_sweep(block_grid, tmp_path), tmp_path


def one_block(result: SweepResult) -> SweepResult:
    return SweepResult(result.settings, result.baseline, [p for p in result.points if p.block_size == 3])


def test_write_sweep_writes_tables_and_figures(written):
    assert sorted(p.name for p in written[0]) == ["sweep-block.png", "sweep.json", "sweep.md", "sweep.png"]


@pytest.mark.parametrize("name", ["sweep.png", "sweep-block.png"])
def test_write_sweep_figures_are_colour_images(written, name):
    assert cv2.imread(str(written[1] / name)).shape[2] == 3


def test_write_sweep_json_holds_points_and_ranges(written):
    saved = json.loads((written[1] / "sweep.json").read_text())
    assert len(saved["points"]) == 18 and saved["ranges"]["block_size"] == [[5, 15, "BackdoorBench"]]


def test_write_sweep_markdown_names_the_range(written):
    assert "block size in [5, 15] (BackdoorBench)" in (written[1] / "sweep.md").read_text()


def test_write_sweep_refuses_to_overwrite(block_grid, written):
    with pytest.raises(
        FileExistsError, match=r"sweep\.\w+: already exists \(pass overwrite=True to replace it\)"
    ):
        write_sweep(block_grid, written[1])


def test_one_block_size_draws_no_block_figure(block_grid, tmp_path):
    assert not any(p.name == "sweep-block.png" for p in write_sweep(one_block(block_grid), tmp_path))


def test_overwriting_removes_an_older_runs_block_figure(block_grid, written):
    folder = written[1]
    write_sweep(one_block(block_grid), folder, overwrite=True)
    assert sorted(p.name for p in folder.iterdir()) == ["sweep.json", "sweep.md", "sweep.png"]


SWEEP = [
    "sweep",
    str(SAMPLE),
    "--epochs",
    "1",
    "--binarize",
    "global",
    "--steps",
    "0,100",
    "--per-class",
    "1,2",
    "--threads",
    "1",
]


@pytest.fixture(scope="module")
def cli_sweep(tmp_path_factory):
    pytest.importorskip("torch", reason="PyTorch is not installed (optional extra 'eval')")
    pytest.importorskip("matplotlib", reason="matplotlib is not installed (optional extra 'eval')")
    from sifternet.cli import main

    out = tmp_path_factory.mktemp("cli_sweep")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = main([*SWEEP, "--out", str(out)])
    assert status == 0
    return main, out, printed.getvalue()


def test_cli_sweep_writes_every_point(cli_sweep):
    out = cli_sweep[1]
    points = json.loads((out / "sweep.json").read_text())["points"]
    assert [(p["per_class"], p["steps"]) for p in points] == [(1, 0), (1, 100), (2, 0), (2, 100)]
    assert (out / "sweep.png").exists()


def test_cli_sweep_prints_the_table(cli_sweep):
    assert "| seeds/class |" in cli_sweep[2]


def test_cli_sweep_refuses_to_overwrite(cli_sweep, capsys):
    main, out, _ = cli_sweep
    assert main([*SWEEP, "--out", str(out)]) == 1
    assert "already exists: pass --force" in capsys.readouterr().err


def test_cli_sweep_refuses_steps_that_are_not_integers(cli_sweep, tmp_path, capsys):
    main = cli_sweep[0]
    with pytest.raises(SystemExit):
        main(["sweep", str(SAMPLE), "--out", str(tmp_path), "--steps", "a,b"])
    assert "expected comma-separated integers" in capsys.readouterr().err
