"""Input detectors (STRIP, TeCo) and the corruptions TeCo uses, on cases with known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import sifternet
from sifternet.eval.corruptions import CORRUPTIONS, IMAGENET_C, LEFT_OUT, corrupt
from sifternet.eval.detectors import (
    DETECTORS, entropy, first_change_severities, make_detectors, strip, superimpose, teco,
)
from sifternet.eval.metrics import roc_auc
from sifternet.eval.models import CallableClassifier

DATA = Path(sifternet.__file__).parent / "data"


def sample(name: str, count: int = 12) -> np.ndarray:
    with np.load(DATA / f"{name}_sample.npz") as data:
        return data["images"][:count]


class ProbabilityModel:
    """A model given by its probabilities; labels are their argmax."""

    def __init__(self, proba):
        self.predict_proba = proba

    def predict(self, images):
        return self.predict_proba(images).argmax(1)


# -- corruptions ---------------------------------------------------------------------
def test_corruptions_cover_imagenet_c_but_frost():
    assert set(CORRUPTIONS) | set(LEFT_OUT) == set(IMAGENET_C) and not set(CORRUPTIONS) & set(LEFT_OUT)
    assert len(CORRUPTIONS) == 14


@pytest.mark.parametrize("name", list(CORRUPTIONS))
@pytest.mark.parametrize("dataset", ["gtsrb", "mnist"])
def test_corruption_is_deterministic_chunk_independent_and_keeps_shape(name, dataset):
    x = sample(dataset, 8)
    indices = np.arange(8) * 7 + 3
    out = corrupt(x, name, 3, indices=indices, seed=5)
    assert out.dtype == np.uint8 and out.shape == x.shape
    assert not np.array_equal(out, x)
    np.testing.assert_array_equal(out, corrupt(x, name, 3, indices=indices, seed=5))
    parts = [corrupt(x[s], name, 3, indices=indices[s], seed=5) for s in (slice(0, 3), slice(3, 4), slice(4, 8))]
    np.testing.assert_array_equal(out, np.concatenate(parts))
    np.testing.assert_array_equal(out[::-1], corrupt(x[::-1], name, 3, indices=indices[::-1], seed=5))
    assert corrupt(x[:0], name, 3).shape == (0,) + x.shape[1:]


RANDOM = {"gaussian_noise", "shot_noise", "impulse_noise", "glass_blur", "motion_blur", "snow", "fog",
          "elastic_transform"}


@pytest.mark.parametrize("name", sorted(RANDOM))
def test_random_corruptions_follow_seed_and_index(name):
    x = np.repeat(sample("gtsrb", 1), 2, axis=0)
    same_index = corrupt(x, name, 5, indices=[4, 4])
    np.testing.assert_array_equal(same_index[0], same_index[1])
    other_index = corrupt(x, name, 5, indices=[4, 5])
    assert not np.array_equal(other_index[0], other_index[1])
    assert not np.array_equal(corrupt(x, name, 5, indices=[4, 4], seed=1), same_index)


def mean_change(x: np.ndarray, name: str, severity: int) -> float:
    return float(np.abs(corrupt(x, name, severity).astype(float) - x).mean())


# CIFAR-10-C's parameters grow with severity for these; glass blur, motion blur, snow and
# pixelate are not strictly monotone in pixel change at every step, and the elastic
# transform's table puts its largest affine part at severity 1.
MONOTONE = ["gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "zoom_blur", "fog",
            "brightness", "contrast", "jpeg_compression"]


@pytest.mark.parametrize("name", MONOTONE)
def test_severity_increases_the_change(name):
    x = sample("gtsrb", 16)
    changes = [mean_change(x, name, severity) for severity in range(1, 6)]
    assert all(a < b for a, b in zip(changes, changes[1:])), changes


@pytest.mark.parametrize("name", sorted(set(CORRUPTIONS) - {"elastic_transform"}))
def test_severity_5_changes_more_than_severity_1(name):
    x = sample("gtsrb", 16)
    assert mean_change(x, name, 5) > mean_change(x, name, 1)


def test_known_corruption_values():
    grey = np.full((2, 8, 8), 100, np.uint8)
    np.testing.assert_array_equal(corrupt(grey, "brightness", 3), 138)  # 100 + 0.15 * 255 = 138.25
    np.testing.assert_array_equal(corrupt(grey, "contrast", 5), 100)  # a flat image has no contrast
    np.testing.assert_array_equal(corrupt(grey, "defocus_blur", 5), 100)
    np.testing.assert_array_equal(corrupt(grey, "pixelate", 5), 100)
    halves = np.zeros((1, 8, 8, 3), np.uint8)
    halves[:, :, 4:] = 200
    np.testing.assert_array_equal(corrupt(halves, "contrast", 2), np.where(halves == 200, 150, 50))


@pytest.mark.parametrize(
    ("images", "name", "severity", "indices", "message"),
    [
        (np.zeros((1, 8, 8), np.uint8), "frost", 1, None, "frost photographs"),
        (np.zeros((1, 8, 8), np.uint8), "blur", 1, None, "unknown 'blur'"),
        (np.zeros((1, 8, 8), np.uint8), "contrast", 0, None, "severity"),
        (np.zeros((1, 8, 8), np.uint8), "contrast", 6, None, "severity"),
        (np.zeros((1, 8, 8), np.uint8), "contrast", True, None, "severity"),
        (np.zeros((1, 8, 8), np.float32), "contrast", 1, None, "uint8"),
        (np.zeros((1, 8, 8, 2), np.uint8), "contrast", 1, None, "C = 1 or 3"),
        (np.zeros((8, 8), np.uint8), "contrast", 1, None, "uint8"),
        (np.zeros((2, 8, 8), np.uint8), "contrast", 1, [0], "indices: expected 2 integers"),
    ],
)
def test_corrupt_rejects_bad_input(images, name, severity, indices, message):
    with pytest.raises(ValueError, match=message):
        corrupt(images, name, severity, indices=indices)


# -- STRIP ---------------------------------------------------------------------------
def test_superimpose_and_entropy():
    a, b = np.uint8([[10, 200]]), np.uint8([[15, 100]])
    np.testing.assert_array_equal(superimpose(a, b, "add"), [[25, 255]])
    np.testing.assert_array_equal(superimpose(a, b, "average"), [[13, 150]])
    with pytest.raises(ValueError, match="blend"):
        superimpose(a, b, "max")
    np.testing.assert_allclose(entropy([[1, 0, 0, 0], [0.5, 0.5, 0, 0], [0.25] * 4]), [0, np.log(2), np.log(4)])


@pytest.mark.parametrize("classes", [2, 10])
def test_strip_constant_model_scores_zero_uniform_model_minus_log_k(classes):
    images, pool = sample("mnist", 5), sample("mnist", 12)[5:]
    one_hot = ProbabilityModel(lambda x: np.eye(classes)[np.zeros(len(x), int)])
    uniform = ProbabilityModel(lambda x: np.full((len(x), classes), 1 / classes))
    np.testing.assert_array_equal(strip(one_hot, pool, copies=4).score(images, np.arange(5)), 0)
    np.testing.assert_allclose(strip(uniform, pool, copies=4).score(images, np.arange(5)), -np.log(classes))


def test_strip_draws_per_index_and_refuses_bad_input():
    images, pool = sample("gtsrb", 6), sample("gtsrb", 30)[6:]

    def brightness_votes(x):  # two classes by mean brightness: the overlays matter
        p = np.clip(x.reshape(len(x), -1).mean(1) / 255, 0, 1)
        return np.stack([p, 1 - p], 1)

    model = ProbabilityModel(brightness_votes)
    indices = np.arange(6) + 40
    detector = strip(model, pool, copies=7, blend="average", seed=3)
    scores = detector.score(images, indices)
    assert (scores < 0).all() and len(set(scores.round(12))) > 1
    np.testing.assert_array_equal(scores, strip(model, pool, copies=7, blend="average", seed=3,
                                                images_per_call=4).score(images, indices))
    np.testing.assert_array_equal(scores[2:], detector.score(images[2:], indices[2:]))
    assert not np.array_equal(scores, detector.score(images, indices + 1))
    with pytest.raises(TypeError, match="no predict_proba"):
        strip(CallableClassifier(lambda x: np.zeros(len(x))), pool)
    with pytest.raises(ValueError, match="copies"):
        strip(model, pool, copies=0)
    with pytest.raises(ValueError, match="pool"):
        strip(model, pool[:0])
    with pytest.raises(ValueError, match="do not match the pool"):
        detector.score(sample("mnist", 2), np.arange(2))
    with pytest.raises(ValueError, match="indices"):
        detector.score(images, np.arange(5))


# -- TeCo ----------------------------------------------------------------------------
def test_teco_pixel_model_known_severities_and_deviation():
    model = CallableClassifier(lambda x: (x[:, 0, 0] > 127).astype(int))  # reads one pixel
    images = np.stack([np.full((8, 8), 100, np.uint8), np.full((8, 8), 20, np.uint8)])
    # brightness: 100 + 0.15 * 255 > 127 first at severity 3; 20 needs + 0.45 (never); a flat
    # image keeps its value under contrast (never): 6 = no severity changed the label
    first = first_change_severities(model, images, np.arange(2), corruptions=["brightness", "contrast"])
    np.testing.assert_array_equal(first, [[3, 6], [6, 6]])
    detector = teco(model, corruptions=["brightness", "contrast"])
    np.testing.assert_allclose(detector.score(images, np.arange(2)), [1.5, 0])  # std of (3, 6) and of (6, 6)


def test_teco_rejects_bad_corruptions():
    model = CallableClassifier(lambda x: np.zeros(len(x)))
    with pytest.raises(ValueError, match="frost photographs"):
        teco(model, corruptions=["frost", "contrast"])
    with pytest.raises(ValueError, match="at least two"):
        teco(model, corruptions=["contrast", "contrast"])


# -- both, on a synthetic backdoor ---------------------------------------------------
def backdoored_set(count: int = 24, side: int = 16):
    """Dark images whose brightest quadrant is the class (0..3), and their triggered
    copies (a white 3x3 patch in the corner); the model predicts class 0 whenever all
    patch pixels are >= 250, which no blend of two clean images reaches."""
    rng = np.random.default_rng(0)
    clean = rng.integers(0, 40, (count, side, side), dtype=np.uint8)
    half = side // 2
    for b in range(count):
        row, col = divmod(b % 4, 2)
        clean[b, row * half : (row + 1) * half, col * half : (col + 1) * half] += 60
    triggered = clean.copy()
    triggered[:, -3:, -3:] = 255

    def proba(x):
        quadrants = x.reshape(len(x), 2, half, 2, half).mean(axis=(2, 4)).reshape(len(x), 4) / 10
        p = np.exp(quadrants - quadrants.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        patched = (x[:, -3:, -3:] >= 250).all(axis=(1, 2))
        p[patched] = np.eye(4)[0]
        return p

    pool = rng.integers(0, 40, (30, side, side), dtype=np.uint8)
    return clean, triggered, ProbabilityModel(proba), pool


def test_strip_and_teco_detect_a_white_patch_backdoor():
    clean, triggered, model, pool = backdoored_set()
    indices = np.arange(len(clean))
    assert (model.predict(triggered) == 0).all() and (model.predict(clean) == indices % 4).all()
    victims = indices % 4 != 0  # as in evaluate: triggered images of non-target classes
    triggered, victim_indices = triggered[victims], indices[victims]
    detectors = {d.name: d for d in make_detectors(["strip", "teco"], model, pool, seed=0)}
    scores = {name: (d.score(clean, indices), d.score(triggered, victim_indices)) for name, d in detectors.items()}
    assert roc_auc(*scores["strip"]) == 1.0, scores["strip"]
    assert roc_auc(*scores["teco"]) > 0.9, scores["teco"]
    teco_triggered = scores["teco"][1]
    np.testing.assert_array_equal(teco_triggered[5:], detectors["teco"].score(triggered[5:], victim_indices[5:]))
    with pytest.raises(ValueError, match="unknown \\['neural-cleanse'\\]"):
        make_detectors(["neural-cleanse"], model, pool, seed=0)
    assert set(DETECTORS) == {"strip", "teco"}


def test_torch_classifier_probabilities():
    torch = pytest.importorskip("torch", reason="TorchClassifier needs PyTorch (pip install torch==2.13.0)")
    from sifternet.eval.models import TorchClassifier, small_cnn

    torch.manual_seed(0)
    model = TorchClassifier(small_cnn(1, 28, 28, 10), batch_size=5)
    x = sample("mnist", 12)
    p = model.predict_proba(x)
    assert p.shape == (12, 10) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(1), 1, rtol=1e-5)
    np.testing.assert_array_equal(p.argmax(1), model.predict(x))
    assert model.predict_proba(x[:0]).shape == (0, 10) and model.predict(x[:0]).shape == (0,)
    scores = strip(model, sample("mnist", 30)[12:], copies=3).score(x, np.arange(12))
    assert scores.shape == (12,) and (scores <= 0).all() and (scores >= -np.log(10) - 1e-6).all()


def test_evaluate_scores_detectors_on_clean_and_victim_images():
    from sifternet import SifterNet
    from sifternet.eval import evaluate as ev
    from sifternet.eval.attacks import make_attack
    from sifternet.eval.defenses import no_defense

    clean, _, model, pool = backdoored_set(40)
    labels = np.arange(40) % 4
    split = ev.split_data(40, 0.5, seed=0)
    purifier = SifterNet(binarize="global", steps=10).fit(clean[split.train[:4]])
    report, _, _ = ev.evaluate(
        clean, labels, attack=make_attack("badnet"), model=model, purifier=purifier, defenses=[no_defense()],
        split=split, detectors=make_detectors(["strip", "teco"], model, pool, seed=0), progress=False,
        settings={"data": "toy.npz", "attack": "badnet", "attack_params": {}, "n_train": 20, "n_poisoned": 0,
                  "n_seeds": 4},
    )
    assert report.rows[0].asr == 1.0
    aucs = {row.detector: row.auc for row in report.detectors}
    assert aucs["strip"] == 1.0 and aucs["teco"] > 0.9, aucs
    assert "| strip | 1.0000 |" in report.to_markdown()
