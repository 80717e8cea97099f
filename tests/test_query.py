"""Query mode: a synthetic model that keys on one pixel region has exactly that region
confirmed (by the default repair's window, a memory window or the search), clean images
cost the first round only, results do not depend on batching, the budget holds, and bad
models and options are refused."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from sifternet import NearestSeedRepair, SifterNet
from sifternet.query import STAGES, QueryRepair, densest_windows, halves

SIZE = 16
LEVELS = (40, 128, 215)  # the clean classes 1, 2, 3: dark, mid and bright images
TRIGGER = (slice(6, 9), slice(9, 12))  # rows 6-8, columns 9-11


def images_of(levels: list[int], seed: int, channels: int = 0) -> np.ndarray:
    """Flat images at ``levels`` with +-6 of noise ((B, 16, 16) or (B, 16, 16, channels))."""
    rng = np.random.default_rng(seed)
    shape = (len(levels), SIZE, SIZE) + ((channels,) if channels else ())
    noise = rng.integers(-6, 7, shape)
    return np.clip(np.reshape(levels, (-1,) + (1,) * (len(shape) - 1)) + noise, 0, 255).astype(np.uint8)


class KeyedModel:
    """Label 0 when the trigger region is bright (>= 200 in every pixel) on a darker
    surround (its one-pixel ring averages below 170); else the class of the image's mean
    (1 dark, 2 mid, 3 bright). Counts its calls and checks the shape it is given."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape, self.calls = shape, 0

    def __call__(self, images: np.ndarray) -> np.ndarray:
        assert images.shape[1:] == self.shape
        self.calls += 1
        grey = images if images.ndim == 3 else images.mean(axis=-1)
        region = grey[:, TRIGGER[0], TRIGGER[1]]
        ring = grey[:, 5:10, 8:13].sum(axis=(1, 2)) - region.sum(axis=(1, 2))
        keyed = (region.min(axis=(1, 2)) >= 200) & (ring / 16 < 170)
        classes = 1 + np.digitize(grey.mean(axis=(1, 2)), [85, 170])
        return np.where(keyed, 0, classes)


def triggered(images: np.ndarray, value: int) -> np.ndarray:
    out = images.copy()
    out[:, TRIGGER[0], TRIGGER[1]] = value
    return out


def fitted(channels: int = 0) -> tuple[NearestSeedRepair, KeyedModel]:
    seeds = images_of([level for level in LEVELS for _ in range(6)], seed=1, channels=channels)
    repair = SifterNet.repairing().fit(seeds)
    return repair, KeyedModel(repair.image_shape)


def region_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(mask)
    return rows.min(), rows.max(), cols.min(), cols.max()


@pytest.mark.parametrize("channels", [0, 3])
@pytest.mark.parametrize("value", [255, 215])
def test_a_model_keyed_on_one_region_has_exactly_that_region_confirmed(channels, value):
    repair, model = fitted(channels)
    query = QueryRepair(model, repair, patch_size=3)
    images = triggered(images_of([40, 128, 40, 128], seed=2, channels=channels), value)
    assert (model(images) == 0).all()  # the trigger works on every image
    done = query.purify_queried(images)
    assert (model(done.images) != 0).all()
    for mask, stage in zip(done.regions, done.found_by):
        assert STAGES[stage] != "nothing"
        top, bottom, left, right = region_box(mask)
        assert mask[TRIGGER].all()  # the whole trigger ...
        assert bottom - top < 3 + 4 and right - left < 3 + 4  # ... and not much more
    assert (done.queries <= query.budget).all()


def test_the_search_finds_a_trigger_the_memories_do_not_propose():
    repair, model = fitted()
    query = QueryRepair(model, repair, patch_size=3, candidates=0)
    images = triggered(images_of([40, 128], seed=3), 215)  # a level the seeds hold
    done = query.purify_queried(images)
    assert (model(done.images) != 0).all()
    assert {STAGES[s] for s in done.found_by} <= {"default repair", "search"}
    assert all(mask[TRIGGER].all() for mask in done.regions)


def test_clean_images_pass_with_the_first_round_only():
    repair, model = fitted()
    query = QueryRepair(model, repair, patch_size=3)
    clean = images_of([40, 128, 215] * 4, seed=4)
    done = query.purify_queried(clean)
    assert not done.regions.any() and (done.found_by == 0).all()
    np.testing.assert_array_equal(done.images, repair.purify(clean))
    # the image and its repair, each memory window filled once, the search's first four boxes
    change = np.abs(query.proposer.purify(clean).astype(int) - clean)
    windows = [len(densest_windows(c, 3 + 2, query.candidates)) for c in change]
    np.testing.assert_array_equal(done.queries, 2 + np.array(windows) + len(halves((0, 0, SIZE, SIZE), 3)))


def test_results_do_not_depend_on_the_batch():
    repair, model = fitted(3)
    query = QueryRepair(model, repair, patch_size=3, batch_size=5)
    images = np.concatenate(
        [images_of([40, 128, 215], seed=5, channels=3), triggered(images_of([40, 128], 6, 3), 255)]
    )
    whole = query.purify_queried(images)
    parts = [query.purify_queried(images[i : i + 1]) for i in range(len(images))]
    np.testing.assert_array_equal(whole.images, np.concatenate([p.images for p in parts]))
    np.testing.assert_array_equal(whole.queries, np.concatenate([p.queries for p in parts]))
    np.testing.assert_array_equal(whole.regions, np.concatenate([p.regions for p in parts]))
    np.testing.assert_array_equal(query.purify(images[0]), whole.images[0])  # one image in, one out


def test_the_budget_bounds_every_image():
    repair, model = fitted()
    tight = QueryRepair(model, repair, patch_size=3, budget=4)
    done = tight.purify_queried(triggered(images_of([40, 128, 215], seed=7), 255))
    assert (done.queries <= 4).all()


class DarkOnlyModel(KeyedModel):
    """:class:`KeyedModel` whose trigger works on dark images only: pasted onto carriers
    of other classes it carries nothing, as a per-image trigger would not."""

    def __call__(self, images: np.ndarray) -> np.ndarray:
        labels = super().__call__(images)
        dark = images.reshape(len(images), -1).mean(axis=1) < 85
        return np.where((labels == 0) & ~dark, 3, labels)


@pytest.mark.parametrize("unconfirmed", ["keep", "undo"])
def test_an_unconfirmed_default_repair_is_kept_or_undone(unconfirmed):
    repair, _ = fitted()
    model = DarkOnlyModel(repair.image_shape)
    query = QueryRepair(model, repair, patch_size=3, unconfirmed=unconfirmed)
    images = triggered(images_of([40, 40], seed=9), 255)
    assert (model(images) == 0).all() and (model(repair.purify(images)) != 0).all()
    done = query.purify_queried(images)
    assert not done.regions.any() and (done.found_by == 0).all()  # nothing confirmed
    if unconfirmed == "keep":  # the default's repair, and no more queries after its check
        np.testing.assert_array_equal(done.images, repair.purify(images))
        np.testing.assert_array_equal(done.queries, 2 + query.carriers)
    else:  # the input as it came: the trigger still works
        np.testing.assert_array_equal(done.images, images)
        assert (model(done.images) == 0).all()


def test_densest_windows_skip_empty_and_overlapping_windows():
    change = np.zeros((10, 10), int)
    change[1, 1] = change[8, 8] = 5
    change[2, 2] = 1
    assert densest_windows(change, 3, 5) == [(0, 0, 3, 3), (6, 6, 9, 9)]


@pytest.mark.parametrize("size, bound", [(16, 3), (28, 5), (32, 5), (9, 1)])
def test_halves_cover_every_square_within_the_bound(size, bound):
    boxes = halves((0, 0, size, size), bound)
    for top in range(size - bound + 1):
        for left in range(size - bound + 1):
            assert any(
                y0 <= top and top + bound <= y1 and x0 <= left and left + bound <= x1
                for y0, x0, y1, x1 in boxes
            )


@pytest.mark.parametrize(
    "answer, message",
    [
        (lambda images: np.zeros(len(images) + 1, int), "one integer label per image"),
        (lambda images: np.zeros(len(images)), "got float64"),
        (lambda images: None, "got object"),
    ],
)
def test_a_model_that_does_not_answer_with_labels_is_refused(answer, message):
    repair, _ = fitted()
    with pytest.raises(ValueError, match=message):
        QueryRepair(answer, repair).purify(images_of([40], seed=8))


def test_bad_arguments_are_refused():
    repair, model = fitted()
    with pytest.raises(TypeError, match="callable"):
        QueryRepair(np.zeros(3), repair)
    with pytest.raises(TypeError, match="NearestSeedRepair"):
        QueryRepair(model, SifterNet())
    with pytest.raises(RuntimeError, match="not fitted"):
        QueryRepair(model, NearestSeedRepair())
    with pytest.raises(ValueError, match="patch_size"):
        QueryRepair(model, repair, patch_size=SIZE)
    with pytest.raises(ValueError, match="agreement"):
        QueryRepair(model, repair, carriers=2, agreement=3)
    with pytest.raises(ValueError, match="unconfirmed: expected one of"):
        QueryRepair(model, repair, unconfirmed="drop")
    with pytest.raises(ValueError, match="images"):
        QueryRepair(model, repair).purify(np.zeros((2, 8, 8), np.uint8))


def keyed_torchscript(path) -> None:
    """:class:`KeyedModel` as a TorchScript module (float (B, C, H, W) in [0, 1] -> logits)."""
    torch = pytest.importorskip("torch")

    class Keyed(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            grey = x.mean(dim=1) * 255.0
            region = grey[:, 6:9, 9:12]
            ring = grey[:, 5:10, 8:13].sum(dim=(1, 2)) - region.sum(dim=(1, 2))
            keyed = (region.amin(dim=(1, 2)) >= 200) & (ring / 16 < 170)
            mean = grey.mean(dim=(1, 2))
            classes = 1 + (mean >= 85).long() + (mean >= 170).long()
            label = torch.where(keyed, torch.zeros_like(classes), classes)
            return torch.nn.functional.one_hot(label, 4).float()

    with warnings.catch_warnings():  # TorchScript's deprecation notice (the format under test)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.trace(Keyed(), torch.zeros(1, 1, SIZE, SIZE)), str(path))


def test_cli_purifies_in_query_mode_with_a_torchscript_model(tmp_path, capsys):
    from sifternet.cli import main

    keyed_torchscript(tmp_path / "model.pt")
    seeds = images_of([level for level in LEVELS for _ in range(6)], seed=1)
    np.savez(tmp_path / "seeds.npz", images=seeds, labels=np.repeat([1, 2, 3], 6))
    model = tmp_path / "repair.npz"
    fit = [
        "fit",
        str(tmp_path / "seeds.npz"),
        "--out",
        str(model),
        "--repair",
        "agnostic",
        "--per-class",
        "6",
    ]
    assert main(fit) == 0
    images = np.concatenate([images_of([40, 128], seed=9), triggered(images_of([40, 128], seed=10), 255)])
    np.save(tmp_path / "in.npy", images)
    out = tmp_path / "out.npy"
    query = ["--query-model", str(tmp_path / "model.pt"), "--patch-size", "3"]
    assert main(["purify", str(model), str(tmp_path / "in.npy"), str(out), *query]) == 0
    assert "model queries per image: mean" in capsys.readouterr().out
    purified = np.load(out)
    assert (KeyedModel(images.shape[1:])(purified) != 0).all()
    np.testing.assert_array_equal(purified[:2], NearestSeedRepair.load(model).purify(images[:2]))


def test_cli_refuses_query_mode_without_a_usable_model(tmp_path, capsys):
    from sifternet.cli import main

    pytest.importorskip("torch")
    seeds = images_of([level for level in LEVELS for _ in range(2)], seed=1)
    np.savez(tmp_path / "seeds.npz", images=seeds, labels=np.repeat([1, 2, 3], 2))
    np.save(tmp_path / "in.npy", seeds)
    paper, repair = tmp_path / "paper.npz", tmp_path / "repair.npz"
    assert main(["fit", str(tmp_path / "seeds.npz"), "--out", str(paper), "--per-class", "2"]) == 0
    assert main(["fit", str(tmp_path / "seeds.npz"), "--out", str(repair), "--repair", "agnostic"]) == 0
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    cases = [
        (paper, tmp_path / "junk.pt", "holds a SifterNet in the paper's mode"),
        (repair, tmp_path / "missing.pt", "expected a TorchScript model file"),
        (repair, tmp_path / "junk.pt", "expected a TorchScript model, got"),
    ]
    for fitted_model, query_model, message in cases:
        out = tmp_path / "out.npy"
        argv = [
            "purify",
            str(fitted_model),
            str(tmp_path / "in.npy"),
            str(out),
            "--query-model",
            str(query_model),
        ]
        assert main(argv) != 0
        assert message in capsys.readouterr().err
        assert not out.exists()
