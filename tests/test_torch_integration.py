"""sifternet.torch: the transform and the dataset wrapper give the one-shot purify bits."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="the torch extra is not installed (pip install torch==2.13.0 'sifternet[torch]')"
)
Image = pytest.importorskip("PIL.Image", reason="Pillow is not installed")

import sifternet  # noqa: E402
from sifternet import SifterNet, select_seeds  # noqa: E402

with warnings.catch_warnings():  # a torchvision built for another torch warns and is not used
    warnings.simplefilter("ignore")
    import sifternet.torch  # noqa: E402
from sifternet.torch import PurifiedDataset, PurifyTransform, purify_image  # noqa: E402

DATA = Path(sifternet.__file__).parent / "data"
HAS_TORCHVISION_V2 = sifternet.torch.v2 is not None


def load(name: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(DATA / f"{name}_sample.npz") as data:
        return data["images"], data["labels"]


def fitted(name: str) -> SifterNet:
    images, labels = load(name)
    seeds, seed_labels = select_seeds(images, labels, per_class=1, seed=0)
    return SifterNet(steps=300, seed=5).fit(seeds, seed_labels)


@pytest.fixture(scope="module")
def colour() -> tuple[np.ndarray, SifterNet, np.ndarray]:
    images = load("gtsrb")[0][:64]
    purifier = fitted("gtsrb")
    return images, purifier, purifier.purify(images, num_threads=2)


@pytest.fixture(scope="module")
def grey() -> tuple[np.ndarray, SifterNet, np.ndarray]:
    images = load("mnist")[0][:64]
    purifier = fitted("mnist")
    return images, purifier, purifier.purify(images, num_threads=2)


def chw(images: np.ndarray) -> torch.Tensor:
    """(B, H, W[, C]) uint8 -> (B, C, H, W) tensor."""
    batch = images[..., None] if images.ndim == 3 else images
    return torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2)))


@pytest.mark.parametrize("case", ["colour", "grey"])
def test_single_tensor(case, request):
    images, purifier, expected = request.getfixturevalue(case)
    image = chw(images)[9]
    out = PurifyTransform(purifier, index_offset=9)(image)
    assert out.dtype == torch.uint8 and out.shape == image.shape
    np.testing.assert_array_equal(out.numpy(), chw(expected)[9].numpy())


@pytest.mark.parametrize("case", ["colour", "grey"])
def test_batch_tensor(case, request):
    images, purifier, expected = request.getfixturevalue(case)
    batch = PurifyTransform(purifier, index_offset=10)(chw(images)[10:40])
    np.testing.assert_array_equal(batch.numpy(), chw(expected)[10:40].numpy())


NON_CONTIGUOUS = {
    "every-other": lambda t: torch.repeat_interleave(t, 2, dim=0)[::2],
    "channels-last": lambda t: t.contiguous(memory_format=torch.channels_last),
    "transposed": lambda t: t.transpose(-1, -2).contiguous().transpose(-1, -2),
}


@pytest.mark.parametrize("layout", sorted(NON_CONTIGUOUS))
@pytest.mark.parametrize("case", ["colour", "grey"])
def test_non_contiguous_tensor(case, layout, request):
    images, purifier, expected = request.getfixturevalue(case)
    view = NON_CONTIGUOUS[layout](chw(images)[:5])
    assert not view.is_contiguous() or case == "grey" and layout == "channels-last"  # one channel: no reorder
    np.testing.assert_array_equal(purify_image(purifier, view).numpy(), chw(expected)[:5].numpy())


@pytest.mark.parametrize(("case", "mode"), [("colour", "RGB"), ("grey", "L")])
def test_pil_image_in_pil_image_out(case, mode, request):
    images, purifier, expected = request.getfixturevalue(case)
    out = PurifyTransform(purifier, index_offset=3)(Image.fromarray(images[3]))
    assert isinstance(out, Image.Image) and out.mode == mode
    np.testing.assert_array_equal(np.asarray(out), expected[3])


def test_transform_works_in_a_plain_compose(colour):
    images, purifier, expected = colour

    def compose(*steps):
        def run(x):
            for step in steps:
                x = step(x)
            return x

        return run

    pipeline = compose(PurifyTransform(purifier, index_offset=1), lambda t: t.float() / 255)
    out = pipeline(chw(images)[1])
    assert out.dtype == torch.float32
    np.testing.assert_array_equal((out * 255).round().to(torch.uint8).numpy(), chw(expected)[1].numpy())


def test_transform_repr_names_its_settings(colour):
    assert repr(PurifyTransform(colour[1])) == "PurifyTransform(index_offset=0, num_threads=1)"


BAD_IMAGES = [
    (
        lambda im: chw(im)[0].float() / 255,
        TypeError,
        r"image: expected a uint8 tensor \(0-255, as PILToTensor makes\), got torch.float32; "
        r"put PurifyTransform before ToTensor",
    ),
    (
        lambda im: torch.from_numpy(im[0]),
        ValueError,  # HWC, not CHW
        r"image: expected a uint8 tensor \(C, H, W\) = \(3, 32, 32\) or a batch \(B, 3, 32, 32\), "
        r"got shape \(32, 32, 3\)",
    ),
    (lambda im: chw(im)[None, :2], ValueError, r"or a batch \(B, 3, 32, 32\), got shape \(1, 2, 3, 32, 32\)"),
    (lambda im: im[0], TypeError, "image: expected a torch.Tensor or a PIL image, got ndarray"),
    (
        lambda im: Image.fromarray(im[0, ..., 0]),
        ValueError,
        "image: expected a 32x32 PIL image of mode 'RGB' for this purifier, got 32x32 mode 'L'",
    ),
]


@pytest.mark.parametrize(
    ("make", "error", "message"), BAD_IMAGES, ids=["float", "channels-last", "5-d", "ndarray", "grey-pil"]
)
def test_bad_images_are_refused(colour, make, error, message):
    images, purifier, _ = colour
    with pytest.raises(error, match=message):
        PurifyTransform(purifier)(make(images))


def test_a_pil_image_of_another_size_is_refused(colour, grey):
    images = colour[0]
    with pytest.raises(
        ValueError, match="image: expected a 28x28 PIL image of mode 'L' for this purifier, got 32x32"
    ):
        PurifyTransform(grey[1])(Image.fromarray(images[0, ..., 0]))


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"index_offset": -1}, ValueError, "index_offset: expected a non-negative int, got -1"),
        ({"index_offset": True}, ValueError, "index_offset: expected a non-negative int, got True"),
        ({"num_threads": 0}, ValueError, "num_threads: expected a positive count, -1 or None, got 0"),
    ],
    ids=["negative-offset", "bool-offset", "threads"],
)
def test_bad_transform_settings_are_refused(colour, options, error, message):
    with pytest.raises(error, match=message):
        PurifyTransform(colour[1], **options)


def test_an_unfitted_purifier_is_refused():
    with pytest.raises(RuntimeError, match=r"not fitted yet: call fit\(seed_images\)"):
        PurifyTransform(SifterNet())


def test_a_dataset_refuses_something_else_than_a_purifier(colour):
    with pytest.raises(TypeError, match="expected a fitted SifterNet or NearestSeedRepair, got str"):
        PurifiedDataset(Pairs(colour[0]), "model.npz")


class Pairs(torch.utils.data.Dataset):
    """(CHW uint8 tensor, index) items, like a torchvision dataset with PILToTensor."""

    def __init__(self, images: np.ndarray) -> None:
        self.images = chw(images)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return self.images[index], index


@pytest.mark.parametrize("index", [0, 17, 63, -1])
@pytest.mark.parametrize("case", ["colour", "grey"])
def test_dataset_keys_items_by_index(case, index, request):
    images, purifier, expected = request.getfixturevalue(case)
    image, label = PurifiedDataset(Pairs(images), purifier)[index]
    np.testing.assert_array_equal(image.numpy(), chw(expected)[index].numpy())
    assert label == index % len(images)


def test_dataset_has_the_wrapped_length(colour):
    assert len(PurifiedDataset(Pairs(colour[0]), colour[1])) == len(colour[0])


def test_dataset_index_out_of_range(colour):
    with pytest.raises(IndexError, match="index 64 is out of range for a dataset of 64 items"):
        PurifiedDataset(Pairs(colour[0]), colour[1])[64]


@pytest.mark.parametrize("case", ["colour", "grey"])
def test_dataset_of_bare_tensors_applies_the_transform_after_purifying(case, request):
    images, purifier, expected = request.getfixturevalue(case)
    bare = PurifiedDataset(chw(images), purifier, transform=lambda t: t.flip(-1))
    np.testing.assert_array_equal(bare[5].numpy(), chw(expected)[5].flip(-1).numpy())


def test_dataloader_workers_match_one_shot(colour):
    # the fixture ran a 2-thread kernel call in this process before the workers fork
    images, purifier, expected = colour
    loader = torch.utils.data.DataLoader(
        PurifiedDataset(Pairs(images), purifier),
        batch_size=5,
        shuffle=True,
        num_workers=2,
        generator=torch.Generator().manual_seed(0),
        timeout=60,
    )
    batches = list(loader)
    indices = torch.cat([index for _, index in batches]).numpy()
    assert sorted(indices) != list(indices) and sorted(indices) == list(range(len(images)))
    purified = torch.cat([batch for batch, _ in batches]).numpy()
    np.testing.assert_array_equal(purified, chw(expected)[indices].numpy())


@pytest.mark.skipif(
    not HAS_TORCHVISION_V2,
    reason="torchvision is absent or built for another torch (PyPI's 0.28.0 needs CUDA torch)",
)
def test_torchvision_v2_transform(colour):
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    images, purifier, expected = colour
    transform = PurifyTransform(purifier, index_offset=2)
    assert isinstance(transform, v2.Transform)
    image = tv_tensors.Image(chw(images)[2])
    boxes = tv_tensors.BoundingBoxes([[0, 0, 4, 4]], format="XYXY", canvas_size=(32, 32))
    out, out_boxes, label = v2.Compose([transform])(image, boxes, 7)
    assert isinstance(out, tv_tensors.Image) and label == 7
    np.testing.assert_array_equal(out.numpy(), chw(expected)[2].numpy())
    assert out_boxes is boxes


def test_a_nearest_seed_repair_transforms_too(colour):
    images = colour[0]
    nearest = sifternet.NearestSeedRepair().fit(images[::4])
    batch = PurifyTransform(nearest)(chw(images))
    np.testing.assert_array_equal(batch.numpy(), chw(nearest.purify(images)).numpy())
