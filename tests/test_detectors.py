"""Input detectors (STRIP, TeCo, SentiNet) and the corruptions TeCo uses, on cases with known answers."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

import sifternet
from sifternet.eval.corruptions import CORRUPTIONS, IMAGENET_C, LEFT_OUT, corrupt
from sifternet.eval.detectors import (
    DETECTORS,
    entropy,
    first_change_severities,
    fit_boundary,
    make_detectors,
    salient_mask,
    sentinet,
    sentinet_points,
    strip,
    superimpose,
    teco,
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


CORRUPTION_INDICES = np.arange(8) * 7 + 3


@functools.lru_cache(maxsize=None)
def corrupted(name: str, dataset: str) -> np.ndarray:
    """The first 8 images of a sample under ``name`` at severity 3, seed 5."""
    return corrupt(sample(dataset, 8), name, 3, indices=CORRUPTION_INDICES, seed=5)


each_corruption = pytest.mark.parametrize(
    ("name", "dataset"), [(name, dataset) for name in CORRUPTIONS for dataset in ("gtsrb", "mnist")]
)


@each_corruption
def test_corruption_keeps_shape_and_dtype_and_changes_the_images(name, dataset):
    out = corrupted(name, dataset)
    assert out.dtype == np.uint8 and out.shape == sample(dataset, 8).shape
    assert not np.array_equal(out, sample(dataset, 8))


@each_corruption
def test_corruption_is_deterministic(name, dataset):
    again = corrupt(sample(dataset, 8), name, 3, indices=CORRUPTION_INDICES, seed=5)
    np.testing.assert_array_equal(again, corrupted(name, dataset))


@each_corruption
def test_corruption_is_chunk_independent(name, dataset):
    x = sample(dataset, 8)
    parts = [
        corrupt(x[s], name, 3, indices=CORRUPTION_INDICES[s], seed=5)
        for s in (slice(0, 3), slice(3, 4), slice(4, 8))
    ]
    np.testing.assert_array_equal(np.concatenate(parts), corrupted(name, dataset))


@each_corruption
def test_corruption_is_order_independent(name, dataset):
    reversed_ = corrupt(sample(dataset, 8)[::-1], name, 3, indices=CORRUPTION_INDICES[::-1], seed=5)
    np.testing.assert_array_equal(reversed_, corrupted(name, dataset)[::-1])


@each_corruption
def test_corruption_of_an_empty_batch_is_empty(name, dataset):
    x = sample(dataset, 8)
    assert corrupt(x[:0], name, 3).shape == (0,) + x.shape[1:]


RANDOM = {
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "glass_blur",
    "motion_blur",
    "snow",
    "fog",
    "elastic_transform",
}


TWICE = np.repeat(sample("gtsrb", 1), 2, axis=0)  # one image, twice


@pytest.mark.parametrize("name", sorted(RANDOM))
def test_random_corruption_of_one_index_is_one_draw(name):
    same_index = corrupt(TWICE, name, 5, indices=[4, 4])
    np.testing.assert_array_equal(same_index[0], same_index[1])


@pytest.mark.parametrize("name", sorted(RANDOM))
def test_random_corruption_differs_per_index(name):
    other_index = corrupt(TWICE, name, 5, indices=[4, 5])
    assert not np.array_equal(other_index[0], other_index[1])


@pytest.mark.parametrize("name", sorted(RANDOM))
def test_random_corruption_follows_the_seed(name):
    assert not np.array_equal(
        corrupt(TWICE, name, 5, indices=[4, 4], seed=1), corrupt(TWICE, name, 5, indices=[4, 4])
    )


def mean_change(x: np.ndarray, name: str, severity: int) -> float:
    return float(np.abs(corrupt(x, name, severity).astype(float) - x).mean())


# CIFAR-10-C's parameters grow with severity for these; glass blur, motion blur, snow and
# pixelate are not strictly monotone in pixel change at every step, and the elastic
# transform's table puts its largest affine part at severity 1.
MONOTONE = [
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "zoom_blur",
    "fog",
    "brightness",
    "contrast",
    "jpeg_compression",
]


@pytest.mark.parametrize("name", MONOTONE)
def test_severity_increases_the_change(name):
    x = sample("gtsrb", 16)
    changes = [mean_change(x, name, severity) for severity in range(1, 6)]
    assert all(a < b for a, b in zip(changes, changes[1:])), changes


@pytest.mark.parametrize("name", sorted(set(CORRUPTIONS) - {"elastic_transform"}))
def test_severity_5_changes_more_than_severity_1(name):
    x = sample("gtsrb", 16)
    assert mean_change(x, name, 5) > mean_change(x, name, 1)


GREY = np.full((2, 8, 8), 100, np.uint8)
HALVES = np.zeros((1, 8, 8, 3), np.uint8)
HALVES[:, :, 4:] = 200


@pytest.mark.parametrize(
    ("images", "name", "severity", "want"),
    [
        (GREY, "brightness", 3, 138),  # 100 + 0.15 * 255 = 138.25
        (GREY, "contrast", 5, 100),  # a flat image has no contrast
        (GREY, "defocus_blur", 5, 100),
        (GREY, "pixelate", 5, 100),
        (HALVES, "contrast", 2, np.where(HALVES == 200, 150, 50)),
    ],
    ids=["brightness", "flat-contrast", "flat-defocus", "flat-pixelate", "halves-contrast"],
)
def test_known_corruption_values(images, name, severity, want):
    np.testing.assert_array_equal(corrupt(images, name, severity), np.broadcast_to(want, images.shape))


@pytest.mark.parametrize(
    ("images", "name", "severity", "indices", "message"),
    [
        (
            np.zeros((1, 8, 8), np.uint8),
            "frost",
            1,
            None,
            r"corruption: unknown 'frost' \(overlays ImageNet-C's frost photographs",
        ),
        (np.zeros((1, 8, 8), np.uint8), "blur", 1, None, "corruption: unknown 'blur'; expected one of"),
        (np.zeros((1, 8, 8), np.uint8), "contrast", 0, None, r"severity: expected an int in 1\.\.5, got 0"),
        (np.zeros((1, 8, 8), np.uint8), "contrast", 6, None, r"severity: expected an int in 1\.\.5, got 6"),
        (
            np.zeros((1, 8, 8), np.uint8),
            "contrast",
            True,
            None,
            r"severity: expected an int in 1\.\.5, got True",
        ),
        (
            np.zeros((1, 8, 8), np.float32),
            "contrast",
            1,
            None,
            r"images: expected uint8 \(B, H, W\) or \(B, H, W, C\) with C = 1 or 3, got float32 \(1, 8, 8\)",
        ),
        (np.zeros((1, 8, 8, 2), np.uint8), "contrast", 1, None, r"with C = 1 or 3, got uint8 \(1, 8, 8, 2\)"),
        (np.zeros((8, 8), np.uint8), "contrast", 1, None, r"with C = 1 or 3, got uint8 \(8, 8\)"),
        (
            np.zeros((2, 8, 8), np.uint8),
            "contrast",
            1,
            [0],
            r"indices: expected 2 integers, got int64 \(1,\)",
        ),
    ],
    ids=[
        "frost",
        "unknown",
        "severity-0",
        "severity-6",
        "severity-bool",
        "float",
        "two-channels",
        "2d",
        "indices",
    ],
)
def test_corrupt_rejects_bad_input(images, name, severity, indices, message):
    with pytest.raises(ValueError, match=message):
        corrupt(images, name, severity, indices=indices)


# -- STRIP ---------------------------------------------------------------------------
@pytest.mark.parametrize(("blend", "want"), [("add", [[25, 255]]), ("average", [[13, 150]])])
def test_superimpose(blend, want):
    np.testing.assert_array_equal(superimpose(np.uint8([[10, 200]]), np.uint8([[15, 100]]), blend), want)


def test_superimpose_refuses_an_unknown_blend():
    with pytest.raises(ValueError, match="blend: expected one of .*, got 'max'"):
        superimpose(np.uint8([[10]]), np.uint8([[15]]), "max")


def test_entropy_by_hand():
    np.testing.assert_allclose(
        entropy([[1, 0, 0, 0], [0.5, 0.5, 0, 0], [0.25] * 4]), [0, np.log(2), np.log(4)]
    )


@pytest.mark.parametrize("classes", [2, 10])
def test_strip_scores_a_constant_model_zero(classes):
    images, pool = sample("mnist", 5), sample("mnist", 12)[5:]
    one_hot = ProbabilityModel(lambda x: np.eye(classes)[np.zeros(len(x), int)])
    np.testing.assert_array_equal(strip(one_hot, pool, copies=4).score(images, np.arange(5)), 0)


@pytest.mark.parametrize("classes", [2, 10])
def test_strip_scores_a_uniform_model_minus_log_k(classes):
    images, pool = sample("mnist", 5), sample("mnist", 12)[5:]
    uniform = ProbabilityModel(lambda x: np.full((len(x), classes), 1 / classes))
    np.testing.assert_allclose(strip(uniform, pool, copies=4).score(images, np.arange(5)), -np.log(classes))


def brightness_votes(x):
    """Two classes by mean brightness: the overlays matter."""
    p = np.clip(x.reshape(len(x), -1).mean(1) / 255, 0, 1)
    return np.stack([p, 1 - p], 1)


STRIP_IMAGES, STRIP_INDICES = sample("gtsrb", 6), np.arange(6) + 40
STRIP_POOL = sample("gtsrb", 30)[6:]
BRIGHTNESS = ProbabilityModel(brightness_votes)


@pytest.fixture(scope="module")
def strip_scores():
    detector = strip(BRIGHTNESS, STRIP_POOL, copies=7, blend="average", seed=3)
    return detector, detector.score(STRIP_IMAGES, STRIP_INDICES)


def test_strip_scores_are_negative_entropies_that_vary(strip_scores):
    scores = strip_scores[1]
    assert (scores < 0).all() and len(set(scores.round(12))) > 1


def test_strip_scores_do_not_depend_on_images_per_call(strip_scores):
    chunked = strip(BRIGHTNESS, STRIP_POOL, copies=7, blend="average", seed=3, images_per_call=4)
    np.testing.assert_array_equal(chunked.score(STRIP_IMAGES, STRIP_INDICES), strip_scores[1])


def test_strip_scores_do_not_depend_on_the_batch(strip_scores):
    detector, scores = strip_scores
    np.testing.assert_array_equal(detector.score(STRIP_IMAGES[2:], STRIP_INDICES[2:]), scores[2:])


def test_strip_draws_the_overlays_per_index(strip_scores):
    detector, scores = strip_scores
    assert not np.array_equal(detector.score(STRIP_IMAGES, STRIP_INDICES + 1), scores)


def test_strip_needs_probabilities():
    with pytest.raises(TypeError, match=r"strip: the model \(CallableClassifier\) has no predict_proba"):
        strip(CallableClassifier(lambda x: np.zeros(len(x))), STRIP_POOL)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"copies": 0}, "strip: copies: expected a positive int, got 0"),
        ({"pool": STRIP_POOL[:0]}, r"strip: pool: expected uint8 images \(P, H, W\[, C\]\), P > 0"),
        ({"blend": "max"}, "strip: blend: expected one of .*, got 'max'"),
    ],
    ids=["copies", "empty-pool", "blend"],
)
def test_strip_refuses_bad_settings(options, message):
    with pytest.raises(ValueError, match=message):
        strip(BRIGHTNESS, **{"pool": STRIP_POOL, **options})


@pytest.mark.parametrize(
    ("images", "indices", "message"),
    [
        (
            sample("mnist", 2),
            np.arange(2),
            r"strip: images of shape \(28, 28\) do not match the pool's \(32, 32, 3\)",
        ),
        (STRIP_IMAGES, np.arange(5), r"indices: expected 6 integers, got int64 \(5,\)"),
    ],
    ids=["image-shape", "indices"],
)
def test_strip_score_refuses_bad_input(strip_scores, images, indices, message):
    with pytest.raises(ValueError, match=message):
        strip_scores[0].score(images, indices)


# -- TeCo ----------------------------------------------------------------------------
PIXEL_MODEL = CallableClassifier(lambda x: (x[:, 0, 0] > 127).astype(int))  # reads one pixel
PIXEL_IMAGES = np.stack([np.full((8, 8), 100, np.uint8), np.full((8, 8), 20, np.uint8)])


def test_teco_first_change_severities_on_a_pixel_model():
    # brightness: 100 + 0.15 * 255 > 127 first at severity 3; 20 needs + 0.45 (never); a flat
    # image keeps its value under contrast (never): 6 = no severity changed the label
    first = first_change_severities(
        PIXEL_MODEL, PIXEL_IMAGES, np.arange(2), corruptions=["brightness", "contrast"]
    )
    np.testing.assert_array_equal(first, [[3, 6], [6, 6]])


def test_teco_score_is_the_deviation_of_first_change_severities():
    detector = teco(PIXEL_MODEL, corruptions=["brightness", "contrast"])
    np.testing.assert_allclose(
        detector.score(PIXEL_IMAGES, np.arange(2)), [1.5, 0]
    )  # std of (3, 6) and of (6, 6)


@pytest.mark.parametrize(
    ("corruptions", "message"),
    [
        (["frost", "contrast"], r"teco: corruptions: unknown \['frost'\] \(.*frost photographs"),
        (["contrast", "contrast"], r"teco: corruptions: expected at least two different ones"),
    ],
    ids=["frost", "one-kind"],
)
def test_teco_rejects_bad_corruptions(corruptions, message):
    with pytest.raises(ValueError, match=message):
        teco(CallableClassifier(lambda x: np.zeros(len(x))), corruptions=corruptions)


# -- both, on a synthetic backdoor ---------------------------------------------------
def backdoored_set(count: int = 24, side: int = 16, seed: int = 0):
    """Dark images whose brightest quadrant is the class (0..3), and their triggered
    copies (a white 3x3 patch in the corner); the model predicts class 0 whenever all
    patch pixels are >= 250, which no blend of two clean images reaches."""
    rng = np.random.default_rng(seed)
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


@pytest.fixture(scope="module")
def white_patch():
    """Per detector, its scores of the clean images and of the triggered images of
    non-target classes (as in evaluate), and the detectors and victims themselves."""
    clean, triggered, model, pool = backdoored_set()
    indices = np.arange(len(clean))
    victims = indices % 4 != 0
    detectors = {d.name: d for d in make_detectors(["strip", "teco"], model, pool, seed=0)}
    scores = {
        name: (d.score(clean, indices), d.score(triggered[victims], indices[victims]))
        for name, d in detectors.items()
    }
    return scores, detectors, triggered[victims], indices[victims]


def test_the_synthetic_backdoor_works():
    clean, triggered, model, _ = backdoored_set()
    assert (model.predict(triggered) == 0).all() and (model.predict(clean) == np.arange(len(clean)) % 4).all()


def test_strip_detects_a_white_patch_backdoor(white_patch):
    scores = white_patch[0]["strip"]
    assert roc_auc(*scores) == 1.0, scores


def test_teco_detects_a_white_patch_backdoor(white_patch):
    scores = white_patch[0]["teco"]
    assert roc_auc(*scores) > 0.9, scores


def test_teco_scores_do_not_depend_on_the_batch(white_patch):
    scores, detectors, triggered, indices = white_patch
    np.testing.assert_array_equal(scores["teco"][1][5:], detectors["teco"].score(triggered[5:], indices[5:]))


def test_make_detectors_refuses_unknown_names():
    _, _, model, pool = backdoored_set()
    with pytest.raises(ValueError, match=r"detectors: unknown \['neural-cleanse'\]; expected some of"):
        make_detectors(["neural-cleanse"], model, pool, seed=0)


def test_detectors_are_strip_teco_sentinet_and_the_repair_scores():
    assert set(DETECTORS) == {
        "strip",
        "teco",
        "sentinet",
        "sifternet-repair",
        "sifternet-repair-dark",
        "sifternet-nearest",
    }


@pytest.mark.parametrize("name", ["sifternet-repair", "sifternet-nearest"])
def test_the_repair_score_detects_a_white_patch_without_querying_the_model(name):
    clean, triggered, _, pool = backdoored_set()

    def refuse(images):
        raise AssertionError("the model was queried")

    model = CallableClassifier(refuse)
    (detector,) = make_detectors([name], model, pool, seed=0, seeds=clean[:8])
    indices = np.arange(len(clean))
    clean_scores, triggered_scores = detector.score(clean, indices), detector.score(triggered, indices)
    assert roc_auc(clean_scores, triggered_scores) == 1.0, (clean_scores, triggered_scores)
    np.testing.assert_array_equal(detector.score(triggered[5:], indices[5:]), triggered_scores[5:])


def test_the_repair_scores_need_the_defenders_seeds():
    _, _, model, pool = backdoored_set()
    with pytest.raises(ValueError, match=r"detectors: sifternet-repair-dark needs the defender's seed"):
        make_detectors(["sifternet-repair-dark"], model, pool, seed=0)


@pytest.fixture(scope="module")
def torch_classifier():
    torch = pytest.importorskip("torch", reason="TorchClassifier needs PyTorch (pip install torch==2.13.0)")
    from sifternet.eval.models import TorchClassifier, small_cnn

    torch.manual_seed(0)
    return TorchClassifier(small_cnn(1, 28, 28, 10), batch_size=5)


def test_torch_classifier_probabilities_sum_to_one(torch_classifier):
    p = torch_classifier.predict_proba(sample("mnist", 12))
    assert p.shape == (12, 10) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(1), 1, rtol=1e-5)


def test_torch_classifier_predicts_the_most_probable_label(torch_classifier):
    x = sample("mnist", 12)
    np.testing.assert_array_equal(torch_classifier.predict_proba(x).argmax(1), torch_classifier.predict(x))


def test_torch_classifier_on_an_empty_batch(torch_classifier):
    x = sample("mnist", 12)[:0]
    assert torch_classifier.predict_proba(x).shape == (0, 10) and torch_classifier.predict(x).shape == (0,)


def test_strip_on_a_torch_classifier(torch_classifier):
    scores = strip(torch_classifier, sample("mnist", 30)[12:], copies=3).score(
        sample("mnist", 12), np.arange(12)
    )
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
        clean,
        labels,
        attack=make_attack("badnet"),
        model=model,
        purifier=purifier,
        defenses=[no_defense()],
        split=split,
        detectors=make_detectors(["strip", "teco"], model, pool, seed=0),
        progress=False,
        settings={
            "data": "toy.npz",
            "attack": "badnet",
            "attack_params": {},
            "n_train": 20,
            "n_poisoned": 0,
            "n_seeds": 4,
        },
    )
    assert report.rows[0].asr == 1.0
    aucs = {row.detector: row.auc for row in report.detectors}
    assert aucs["strip"] == 1.0 and aucs["teco"] > 0.9, aucs
    assert "| strip | 1.0000 |" in report.to_markdown()


# -- SentiNet ------------------------------------------------------------------------
def test_salient_mask_takes_the_top_fraction_ties_by_position():
    saliency = np.array([[0.0, 3.0, 1.0], [2.0, 1.0, 0.5]])
    np.testing.assert_array_equal(salient_mask(saliency, 0.5), [[False, True, True], [True, False, False]])
    np.testing.assert_array_equal(salient_mask(saliency, 0.1), [[False, True, False], [False, False, False]])


def test_salient_mask_keeps_only_positive_saliency():
    np.testing.assert_array_equal(salient_mask(np.array([[0.0, 2.0], [0.0, 0.0]]), 1.0), [[0, 1], [0, 0]])
    assert not salient_mask(np.zeros((4, 4)), 0.5).any()


def test_fit_boundary_runs_through_the_upper_envelope():
    # per bin of confidence, a high point on y = 1 - x^2 and lower ones under it
    top = np.linspace(0, 1, 5)
    confidence = np.concatenate([top, top, top])
    fooled = np.concatenate([1 - top**2, 0.5 * (1 - top**2), np.zeros(5)])
    boundary = fit_boundary(confidence, fooled, bins=5)
    np.testing.assert_allclose(boundary.polynomial, [-1, 0, 1], atol=1e-9)
    np.testing.assert_allclose(boundary.height([0.5, 0.5, 2.0], [1.0, 0.0, 0.5]), [0.25, -0.75, 0.5])


@pytest.mark.parametrize(
    ("confidence", "fooled", "polynomial"),
    [([0.7, 0.7, 0.7], [0.1, 0.3, 0.2], [0.3]), ([0.0, 0.5, 0.0], [0.0, 0.6, 0.1], [1.0, 0.1])],
    ids=["one-bin", "two-bins"],
)
def test_fit_boundary_lowers_the_degree_with_few_bins(confidence, fooled, polynomial):
    np.testing.assert_allclose(fit_boundary(np.array(confidence), np.array(fooled)).polynomial, polynomial)


def test_fit_boundary_refuses_no_points():
    with pytest.raises(ValueError, match=r"fit_boundary: expected two equal non-empty vectors, got \(0,\)"):
        fit_boundary(np.zeros(0), np.zeros(0))


def patch_module(torch):
    """The backdoored model of :func:`backdoored_set` as a torch network whose saliency is
    known: a 1x1 convolution gives the image (channel 0) and its pixels above 0.9 x 255
    (channel 1, positive only there); class q's logit is 25.5 x the mean of quadrant q of
    channel 0, and class 0 adds 40 x the sum of channel 1 over the corner patch, which
    only a white patch fills (+36 for all nine pixels)."""
    nn = torch.nn
    conv, head = nn.Conv2d(1, 2, 1), nn.Linear(2 * 16 * 16, 4)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.copy_(torch.tensor([0.0, -0.9]))
        head.bias.zero_()
        weight = head.weight.zero_().view(4, 2, 16, 16)
        for q in range(4):
            row, col = divmod(q, 2)
            weight[q, 0, row * 8 : row * 8 + 8, col * 8 : col * 8 + 8] = 25.5 / 64
        weight[0, 1, -3:, -3:] = 40.0
    return nn.Sequential(conv, nn.ReLU(), nn.Flatten(), head)


PATCH = (slice(13, 16), slice(13, 16))  # where backdoored_set's trigger is
#: clean images like the inputs (pasting onto mere noise, any bright region fools)
CLEAN_POOL = backdoored_set(30, seed=1)[0]


@pytest.fixture(scope="module")
def one_torch_thread():
    """PyTorch on one thread while SentiNet's tests run: on small batches on shared cores,
    a second thread mostly waits (25 times slower here)."""
    torch = pytest.importorskip(
        "torch", reason="SentiNet's gradients need PyTorch (pip install torch==2.13.0)"
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def patch_model(one_torch_thread):
    from sifternet.eval.models import TorchClassifier

    return TorchClassifier(patch_module(one_torch_thread), batch_size=7)


@pytest.fixture(scope="module")
def patch_sentinet(patch_model):
    """The clean images' and the non-target triggered images' SentiNet scores on the patch
    model (seed 4), with the detector and those inputs."""
    clean, triggered, _, _ = backdoored_set()
    indices = np.arange(len(clean))
    victims = indices % 4 != 0
    detector = sentinet(patch_model, CLEAN_POOL, seed=4)
    scores = (detector.score(clean, indices), detector.score(triggered[victims], indices[victims]))
    return detector, scores, (clean, indices), (triggered[victims], indices[victims])


def test_the_patch_model_is_the_synthetic_backdoor(patch_model):
    clean, triggered, model, _ = backdoored_set()
    np.testing.assert_array_equal(patch_model.predict(clean), model.predict(clean))
    assert (patch_model.predict(triggered) == 0).all()


def test_grad_cam_of_a_triggered_input_is_the_patch(patch_model):
    _, triggered, _, _ = backdoored_set()
    maps = patch_model.saliency(triggered[:9])
    assert maps.shape == (9, 16, 16) and maps.dtype == np.float32 and (maps >= 0).all()
    want = np.zeros((16, 16), bool)
    want[PATCH] = True
    for saliency in maps:
        np.testing.assert_array_equal(salient_mask(saliency, 0.15), want)
    assert "Grad-CAM on the last Conv2d, layer '0'" in patch_model.saliency_method


def test_grad_cam_of_a_clean_input_is_its_bright_quadrant(patch_model):
    clean, _, _, _ = backdoored_set()
    for b in range(4):  # the brightest 15 % of the pixels: in the bright quadrant
        row, col = divmod(b, 2)
        inside = np.zeros((16, 16), bool)
        inside[row * 8 : row * 8 + 8, col * 8 : col * 8 + 8] = True
        mask = salient_mask(patch_model.saliency(clean[b : b + 1])[0], 0.15)
        assert mask.sum() == 38 and not (mask & ~inside).any()


def test_grad_cam_is_resized_to_the_image(one_torch_thread):
    torch = one_torch_thread
    from sifternet.eval.models import TorchClassifier

    torch.manual_seed(0)
    strided = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, stride=2), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 7 * 7, 3)
    )
    maps = TorchClassifier(strided).saliency(sample("gtsrb", 2)[:, :16, :16], np.array([0, 2]))
    assert maps.shape == (2, 16, 16) and maps.dtype == np.float32 and (maps >= 0).all()


def test_saliency_refuses_bad_classes(patch_model):
    with pytest.raises(ValueError, match=r"saliency: classes: expected 2 integers, got float64 \(2,\)"):
        patch_model.saliency(backdoored_set()[0][:2], np.array([0.0, 1.0]))


def test_saliency_of_an_empty_batch(patch_model):
    assert patch_model.saliency(backdoored_set()[0][:0]).shape == (0, 16, 16)


def test_sentinet_points_of_the_patch_model(patch_model):
    clean, triggered, _, _ = backdoored_set()
    pool = CLEAN_POOL[:12]
    confidence, fooled = sentinet_points(
        patch_model, np.concatenate([clean[:8], triggered[:8]]), pool, pool[0], 0.15
    )
    assert (fooled[8:] == 1).all()  # the pasted patch turns every clean image into class 0
    assert (fooled[:8] < 0.5).all(), fooled
    assert ((confidence > 0.25) & (confidence <= 1)).all()


def test_sentinet_detects_the_patch(patch_sentinet):
    scores = patch_sentinet[1]
    assert roc_auc(*scores) == 1.0, scores
    assert (scores[1] > 0).all()  # above the clean boundary


def test_sentinet_is_deterministic(patch_model, patch_sentinet):
    _, scores, (clean, indices), _ = patch_sentinet
    again = sentinet(patch_model, CLEAN_POOL, seed=4)
    np.testing.assert_array_equal(again.score(clean[:6], indices[:6]), scores[0][:6])


def test_sentinet_scores_do_not_depend_on_the_batch_or_the_indices(patch_sentinet):
    detector, scores, _, (triggered, indices) = patch_sentinet
    parts = [detector.score(triggered[s], indices[s]) for s in (slice(0, 5), slice(5, 6), slice(6, 9))]
    np.testing.assert_array_equal(np.concatenate(parts), scores[1][:9])
    np.testing.assert_array_equal(detector.score(triggered[9:12], indices[9:12] + 100), scores[1][9:12])


def test_sentinet_follows_the_seed(patch_model, patch_sentinet):
    _, scores, (clean, indices), _ = patch_sentinet
    other = sentinet(patch_model, CLEAN_POOL, seed=5)
    assert not np.array_equal(other.score(clean[:6], indices[:6]), scores[0][:6])


def test_sentinet_says_it_needs_gradients(patch_sentinet):
    description = patch_sentinet[0].description
    assert description.startswith("SentiNet (needs gradients: Grad-CAM on the last Conv2d")
    assert "15 clean images" in description and "15 clean inputs" in description


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_sentinet_on_torchscript_falls_back_to_input_gradients(tmp_path, one_torch_thread):
    torch = one_torch_thread
    from sifternet.eval.models import load_torchscript

    clean, triggered, _, _ = backdoored_set()
    pool = CLEAN_POOL
    traced = torch.jit.trace(patch_module(torch), torch.zeros(1, 1, 16, 16))
    torch.jit.save(traced, str(tmp_path / "patch.pt"))
    model = load_torchscript(tmp_path / "patch.pt")
    assert model.saliency_method.startswith("input-gradient saliency")
    mask = salient_mask(model.saliency(triggered[1:2])[0], 0.15)
    assert mask[PATCH].all()  # the patch's gradients (40) beat the quadrant's (0.4)
    detector = sentinet(model, pool, holdout=8, fit=8)
    assert "needs gradients: input-gradient saliency" in detector.description
    victims = np.arange(8) % 4 != 0
    assert (
        roc_auc(detector.score(clean[:8], np.arange(8)), detector.score(triggered[:8][victims], np.arange(6)))
        == 1
    )


@pytest.mark.parametrize(
    "model",
    [CallableClassifier(lambda x: np.zeros(len(x), int)), ProbabilityModel(brightness_votes)],
    ids=["labels-only", "probabilities-only"],
)
def test_sentinet_needs_gradients(model):
    pool = backdoored_set()[3]
    message = rf"sentinet: the model \({type(model).__name__}\) has no saliency.*SentiNet needs gradients"
    with pytest.raises(TypeError, match=message):
        sentinet(model, pool)
    with pytest.raises(TypeError, match=message):
        make_detectors(["teco", "sentinet"], model, pool, seed=0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"holdout": 0}, "sentinet: holdout: expected a positive int, got 0"),
        ({"fit": True}, "sentinet: fit: expected a positive int, got True"),
        ({"bins": 1.5}, "sentinet: bins: expected a positive int, got 1.5"),
        ({"fraction": 0}, r"sentinet: fraction: expected a share in \(0, 1\], got 0"),
        (
            {"pool": np.zeros((1, 16, 16), np.uint8)},
            r"sentinet: pool: expected uint8 images .*P >= 2, got uint8",
        ),
    ],
    ids=["holdout", "fit", "bins", "fraction", "pool"],
)
def test_sentinet_refuses_bad_settings(patch_model, options, message):
    with pytest.raises(ValueError, match=message):
        sentinet(patch_model, **{"pool": backdoored_set()[3], **options})


def test_sentinet_score_refuses_other_shapes(patch_sentinet):
    with pytest.raises(
        ValueError, match=r"sentinet: images of shape \(28, 28\) do not match the pool's \(16, 16\)"
    ):
        patch_sentinet[0].score(sample("mnist", 2), np.arange(2))


def test_make_detectors_builds_all_three_for_a_torch_model(patch_model):
    detectors = make_detectors(["strip", "teco", "sentinet"], patch_model, backdoored_set()[3], seed=0)
    assert [d.name for d in detectors] == ["strip", "teco", "sentinet"]
