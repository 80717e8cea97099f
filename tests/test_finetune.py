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
    model = train_small_cnn(
        images, labels, n_classes=2, epochs=4, batch_size=16, seed=0, num_threads=1, progress=False
    )
    return images, labels, model


def weights(classifier):
    return {name: value.clone() for name, value in classifier.module.state_dict().items()}


def same_weights(a, b):
    return a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)


@pytest.fixture(scope="module")
def tuned(trained):
    """The trained model's weights before, and its copy fine-tuned on inverted images."""
    from sifternet.eval.models import fine_tune

    images, labels, model = trained
    before = weights(model)
    return before, fine_tune(
        model, 255 - images, labels, epochs=8, batch_size=16, seed=1, num_threads=1, progress=False
    )


def test_the_trained_model_reads_images_but_not_inverted_ones(trained):
    images, labels, model = trained
    assert (model.predict(images) == labels).all() and (model.predict(255 - images) != labels).all()


def test_fine_tune_leaves_the_callers_model_untouched(trained, tuned):
    images, labels, model = trained
    assert same_weights(weights(model), tuned[0])
    assert (model.predict(255 - images) != labels).all()


def test_fine_tune_learns_the_purified_domain(trained, tuned):
    images, labels, _ = trained
    assert (tuned[1].predict(255 - images) == labels).mean() > 0.95


def test_fine_tune_is_deterministic(trained, tuned):
    from sifternet.eval.models import fine_tune

    images, labels, model = trained
    again = fine_tune(
        model, 255 - images, labels, epochs=8, batch_size=16, seed=1, num_threads=1, progress=False
    )
    assert same_weights(weights(again), weights(tuned[1]))


def test_fine_tune_follows_the_seed(trained, tuned):
    from sifternet.eval.models import fine_tune

    images, labels, model = trained
    other = fine_tune(
        model, 255 - images, labels, epochs=8, batch_size=16, seed=2, num_threads=1, progress=False
    )
    assert not same_weights(weights(other), weights(tuned[1]))


def test_fine_tune_refuses_a_black_box_model(trained):
    from sifternet.eval.models import fine_tune

    images, labels, _ = trained
    with pytest.raises(TypeError, match="got CallableClassifier; a black-box model cannot be fine-tuned"):
        fine_tune(CallableClassifier(lambda x: np.zeros(len(x))), images, labels, epochs=1)


@pytest.mark.parametrize(
    ("epochs", "count", "labels_count", "message"),
    [
        (0, 240, 240, "fine_tune: epochs: expected an integer >= 1, got 0"),
        (True, 240, 240, "fine_tune: epochs: expected an integer >= 1, got True"),
        (1, 240, 3, "expected as many labels as images .*, got 240 images and 3 labels"),
        (1, 0, 0, "expected as many labels as images \\(at least one\\), got 0 images and 0 labels"),
    ],
    ids=["zero-epochs", "bool-epochs", "labels", "empty"],
)
def test_fine_tune_refuses_bad_input(trained, epochs, count, labels_count, message):
    from sifternet.eval.models import fine_tune

    images, labels, model = trained
    with pytest.raises(ValueError, match=message):
        fine_tune(model, images[:count], labels[:labels_count], epochs=epochs)


@pytest.fixture(scope="module")
def finetuned_rows(trained):
    from sifternet.eval.attacks import make_attack
    from sifternet.eval.finetune import evaluate_finetuned

    images, labels, model = trained
    split = ev.split_data(len(images), 0.5, seed=0)
    triggered = make_attack("badnet").apply(images[split.evaluation])
    before = weights(model)
    rows = evaluate_finetuned(
        images,
        labels,
        model=model,
        defenses=[no_defense(), INVERT],
        split=split,
        triggered=triggered,
        epochs=16,
        seed=3,
        batch_size=16,
        num_threads=1,
        progress=False,
    )
    return split, before, rows


def test_evaluate_finetuned_leaves_the_model_untouched(trained, finetuned_rows):
    assert same_weights(weights(trained[2]), finetuned_rows[1])


def test_evaluate_finetuned_has_a_row_per_defense_with_its_training_size(finetuned_rows):
    split, _, rows = finetuned_rows
    assert [(r.defense, r.epochs, r.n_images) for r in rows] == [
        ("none", 16, len(split.train)),
        ("invert", 16, len(split.train)),
    ]


def test_without_purification_purified_and_raw_figures_agree(finetuned_rows):
    none = finetuned_rows[2][0]
    assert (none.acc, none.asr) == (none.raw_acc, none.raw_asr)


def test_fine_tuned_on_inverted_images_it_reads_them(trained, finetuned_rows):
    from sifternet.eval.metrics import accuracy

    images, labels, model = trained
    split, _, (_, invert) = finetuned_rows
    # the untuned model gets every inverted image wrong; fine-tuned on them, it reads them
    assert accuracy(model.predict(255 - images[split.evaluation]), labels[split.evaluation]) == 0.0
    assert invert.acc > 0.95 and invert.raw_acc < 0.05


def test_evaluate_finetuned_trains_on_purified_clean_training_images(trained, finetuned_rows):
    """The same numbers as fine-tuning by hand on the inverted CLEAN training images."""
    from sifternet.eval.metrics import accuracy
    from sifternet.eval.models import fine_tune

    images, labels, model = trained
    split, _, (_, invert) = finetuned_rows
    by_hand = fine_tune(
        model,
        255 - images[split.train],
        labels[split.train],
        epochs=16,
        seed=3,
        batch_size=16,
        num_threads=1,
        progress=False,
    )
    assert invert.acc == accuracy(by_hand.predict(255 - images[split.evaluation]), labels[split.evaluation])
    assert invert.raw_acc == accuracy(by_hand.predict(images[split.evaluation]), labels[split.evaluation])


def test_evaluate_finetuned_refuses_model_querying_defenses():
    from sifternet.eval.finetune import evaluate_finetuned

    images, labels = brightness_data(20)
    split = ev.split_data(20, 0.5, seed=0)
    model = CallableClassifier(lambda x: np.zeros(len(x)))
    with pytest.raises(
        ValueError, match=r"fine-tuning: \['ifmv'\] query the model instead of purifying images"
    ):
        evaluate_finetuned(
            images,
            labels,
            model=model,
            defenses=[ifmv()],
            split=split,
            triggered=images[split.evaluation],
            epochs=1,
        )


def test_evaluate_finetuned_refuses_triggered_images_of_another_count():
    from sifternet.eval.finetune import evaluate_finetuned

    images, labels = brightness_data(20)
    split = ev.split_data(20, 0.5, seed=0)
    model = CallableClassifier(lambda x: np.zeros(len(x)))
    with pytest.raises(ValueError, match=r"triggered: expected one image per evaluation index \(10\), got 3"):
        evaluate_finetuned(
            images, labels, model=model, defenses=[INVERT], split=split, triggered=images[:3], epochs=1
        )


def report(*finetuned):
    result = ev.Report(
        settings={
            "data": "toy.npz",
            "attack": "badnet",
            "attack_params": {},
            "n_train": 10,
            "n_poisoned": 1,
            "n_eval": 5,
            "target": 0,
            "n_seeds": 2,
            "purifier": "p",
        }
    )
    result.finetuned.extend(finetuned)
    return result


FINETUNE_ROW = ev.FineTuneRow("sifternet", "d", 2, 10, 0.9, 0.25, 0.5, 0.8, 0.875, 1.5)


def test_report_without_fine_tuning_has_no_fine_tuned_table():
    assert "fine-tuned on" not in report().to_markdown()


def test_report_shows_the_finetuned_table():
    text = report(FINETUNE_ROW).to_markdown()
    assert "| sifternet | 2 | 10 | 90.00 | 25.00 | 50.00 | 80.00 | 87.50 | 1.50 |" in text


def test_report_json_holds_the_finetuned_rows():
    assert json.loads(report(FINETUNE_ROW).to_json())["finetuned"][0]["raw_asr"] == 0.875


def evaluate_args(defenses, *more):
    """A quick ``sifternet evaluate`` on the MNIST sample with ``defenses``, then ``more``."""
    return [
        "evaluate",
        str(SAMPLE),
        "--epochs",
        "1",
        "--binarize",
        "global",
        "--steps",
        "100",
        "--per-class",
        "1",
        "--defenses",
        defenses,
        "--threads",
        "1",
        *more,
    ]


EVALUATE = evaluate_args("none,sifternet")


@pytest.fixture
def cli_main():
    pytest.importorskip("torch", reason="PyTorch is not installed (optional extra 'eval')")
    from sifternet.cli import main

    return main


def test_cli_evaluate_finetunes_sifternet_and_binarise_only_always(cli_main, tmp_path):
    assert (
        cli_main([*EVALUATE, "--finetune-epochs", "1", "--finetune-defenses", "none", "--out", str(tmp_path)])
        == 0
    )
    report = json.loads((tmp_path / "report.json").read_text())
    assert [f["defense"] for f in report["finetuned"]] == ["none", "sifternet", "binarise-only"]
    assert report["settings"]["finetune_epochs"] == 1
    assert "| fine-tuned on |" in (tmp_path / "report.md").read_text()


def test_cli_evaluate_does_not_fine_tune_by_default(cli_main, tmp_path):
    assert cli_main([*EVALUATE, "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "report.json").read_text())["finetuned"] == []


def test_cli_evaluate_refuses_to_fine_tune_on_ifmv_before_training(cli_main, tmp_path):
    out = tmp_path / "c"
    assert (
        cli_main([*EVALUATE, "--finetune-epochs", "1", "--finetune-defenses", "ifmv", "--out", str(out)]) == 1
    )
    assert not out.exists()


PATCH_LEVEL = evaluate_args("none,sifternet-repair-dark", "--position", "interior")


def test_cli_evaluate_takes_the_patch_level(cli_main, tmp_path):
    assert cli_main([*PATCH_LEVEL, "--value", "0", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["settings"]["attack_params"] == {"position": "interior", "value": 0}


def test_cli_evaluate_refuses_a_patch_level_beyond_255(cli_main, tmp_path, capsys):
    assert cli_main([*PATCH_LEVEL, "--value", "300", "--out", str(tmp_path / "b")]) == 1
    assert "value: expected levels in 0 .. 255, got 300" in capsys.readouterr().err
