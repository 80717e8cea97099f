"""Fine-tuning on purified images (the paper's data augmentation, E.0.2): models.fine_tune,
finetune.evaluate_finetuned, the report's table and ``sifternet evaluate --finetune-epochs``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sifternet.eval import evaluate as ev
from sifternet.eval.defenses import Defense, ifmv, no_defense
from sifternet.eval.models import CallableClassifier

SAMPLE = Path(__file__).resolve().parents[1] / "sifternet" / "data" / "mnist_sample.npz"


def brightness_data(count=240, seed=0):
    """8x8 images: class 0 dark (0..75), class 1 bright (180..255), alternating."""
    rng = np.random.default_rng(seed)
    labels = np.tile([0, 1], count // 2)
    bright = rng.integers(180, 256, (count, 8, 8))
    dark = rng.integers(0, 76, (count, 8, 8))
    return np.where(labels[:, None, None] == 1, bright, dark).astype(np.uint8), labels


INVERT = Defense("invert", lambda images, indices: 255 - images, "inverted pixels")


@pytest.fixture(scope="module")
def trained():
    pytest.importorskip("torch", reason="PyTorch is not installed (optional extra 'eval')")
    from sifternet.eval.models import train_small_cnn

    images, labels = brightness_data()
    model = train_small_cnn(images, labels, n_classes=2, epochs=4, batch_size=16, seed=0, num_threads=1,
                            progress=False)
    return images, labels, model


def weights(classifier):
    return {name: value.clone() for name, value in classifier.module.state_dict().items()}


def same_weights(a, b):
    return a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)


def test_fine_tune_learns_a_copy_deterministically(trained):
    from sifternet.eval.models import fine_tune

    images, labels, model = trained
    inverted = 255 - images
    assert (model.predict(images) == labels).all() and (model.predict(inverted) != labels).all()
    before = weights(model)
    tuned = fine_tune(model, inverted, labels, epochs=8, batch_size=16, seed=1, num_threads=1, progress=False)
    assert same_weights(weights(model), before)  # the caller's model is untouched
    assert (model.predict(inverted) != labels).all()
    assert (tuned.predict(inverted) == labels).mean() > 0.95  # it learned the purified domain
    again = fine_tune(model, inverted, labels, epochs=8, batch_size=16, seed=1, num_threads=1, progress=False)
    assert same_weights(weights(again), weights(tuned))
    other = fine_tune(model, inverted, labels, epochs=8, batch_size=16, seed=2, num_threads=1, progress=False)
    assert not same_weights(weights(other), weights(tuned))


def test_fine_tune_refuses_bad_input(trained):
    from sifternet.eval.models import fine_tune

    images, labels, model = trained
    with pytest.raises(TypeError, match="black-box model cannot be fine-tuned"):
        fine_tune(CallableClassifier(lambda x: np.zeros(len(x))), images, labels, epochs=1)
    with pytest.raises(ValueError, match="epochs: expected an integer >= 1, got 0"):
        fine_tune(model, images, labels, epochs=0)
    with pytest.raises(ValueError, match="got 240 images and 3 labels"):
        fine_tune(model, images, labels[:3], epochs=1)


def test_evaluate_finetuned_trains_on_purified_clean_training_images(trained):
    from sifternet.eval.attacks import make_attack
    from sifternet.eval.finetune import evaluate_finetuned
    from sifternet.eval.metrics import accuracy
    from sifternet.eval.models import fine_tune

    images, labels, model = trained
    split = ev.split_data(len(images), 0.5, seed=0)
    triggered = make_attack("badnet").apply(images[split.evaluation])
    before = weights(model)
    rows = evaluate_finetuned(images, labels, model=model, defenses=[no_defense(), INVERT], split=split,
                              triggered=triggered, epochs=16, seed=3, batch_size=16, num_threads=1, progress=False)
    assert same_weights(weights(model), before)
    none, invert = rows
    assert [none.defense, invert.defense] == ["none", "invert"]
    assert (invert.epochs, invert.n_images) == (16, len(split.train))
    # no purification: the purified and the raw figures are the same measurement
    assert (none.acc, none.asr) == (none.raw_acc, none.raw_asr)
    # the untuned model gets every inverted image wrong; fine-tuned on them, it reads them
    assert accuracy(model.predict(255 - images[split.evaluation]), labels[split.evaluation]) == 0.0
    assert invert.acc > 0.95 and invert.raw_acc < 0.05
    # the same numbers as fine-tuning by hand on the inverted CLEAN training images
    by_hand = fine_tune(model, 255 - images[split.train], labels[split.train], epochs=16, seed=3, batch_size=16,
                        num_threads=1, progress=False)
    assert invert.acc == accuracy(by_hand.predict(255 - images[split.evaluation]), labels[split.evaluation])
    assert invert.raw_acc == accuracy(by_hand.predict(images[split.evaluation]), labels[split.evaluation])


def test_evaluate_finetuned_refusals():
    from sifternet.eval.finetune import evaluate_finetuned

    images, labels = brightness_data(20)
    split = ev.split_data(20, 0.5, seed=0)
    model = CallableClassifier(lambda x: np.zeros(len(x)))
    with pytest.raises(ValueError, match=r"query the model instead of purifying images"):
        evaluate_finetuned(images, labels, model=model, defenses=[ifmv()], split=split,
                           triggered=images[split.evaluation], epochs=1)
    with pytest.raises(ValueError, match=r"one image per evaluation index \(10\), got 3"):
        evaluate_finetuned(images, labels, model=model, defenses=[INVERT], split=split, triggered=images[:3], epochs=1)


def test_report_shows_the_finetuned_table():
    report = ev.Report(settings={"data": "toy.npz", "attack": "badnet", "attack_params": {}, "n_train": 10,
                                 "n_poisoned": 1, "n_eval": 5, "target": 0, "n_seeds": 2, "purifier": "p"})
    assert "fine-tuned on" not in report.to_markdown()
    report.finetuned.append(ev.FineTuneRow("sifternet", "d", 2, 10, 0.9, 0.25, 0.5, 0.8, 0.875, 1.5))
    text = report.to_markdown()
    assert "| sifternet | 2 | 10 | 90.00 | 25.00 | 50.00 | 80.00 | 87.50 | 1.50 |" in text
    assert json.loads(report.to_json())["finetuned"][0]["raw_asr"] == 0.875


def test_cli_evaluate_finetunes_sifternet_and_binarise_only_always(tmp_path):
    pytest.importorskip("torch", reason="PyTorch is not installed (optional extra 'eval')")
    from sifternet.cli import main

    args = ["evaluate", str(SAMPLE), "--epochs", "1", "--binarize", "global", "--steps", "100",
            "--per-class", "1", "--defenses", "none,sifternet", "--threads", "1"]
    assert main([*args, "--finetune-epochs", "1", "--finetune-defenses", "none", "--out", str(tmp_path / "a")]) == 0
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert [f["defense"] for f in report["finetuned"]] == ["none", "sifternet", "binarise-only"]
    assert report["settings"]["finetune_epochs"] == 1
    assert "| fine-tuned on |" in (tmp_path / "a" / "report.md").read_text()
    assert main([*args, "--out", str(tmp_path / "b")]) == 0  # off by default
    assert json.loads((tmp_path / "b" / "report.json").read_text())["finetuned"] == []
    assert main([*args, "--finetune-epochs", "1", "--finetune-defenses", "ifmv", "--out", str(tmp_path / "c")]) == 1
    assert not (tmp_path / "c").exists()  # refused before training


def test_cli_evaluate_takes_the_patch_level(tmp_path, capsys):
    pytest.importorskip("torch", reason="PyTorch is not installed (optional extra 'eval')")
    from sifternet.cli import main

    args = ["evaluate", str(SAMPLE), "--epochs", "1", "--binarize", "global", "--steps", "100", "--per-class", "1",
            "--defenses", "none,sifternet-repair-dark", "--threads", "1", "--position", "interior"]
    assert main([*args, "--value", "0", "--out", str(tmp_path / "a")]) == 0
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert report["settings"]["attack_params"] == {"position": "interior", "value": 0}
    assert main([*args, "--value", "300", "--out", str(tmp_path / "b")]) == 1
    assert "value: expected levels in 0 .. 255, got 300" in capsys.readouterr().err
