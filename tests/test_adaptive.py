"""Adaptive, defense-aware attackers: the content-coloured patch, purifier-aware poisoning
and the ASR over several purifier seeds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sifternet import SifterNet
from sifternet.eval import attacks
from sifternet.eval import cli as eval_cli
from sifternet.eval import evaluate as ev
from sifternet.eval.defenses import DEFENSES
from sifternet.eval.metrics import attack_success_rate
from sifternet.eval.models import CallableClassifier
from sifternet.io import load_array
from sifternet.purifier import PurifierConfig

MNIST = Path(__file__).resolve().parents[1] / "sifternet" / "data" / "mnist_sample.npz"


def batch(*shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


# -- content-coloured patch ----------------------------------------------------------


def test_content_patch_pixels_by_hand():
    x = (np.arange(36, dtype=np.uint8).reshape(1, 6, 6) * 5).copy()
    y = attacks.content_patch(x, size=2)
    # centre (5, 5): the window is rows and columns 2 .. 5, median (115 + 130) / 2 = 122.5,
    # + 40 = 162.5, rounded to even: 162
    expected = x.copy()
    expected[0, 4:6, 4:6] = 162
    np.testing.assert_array_equal(y, expected)
    assert x[0, 5, 5] == 175  # input untouched


def test_content_patch_median_per_channel_clipped_to_255():
    x = np.zeros((1, 9, 9, 3), np.uint8)
    x[..., 0], x[..., 1], x[..., 2] = 10, 100, 230
    y = attacks.content_patch(x, size=3, position="centre", delta=40)
    np.testing.assert_array_equal(y[0, 3:6, 3:6], np.broadcast_to([50, 140, 255], (3, 3, 3)))
    np.testing.assert_array_equal(y[0, :3], x[0, :3])
    dark = attacks.content_patch(x, size=3, position="centre", delta=-20)
    np.testing.assert_array_equal(dark[0, 4, 4], [0, 80, 210])


def test_content_patch_level_follows_the_image():
    x = np.stack([np.full((8, 8), 20, np.uint8), np.full((8, 8), 180, np.uint8)])
    y = attacks.content_patch(x)
    assert (y[0, 5:, 5:] == 60).all() and (y[1, 5:, 5:] == 220).all()


@pytest.mark.parametrize("position", ["bottom_right", "interior", "random", (1, 2)])
def test_content_patch_is_deterministic_and_chunk_invariant(position):
    x = batch(10, 16, 16, 3)
    indices = np.arange(100, 110)
    whole = attacks.content_patch(x, position=position, indices=indices, seed=3)
    np.testing.assert_array_equal(whole, attacks.content_patch(x, position=position, indices=indices, seed=3))
    chunks = np.concatenate(
        [
            attacks.content_patch(x[a:b], position=position, indices=indices[a:b], seed=3)
            for a, b in ((0, 3), (3, 4), (4, 10))
        ]
    )
    np.testing.assert_array_equal(whole, chunks)


def test_content_patch_is_registered_with_badnet_poisoning():
    attack = attacks.make_attack("content-patch", size=4, delta=25)
    assert (attack.poison_ratio, attack.clean_label) == (0.1, False)
    x = batch(3, 12, 12)
    np.testing.assert_array_equal(attack.apply(x), attacks.content_patch(x, size=4, delta=25))
    assert eval_cli.ATTACK_FLAGS["content-patch"] == ("position", "size", "delta")


def test_content_patch_refuses_bad_options():
    with pytest.raises(ValueError, match="size: expected 1 .. 5, got 6"):
        attacks.content_patch(batch(1, 5, 5), size=6)
    with pytest.raises(ValueError, match="delta: expected a finite"):
        attacks.content_patch(batch(1, 5, 5), delta=float("nan"))


# -- purifier-aware poisoning ----------------------------------------------------------


class Captured(Exception):
    pass


def test_adaptive_attacker_trains_on_purified_images(monkeypatch):
    seen = {}

    def trainer(images, labels, **options):
        seen["images"], seen["labels"] = images, labels
        raise Captured

    monkeypatch.setattr(eval_cli, "train_small_cnn", trainer)
    spec = eval_cli.Backdoor(
        str(MNIST), limit=300, adaptive_purifier="sifternet-repair", adaptive_per_class=1
    )
    with pytest.raises(Captured):
        eval_cli.backdoored(spec)
    # what the attacker should have done, by hand
    images, labels = load_array(MNIST, "images"), load_array(MNIST, "labels").astype(np.int64)
    keep = np.sort(np.random.default_rng(0).permutation(len(images))[:300])
    images, labels = images[keep], labels[keep]
    split = ev.split_data(300, 0.7, 0)
    poisoned, poisoned_labels, _ = ev.poison(
        images[split.train], labels[split.train], attacks.make_attack("badnet"), 0, 0
    )
    theirs = ev.seeds_from(images, labels, split, 1, ev.ATTACKER_SEED_OFFSET)
    assert not np.array_equal(theirs[0], ev.seeds_from(images, labels, split, 1, 0)[0])  # not the defender's
    repair = DEFENSES["sifternet-repair"](SifterNet().fit(*theirs), theirs)
    expected = repair.purify(poisoned, split.train)
    assert not np.array_equal(expected, poisoned)
    np.testing.assert_array_equal(seen["images"], expected)
    np.testing.assert_array_equal(seen["labels"], poisoned_labels)


def test_adaptive_attacker_is_recorded_and_refuses_model_files(monkeypatch):
    monkeypatch.setattr(
        eval_cli,
        "train_small_cnn",
        lambda images, labels, **o: CallableClassifier(lambda x: np.zeros(len(x))),
    )
    spec = eval_cli.Backdoor(str(MNIST), limit=300, adaptive_purifier="median-3x3")
    settings = eval_cli.backdoored(spec).settings
    assert settings["adaptive_purifier"]["defense"] == "median-3x3"
    assert settings["adaptive_purifier"]["seed_selection_seed"] == 1
    with pytest.raises(ValueError, match="adaptive_purifier: expected a model trained here"):
        eval_cli.backdoored(eval_cli.Backdoor(str(MNIST), model="m.pt", adaptive_purifier="median-3x3"))
    with pytest.raises(ValueError, match="adaptive_purifier: expected a defense that purifies"):
        eval_cli.backdoored(eval_cli.Backdoor(str(MNIST), limit=300, adaptive_purifier="ifmv"))


# -- ASR over purifier seeds -----------------------------------------------------------


def corner_model(images: np.ndarray) -> np.ndarray:
    """A tiny 'backdoored' model: class 0 when the bottom-right 3 x 3 corner is bright."""
    return np.where(images[:, -3:, -3:].mean(axis=(1, 2)) > 128, 0, 1)


def test_asr_over_seeds_mean_and_worst():
    x = batch(12, 10, 10) // 2
    truth = np.ones(12, np.int64)
    triggered = attacks.badnet(x)
    purifier = SifterNet(steps=30).fit(x[:4])
    model = CallableClassifier(corner_model)
    rows = ev.asr_over_seeds(
        triggered,
        truth,
        np.arange(12),
        model=model,
        purifier=purifier,
        seeds=(x[:4], None),
        defenses=["none", "sifternet", "median-3x3"],
        n_seeds=3,
    )
    assert [r.defense for r in rows] == ["sifternet"]
    (row,) = rows
    assert row.seeds == [0, 1, 2]
    for s, rate in zip(row.seeds, row.asr):
        purified = purifier.with_options(seed=s).purify(triggered, indices=np.arange(12))
        assert rate == attack_success_rate(model.predict(purified), truth, 0)
    assert row.mean == pytest.approx(np.mean(row.asr)) and row.worst == max(row.asr)
    with pytest.raises(ValueError, match="purifier_seeds: expected at least 1, got 0"):
        ev.asr_over_seeds(
            triggered,
            truth,
            np.arange(12),
            model=model,
            purifier=purifier,
            seeds=(x, None),
            defenses=[],
            n_seeds=0,
        )


def test_evaluate_reports_asr_over_purifier_seeds(monkeypatch, tmp_path):
    monkeypatch.setattr(
        eval_cli, "train_small_cnn", lambda images, labels, **o: CallableClassifier(corner_model)
    )
    report, _ = eval_cli.run_evaluate(
        eval_cli.Backdoor(str(MNIST), limit=300),
        eval_cli.Evaluation(
            purifier=PurifierConfig(steps=50),
            per_class=1,
            defenses=("none", "sifternet", "sifternet-repair"),
            purifier_seeds=2,
        ),
        tmp_path,
    )
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["settings"]["purifier_seeds"] == 2
    assert [r["defense"] for r in saved["purifier_seeds"]] == ["sifternet", "sifternet-repair"]
    rows = {r.defense: r for r in report.rows}
    for seeded in report.seeded:
        assert seeded.asr[0] == rows[seeded.defense].asr  # seed 0 is the table's own row
        assert len(seeded.asr) == 2 and seeded.worst == max(seeded.asr)
    markdown = (tmp_path / "report.md").read_text()
    assert "- sifternet: ASR over 2 seeds: mean " in markdown and ", worst " in markdown


def test_evaluate_command_line_takes_the_new_options():
    import argparse

    parser = argparse.ArgumentParser()
    eval_cli.add_command(parser.add_subparsers(), "evaluate")
    args = parser.parse_args(
        [
            "evaluate",
            str(MNIST),
            "--out",
            "x",
            "--attack",
            "content-patch",
            "--delta",
            "25",
            "--size",
            "4",
            "--adaptive-purifier",
            "sifternet-repair",
            "--purifier-seeds",
            "3",
            "--per-class",
            "1",
        ]
    )
    backdoor, evaluation = eval_cli._backdoor(args), eval_cli._evaluation(args)
    assert backdoor.attack_params == {"size": 4, "delta": 25.0}
    assert (backdoor.adaptive_purifier, backdoor.adaptive_per_class) == ("sifternet-repair", 1)
    assert evaluation.purifier_seeds == 3
