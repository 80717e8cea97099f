"""sifternet.art: the ART preprocessor converts both ways and gives the one-shot bits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("art", reason="the art extra is not installed (pip install 'sifternet[art]')")
torch = pytest.importorskip(
    "torch", reason="the ART classifier test wraps a PyTorch model (pip install torch==2.13.0)"
)

from art.estimators.classification import PyTorchClassifier  # noqa: E402

import sifternet  # noqa: E402
from sifternet import SifterNet, select_seeds  # noqa: E402
from sifternet.art import SifterNetPreprocessor  # noqa: E402

DATA = Path(sifternet.__file__).parent / "data"


def fitted(name: str) -> tuple[np.ndarray, SifterNet]:
    with np.load(DATA / f"{name}_sample.npz") as data:
        images, labels = data["images"][:40], data["labels"]
        seeds, seed_labels = select_seeds(data["images"], labels, per_class=1, seed=0)
    return images, SifterNet(steps=300, seed=7).fit(seeds, seed_labels)


@pytest.fixture(scope="module")
def colour() -> tuple[np.ndarray, SifterNet, np.ndarray]:
    images, purifier = fitted("gtsrb")
    return images, purifier, purifier.purify(images)


@pytest.fixture(scope="module")
def grey() -> tuple[np.ndarray, SifterNet, np.ndarray]:
    images, purifier = fitted("mnist")
    return images, purifier, purifier.purify(images)


def as_input(pixels: np.ndarray, *, low: float, high: float, channels_first: bool, dtype=np.float32):
    """uint8 (B, H, W[, C]) -> an estimator's input in [low, high]."""
    batch = pixels[..., None] if pixels.ndim == 3 else pixels
    batch = np.moveaxis(batch, -1, 1) if channels_first else batch
    return (low + batch.astype(np.float64) * ((high - low) / 255)).astype(dtype)


@pytest.mark.parametrize("channels_first", [True, False])
@pytest.mark.parametrize(("low", "high"), [(0.0, 1.0), (0.0, 255.0), (-1.0, 1.0)])
@pytest.mark.parametrize("case", ["colour", "grey"])
def test_conversion_both_ways(case, channels_first, low, high, request):
    images, purifier, expected = request.getfixturevalue(case)
    pre = SifterNetPreprocessor(purifier, clip_values=(low, high), channels_first=channels_first)
    x = as_input(images, low=low, high=high, channels_first=channels_first)
    y = np.arange(len(x))
    out, y_out = pre(x, y)
    assert y_out is y and out.shape == x.shape and out.dtype == np.float32
    np.testing.assert_array_equal(out, as_input(expected, low=low, high=high, channels_first=channels_first))


def test_grey_without_channel_axis(grey):
    images, purifier, expected = grey
    out, _ = SifterNetPreprocessor(purifier)(images / np.float64(255))
    assert out.shape == images.shape and out.dtype == np.float64
    np.testing.assert_array_equal(out * 255, expected)


def test_integer_input_keeps_its_dtype(colour):
    images, purifier, expected = colour
    out, _ = SifterNetPreprocessor(purifier, clip_values=(0, 255))(images)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)


def with_nan(x: np.ndarray) -> np.ndarray:
    bad = x.copy()
    bad[0, 0, 0, 0] = np.nan
    return bad


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (
            lambda x: np.moveaxis(x, 1, -1),
            ValueError,
            r"x: expected a batch \(B, 3, 32, 32\), got shape \(40, 32, 32, 3\)",
        ),
        (
            lambda x: x * 255,
            ValueError,
            r"x: expected finite values in clip_values \[0.0, 1.0\], found \[\d.*, 255.0\]",
        ),
        (with_nan, ValueError, r"x: expected finite values in clip_values \[0.0, 1.0\], found"),
        (torch.from_numpy, TypeError, "x: expected a real-valued numpy array, got Tensor"),
        (lambda x: x.astype(np.complex64), TypeError, "x: expected a real-valued numpy array, got complex64"),
    ],
    ids=["channels-last", "out-of-range", "nan", "tensor", "complex"],
)
def test_bad_input_is_refused(colour, change, error, message):
    images, purifier, _ = colour
    pre = SifterNetPreprocessor(purifier, channels_first=True)
    with pytest.raises(error, match=message):
        pre(change(as_input(images, low=0, high=1, channels_first=True)))


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"clip_values": (1, 0)}, ValueError, r"clip_values: expected finite min < max, got \(1, 0\)"),
        ({"clip_values": (0, np.inf)}, ValueError, r"clip_values: expected finite min < max, got \(0, inf\)"),
        (
            {"clip_values": (0, 1, 2)},
            ValueError,
            r"clip_values: expected two numbers \(min, max\), got \(0, 1, 2\)",
        ),
        ({"channels_first": 1}, TypeError, "channels_first: expected a bool, got int"),
    ],
    ids=["reversed", "infinite", "three", "channels-first-int"],
)
def test_bad_settings_are_refused(colour, options, error, message):
    with pytest.raises(error, match=message):
        SifterNetPreprocessor(colour[1], **options)


def test_an_unfitted_purifier_is_refused():
    with pytest.raises(RuntimeError, match=r"not fitted yet: call fit\(seed_images\)"):
        SifterNetPreprocessor(SifterNet())


def test_something_else_than_a_purifier_is_refused():
    with pytest.raises(TypeError, match="expected a fitted SifterNet or NearestSeedRepair, got str"):
        SifterNetPreprocessor("model.npz")


def test_repr_names_the_settings(colour):
    pre = SifterNetPreprocessor(colour[1], channels_first=True)
    assert repr(pre).startswith("SifterNetPreprocessor(clip_values=(0.0, 1.0), channels_first=True")


@pytest.fixture(scope="module")
def classifier(colour):
    _, purifier, _ = colour
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 30 * 30, 5)
    )

    def wrap(**defences):
        """ART's classifier of ``model`` (shared weights), with ``defences`` if any."""
        return PyTorchClassifier(
            model,
            loss=torch.nn.CrossEntropyLoss(),
            input_shape=(3, 32, 32),
            nb_classes=5,
            clip_values=(0.0, 1.0),
            channels_first=True,
            **defences,
        )

    defended = wrap(preprocessing_defences=[SifterNetPreprocessor(purifier, channels_first=True)])
    return model, defended, wrap()


def test_pytorch_classifier_predicts_on_purified_input(colour, classifier):
    images, _, expected = colour
    model, defended, _ = classifier
    x = as_input(images, low=0, high=1, channels_first=True)
    with torch.no_grad():
        direct = model(torch.from_numpy(as_input(expected, low=0, high=1, channels_first=True))).numpy()
        raw = model(torch.from_numpy(x)).numpy()
    predicted = defended.predict(x, batch_size=16)
    np.testing.assert_allclose(predicted, direct, rtol=1e-5, atol=1e-5)
    assert not np.allclose(predicted, raw, atol=1e-3)  # the defence did change the input


def test_gradient_is_the_identity_bpda(colour, classifier):
    images, _, expected = colour
    _, defended, bare = classifier
    x = as_input(images[:8], low=0, high=1, channels_first=True)
    y = np.eye(5, dtype=np.float32)[np.arange(8) % 5]
    purified = as_input(expected[:8], low=0, high=1, channels_first=True)
    np.testing.assert_allclose(
        defended.loss_gradient(x, y), bare.loss_gradient(purified, y), rtol=1e-5, atol=1e-7
    )


def test_a_nearest_seed_repair_preprocesses_too(colour):
    images = colour[0]
    nearest = sifternet.NearestSeedRepair().fit(images[::4])
    out, _ = SifterNetPreprocessor(nearest, clip_values=(0, 255))(images)
    np.testing.assert_array_equal(out, nearest.purify(images))
