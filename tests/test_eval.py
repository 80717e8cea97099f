"""Evaluation: attacks, metrics, poisoning, controls, and `evaluate` end to end."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from sifternet import SifterNet
from sifternet import reference as ref
from sifternet.binarize import binarize
from sifternet.eval import attacks
from sifternet.eval import evaluate as ev
from sifternet.eval.defenses import DEFENSES, MODEL_QUERYING, erase_visited, seed_consensus
from sifternet.eval.detectors import Detector
from sifternet.eval.metrics import accuracy, attack_success_rate, robust_accuracy, roc_auc
from sifternet.eval.models import CallableClassifier

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
HAS_TORCH = importlib.util.find_spec("torch") is not None


def batch(*shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.mark.parametrize(
    ("position", "rows", "cols"),
    [("bottom_right", slice(7, 10), slice(9, 12)), ("top_left", slice(0, 3), slice(0, 3)),
     ("interior", slice(3, 6), slice(5, 8)), ((2, 4), slice(2, 5), slice(4, 7))],
)
def test_badnet_changes_exactly_the_patch(position, rows, cols):
    x = batch(4, 10, 12, 3) // 2  # no pixel is 255 yet
    y = attacks.badnet(x, position=position)
    changed = np.zeros(x.shape[1:3], bool)
    changed[rows, cols] = True
    assert (y[:, changed] == 255).all()
    np.testing.assert_array_equal(y[:, ~changed], x[:, ~changed])
    assert x.max() < 255  # input untouched


def test_badnet_random_colour_and_pattern():
    x = np.zeros((50, 8, 8), np.uint8)
    y = attacks.badnet(x, position="random", value=200, seed=1)
    assert ((y == 200).sum(axis=(1, 2)) == 9).all()
    assert len({tuple(np.argwhere(im)[0]) for im in y}) > 5  # positions differ per image
    np.testing.assert_array_equal(attacks.badnet(x, position="random", value=200, seed=1), y)
    colour = attacks.badnet(np.zeros((1, 5, 5, 3), np.uint8), value=(255, 0, 10))
    np.testing.assert_array_equal(colour[0, 4, 4], [255, 0, 10])
    board = attacks.badnet(np.zeros((1, 5, 5), np.uint8), size=2, pattern="checkerboard")[0]
    np.testing.assert_array_equal(board[3:, 3:], [[255, 0], [0, 255]])
    with pytest.raises(ValueError, match="position: expected one of"):
        attacks.badnet(x, position="middle")
    with pytest.raises(ValueError, match="leaves the 8x8 image"):
        attacks.badnet(x, position=(7, 7))
    with pytest.raises(TypeError, match="uint8"):
        attacks.badnet(x.astype(float))


def test_blended_and_sig_follow_their_formulas():
    x = batch(3, 6, 8, 3)
    pattern = batch(6, 8, 3, seed=5)
    y = attacks.blended(x, alpha=0.25, pattern=pattern)
    np.testing.assert_array_equal(y, np.rint(0.75 * x + 0.25 * pattern.astype(float)).astype(np.uint8))
    np.testing.assert_array_equal(attacks.blended(x, alpha=0.0), x)
    s = attacks.sig(x, delta=40, frequency=2)
    j = np.arange(8)
    wave = 40 * np.sin(2 * np.pi * j * 2 / 8)
    want = np.clip(np.rint(x + wave[None, None, :, None]), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(s, want)


def test_wanet_is_a_seeded_smooth_warp():
    x = batch(2, 32, 32, 3)
    np.testing.assert_array_equal(attacks.wanet(x, strength=0.0), x)
    a, b = attacks.wanet(x, seed=0), attacks.wanet(x, seed=0)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, attacks.wanet(x, seed=1))
    map_x, map_y = attacks.warp_field(32, 32)
    shift = np.hypot(map_x - np.arange(32), map_y - np.arange(32)[:, None])
    assert 0 < shift.max() < 2  # a warp of well under two pixels at k = 4, s = 0.5


def test_metrics_by_hand():
    labels = np.array([0, 0, 1, 2, 3])
    triggered_predictions = np.array([0, 1, 0, 2, 0])
    assert attack_success_rate(triggered_predictions, labels, 0) == pytest.approx(2 / 3)
    assert robust_accuracy(triggered_predictions, labels, 0) == pytest.approx(1 / 3)
    assert accuracy(np.array([0, 0, 1, 1, 3]), labels) == pytest.approx(0.8)
    # 6 pairs: 0.8 beats all 3 clean scores; 0.4 beats 0.1 and 0.35 and ties 0.4.
    assert roc_auc([0.1, 0.4, 0.35], [0.8, 0.4]) == pytest.approx(5.5 / 6)
    assert roc_auc([1, 1], [1]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="one length"):
        accuracy(np.zeros(3), np.zeros(4))


def test_split_and_poisoning_protocols():
    split = ev.split_data(100, 0.7, seed=3)
    assert len(split.train) == 70 and len(np.union1d(split.train, split.evaluation)) == 100
    np.testing.assert_array_equal(ev.split_data(100, 0.7, seed=3).train, split.train)
    labels = np.repeat(np.arange(5), 20)
    images = np.zeros((100, 6, 6), np.uint8)
    px, py, chosen = ev.poison(images, labels, attacks.make_attack("badnet"), 0, seed=1)
    assert len(chosen) == 10 and (labels[chosen] != 0).all() and (py[chosen] == 0).all()
    assert (px[chosen][:, -1, -1] == 255).all() and (px[np.setdiff1d(np.arange(100), chosen)] == 0).all()
    _, sy, clean_label = ev.poison(images, labels, attacks.make_attack("sig"), 0, seed=1)
    assert (labels[clean_label] == 0).all() and np.array_equal(sy, labels)
    with pytest.raises(ValueError, match="attack: expected one of"):
        attacks.make_attack("trojannn")


@pytest.fixture(scope="module")
def purifier():
    rng = np.random.default_rng(0)
    return SifterNet(binarize="global", steps=150, seed=2).fit(rng.integers(0, 256, (3, 10, 10), dtype=np.uint8))


def test_erase_visited_erases_exactly_the_visited_pixels(purifier):
    images = batch(4, 10, 10, seed=9)
    indices = np.array([5, 6, 7, 8])
    out = erase_visited(purifier).purify(images, indices)
    states = binarize(images, "global")
    for row, index in zip(range(4), indices):
        stream = ref.Stream(ref.stream_key(2, int(index), 1, 0))
        visited = {stream.below(100) for _ in range(150)}
        want = states[row].reshape(-1).copy()
        want[list(visited)] = -1
        np.testing.assert_array_equal(out[row].reshape(-1), (want > 0) * 255)


def test_seed_consensus_masks_pixels_dark_in_every_seed(purifier):
    images = np.full((2, 10, 10), 255, np.uint8)
    out = seed_consensus(purifier).purify(images, np.arange(2))
    dark_everywhere = np.all(purifier.networks[0].patterns < 0, axis=0).reshape(10, 10)
    assert (out[:, dark_everywhere] == 0).all() and (out[:, ~dark_everywhere] == 255).all()


def test_ifmv_votes_by_majority_with_smallest_label_on_ties():
    from sifternet.eval.defenses import ifmv

    images = np.full((4, 6, 6), 128, np.uint8)
    indices = np.array([3, 4, 5, 6])
    defense = ifmv(copies=4, sigma=0.2, seed=1)

    class Brightness:  # label 1 for brighter-than-mid copies, else 0
        def predict(self, x):
            return (x.reshape(len(x), -1).mean(axis=1) > 128).astype(int)

    votes = defense.classify(Brightness(), images, indices)
    copies = np.stack([defense.purify(images[k : k + 1], indices[k : k + 1])[0] for k in range(4)])
    assert votes.shape == (4,) and set(votes) <= {0, 1}
    np.testing.assert_array_equal(defense.classify(Brightness(), images[2:], indices[2:]), votes[2:])
    np.testing.assert_array_equal(copies, defense.purify(images, indices))  # split-independent
    constant = type("Constant", (), {"predict": lambda self, x: np.array([2, 5] * (len(x) // 2))})()
    np.testing.assert_array_equal(defense.classify(constant, images, indices), [2, 5, 2, 5])
    tie = type("Tie", (), {"calls": 0})()

    def alternate(x):  # copies 0, 2 vote 3; copies 1, 3 vote 1: a 2-2 tie goes to label 1
        tie.calls += 1
        return np.full(len(x), 3 if tie.calls % 2 else 1)

    tie.predict = alternate
    np.testing.assert_array_equal(defense.classify(tie, images, indices), [1, 1, 1, 1])


def test_model_querying_names_exactly_the_defenses_that_classify():
    seeds = (np.full((2, 5, 5), 100, np.uint8), np.arange(2))
    fitted = SifterNet(binarize="global", steps=10).fit(seeds[0])
    built = ev.default_defenses(fitted, list(DEFENSES), seeds)
    assert {d.name for d in built if d.classify is not None} == MODEL_QUERYING


def test_repair_both_removes_a_white_and_a_black_patch_one_pass_each():
    rng = np.random.default_rng(3)
    plain = rng.integers(90, 110, (12, 12, 12, 3), dtype=np.uint8)
    seeds = (plain[:4], np.arange(4))
    images = plain[4:].copy()
    images[:, 1:4, 1:4] = 255
    images[:, 7:10, 7:10] = 0
    purifier = SifterNet(binarize="global", steps=10).fit(seeds[0])
    names = ["sifternet-repair", "sifternet-repair-dark", "sifternet-repair-both"]
    bright, dark, both = (d.purify(images, np.arange(4, 12)) for d in ev.default_defenses(purifier, names, seeds))
    assert bright.max() < 243 and bright.min() == 0  # the white patch filled, the black one kept
    assert dark.min() > 12 and dark.max() == 255
    assert 12 < both.min() and both.max() < 243
    np.testing.assert_array_equal(both[:, 7:10, 7:10], dark[:, 7:10, 7:10])


def test_evaluate_with_a_black_box_model(tmp_path, monkeypatch):
    """A 'backdoored' black box: predicts 0 when the bottom-right pixel is white, else the
    true class encoded in the top-left pixel. Binarising keeps the trigger (ASR 100 %)."""
    labels = np.repeat(np.arange(3), 20)
    images = np.zeros((60, 12, 12), np.uint8)
    images[:, 0, 0] = labels * 100 + 20

    def predict(x):
        return np.where(x[:, -1, -1] > 127, 0, np.minimum(x[:, 0, 0] // 100, 2))

    split = ev.split_data(60, 0.5, seed=0)
    seeds, seed_labels = ev.seeds_from(images, labels, split, 2, seed=0)
    assert set(seed_labels) == {0, 1, 2} and np.isin(np.flatnonzero(np.isin(images[:, 0, 0], seeds[:, 0, 0])), np.arange(60)).all()
    purifier = SifterNet(binarize="global", steps=50).fit(seeds)
    report, outputs, triggered = ev.evaluate(
        images, labels, attack=attacks.make_attack("badnet"), model=CallableClassifier(predict),
        purifier=purifier, defenses=ev.default_defenses(purifier, ["none", "binarise-only", "median-3x3", "sifternet-repair", "ifmv"], (seeds, seed_labels)),
        split=split, settings={"data": "toy.npz", "attack": "badnet", "attack_params": {}, "n_train": 30,
                               "n_poisoned": 0, "n_seeds": 6},
        detectors=[Detector("corner", lambda x, indices: x[:, -1, -1].astype(float), "corner brightness"),
                   Detector("blind", lambda x, indices: np.zeros(len(x)), "constant score")],
    )
    aucs = {d.detector: d.auc for d in report.detectors}
    assert aucs == {"corner": 1.0, "blind": 0.5}
    rows = {r.defense: r for r in report.rows}
    assert rows["none"].acc == 1.0 and rows["none"].asr == 1.0
    assert rows["binarise-only"].asr == 1.0  # white stays white
    # OpenCV's median replicates the border: a 3x3 patch in the very corner survives it.
    assert rows["median-3x3"].asr == 1.0
    np.testing.assert_array_equal(triggered, attacks.badnet(images[split.evaluation]))
    written = ev.write_report(report, outputs, images[split.evaluation], triggered, tmp_path)
    assert {p.name for p in written} >= {"report.md", "report.json", "examples.png"}
    assert "| binarise-only |" in (tmp_path / "report.md").read_text()
    assert "| corner | 1.0000 |" in (tmp_path / "report.md").read_text()
    assert "TEST splits" in (tmp_path / "report.md").read_text()
    assert json.loads((tmp_path / "report.json").read_text())["rows"][0]["defense"] == "none"
    with pytest.raises(FileExistsError, match="pass --force"):
        ev.write_report(report, outputs, images[:1], images[:1], tmp_path)
    (tmp_path / "metrics.png").write_bytes(b"an older run's chart")
    monkeypatch.setattr(ev, "_bar_chart", lambda report, path: None)  # as without matplotlib
    ev.write_report(report, outputs, images[:1], images[:1], tmp_path, overwrite=True)
    assert not (tmp_path / "metrics.png").exists()
    with pytest.raises(ValueError, match="defenses: unknown"):
        ev.default_defenses(purifier, ["strip"], (seeds, seed_labels))
    assert set(DEFENSES) >= {"sifternet", "erase-visited", "seed-consensus"}


@pytest.mark.skipif(not HAS_TORCH, reason="PyTorch is not installed (optional extra 'eval')")
@pytest.mark.skipif(not (SHARED / "mnist_test.npz").exists(), reason="../shared/data/mnist_test.npz not found")
def test_cli_evaluate_on_a_small_mnist_slice(tmp_path, capsys):
    from sifternet.cli import main

    cache = tmp_path / "model.pt"
    args = ["evaluate", str(SHARED / "mnist_test.npz"), "--limit", "1500", "--epochs", "3",
            "--binarize", "global", "--steps", "800", "--per-class", "2", "--model-cache", str(cache)]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    first = json.loads((tmp_path / "a" / "report.json").read_text())
    rows = {r["defense"]: r for r in first["rows"]}
    assert rows["none"]["acc"] > 0.6 and rows["none"]["asr"] > 0.8  # it learned; the backdoor took
    assert rows["seed-consensus"]["asr"] < 0.2  # the corner patch is masked away
    repair = rows["sifternet-repair"]
    assert repair["asr"] < 0.2 and repair["acc"] > rows["sifternet"]["acc"]
    assert cache.exists()
    assert main([*args, "--out", str(tmp_path / "b")]) == 0  # reuses the cached model
    second = json.loads((tmp_path / "b" / "report.json").read_text())
    assert [r["acc"] for r in second["rows"]] == [r["acc"] for r in first["rows"]]
    assert main([*args[:-1], str(cache), "--epochs", "4", "--out", str(tmp_path / "c")]) == 1
    assert "model cache trained on other data or settings" in capsys.readouterr().err
