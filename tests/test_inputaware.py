"""Input-Aware dynamic backdoor (sifternet.eval.inputaware): per-image triggers, determinism,
the cache, argument checks. Small synthetic images, one or two epochs."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed (optional extra 'eval')")

from sifternet.eval import inputaware as ia  # noqa: E402

FAST = dict(epochs=1, mask_epochs=1, batch_size=16, num_threads=1, progress=False)


def stripes(count=96, size=16, channels=None, seed=0):
    """Two classes: bright rows in the top half (class 0) or the bottom half (class 1), noise."""
    rng = np.random.default_rng(seed)
    shape = (count, size, size) + ((channels,) if channels else ())
    images = rng.integers(0, 60, shape)
    labels = np.arange(count) % 2
    half = size // 2
    images[labels == 0, :half] += 150
    images[labels == 1, half:] += 150
    return images.astype(np.uint8), labels


def weights(backdoor):
    return {
        f"{name}.{key}": value.clone()
        for name, module in (
            ("classifier", backdoor.model.module),
            ("generator", backdoor.generator),
            ("mask", backdoor.mask_net),
        )
        for key, value in module.state_dict().items()
    }


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def data():
    return stripes()


@pytest.fixture(scope="module")
def trained(data):
    return ia.train_input_aware(*data, seed=0, **FAST)


def test_training_gives_a_classifier_and_stats(data, trained):
    images, labels = data
    stats = trained.stats
    assert stats.n_train + stats.n_holdout == len(images)
    assert stats.n_holdout == round(0.2 * len(images))
    assert sorted(np.concatenate([trained.train_index, trained.holdout_index])) == list(range(len(images)))
    for value in (stats.clean_accuracy, stats.attack_success_rate, stats.cross_trigger_accuracy):
        assert 0.0 <= value <= 1.0
    assert 0.0 < stats.mask_density < 1.0
    assert trained.model.predict(images).shape == (len(images),)
    assert not trained.from_cache


def test_two_different_images_get_different_patterns_and_masks(data, trained):
    images = data[0][:2]
    assert not np.array_equal(images[0], images[1])
    patterns, masks = trained.triggers(images)
    assert patterns.shape == images.shape and masks.shape == images.shape
    assert patterns.dtype == masks.dtype == np.float32
    assert 0.0 <= patterns.min() and patterns.max() <= 1.0 and 0.0 <= masks.min() and masks.max() <= 1.0
    assert np.abs(patterns[0] - patterns[1]).max() > 0
    assert np.abs(masks[0] - masks[1]).max() > 0


def test_the_same_image_gets_the_same_trigger(data, trained):
    image = data[0][:1]
    patterns, masks = trained.triggers(np.concatenate([image, image]))
    np.testing.assert_array_equal(patterns[0], patterns[1])
    np.testing.assert_array_equal(masks[0], masks[1])


def test_apply_is_deterministic_and_independent_of_batch_splits(trained):
    images = stripes(ia.APPLY_CHUNK + 9, seed=5)[0]  # more than one chunk
    whole = trained.apply(images)
    assert whole.dtype == np.uint8 and whole.shape == images.shape
    np.testing.assert_array_equal(trained.apply(images), whole)
    for split in (1, 7, ia.APPLY_CHUNK, ia.APPLY_CHUNK + 1):
        parts = np.concatenate([trained.apply(images[:split]), trained.apply(images[split:])])
        np.testing.assert_array_equal(parts, whole)
    for i in (0, 3, ia.APPLY_CHUNK + 8):
        np.testing.assert_array_equal(trained.apply(images[i : i + 1])[0], whole[i])
    assert trained.apply(images[:0]).shape == (0,) + images.shape[1:]


def test_apply_blends_the_pattern_through_the_mask(data, trained):
    images = data[0][:4]
    patterns, masks = trained.triggers(images)
    expected = images / 255.0 + (patterns - images / 255.0) * masks
    np.testing.assert_allclose(trained.apply(images) / 255.0, expected, atol=0.51 / 255 + 1e-6)
    assert not np.array_equal(trained.apply(images), images)
    np.testing.assert_array_equal(images, data[0][:4])  # input untouched


def test_cross_trigger_uses_the_other_images_trigger(data, trained):
    images = data[0][:6]
    others = images[::-1].copy()
    np.testing.assert_array_equal(trained.apply(images, trigger_from=images), trained.apply(images))
    crossed = trained.apply(images, trigger_from=others)
    patterns, masks = trained.triggers(others)
    expected = images / 255.0 + (patterns - images / 255.0) * masks
    np.testing.assert_allclose(crossed / 255.0, expected, atol=0.51 / 255 + 1e-6)


def test_colour_images(trained):
    images, labels = stripes(48, size=8, channels=3, seed=2)
    backdoor = ia.train_input_aware(images, labels, target=1, seed=0, **FAST)
    patterns, masks = backdoor.triggers(images[:3])
    assert patterns.shape == (3, 8, 8, 3) and masks.shape == (3, 8, 8)
    assert backdoor.apply(images).shape == images.shape
    assert backdoor.target == 1


def test_the_same_seed_gives_the_same_networks_and_triggers(data, trained):
    again = ia.train_input_aware(*data, seed=0, **FAST)
    assert same_weights(weights(again), weights(trained))
    np.testing.assert_array_equal(again.apply(data[0]), trained.apply(data[0]))
    assert again.stats == trained.stats
    other = ia.train_input_aware(*data, seed=1, **FAST)
    assert not same_weights(weights(other), weights(trained))


def test_training_restores_torch_settings(data):
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    ia.train_input_aware(*data, seed=0, **FAST)
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == deterministic


def test_the_cache_is_reused_without_training(data, trained, tmp_path, monkeypatch):
    cache = tmp_path / "input-aware.pt"
    first = ia.train_input_aware(*data, seed=0, cache=cache, **FAST)
    assert cache.exists() and not first.from_cache
    written = cache.read_bytes()

    def no_training(*args, **kwargs):
        raise AssertionError("trained again although the cache matches")

    monkeypatch.setattr(ia, "_fit", no_training)
    second = ia.train_input_aware(*data, seed=0, cache=cache, **FAST)
    assert second.from_cache
    assert same_weights(weights(second), weights(first))
    assert second.stats == first.stats
    np.testing.assert_array_equal(second.holdout_index, first.holdout_index)
    np.testing.assert_array_equal(second.apply(data[0]), first.apply(data[0]))
    assert cache.read_bytes() == written


def test_a_cache_of_other_settings_is_refused_and_kept(data, tmp_path):
    cache = tmp_path / "input-aware.pt"
    ia.train_input_aware(*data, seed=0, cache=cache, **FAST)
    written = cache.read_bytes()
    with pytest.raises(ValueError, match="other data or settings"):
        ia.train_input_aware(*data, seed=0, cache=cache, **{**FAST, "mask_epochs": 2})
    with pytest.raises(ValueError, match="other data or settings"):
        ia.train_input_aware(data[0][::-1].copy(), data[1], seed=0, cache=cache, **FAST)
    assert cache.read_bytes() == written


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (
            dict(images=np.zeros((8, 16, 16), np.float32)),
            TypeError,
            "images: expected dtype uint8, got float32",
        ),
        (
            dict(images=np.zeros((8, 256), np.uint8)),
            ValueError,
            r"images: expected shape \(B, H, W\) or \(B, H, W, C\), got 2-D shape",
        ),
        (dict(images=np.zeros((8, 3, 3), np.uint8)), ValueError, "at least 4 x 4"),
        (
            dict(images=np.zeros((1, 8, 8), np.uint8), labels=[0]),
            ValueError,
            r"expected at least 2 images \(to train on and to hold out\), got 1",
        ),
        (dict(holdout=np.float32(0.5)), None, None),
        (dict(labels=np.zeros(7, np.int64)), ValueError, "labels: expected one label per image"),
        (dict(labels=np.full(8, -1)), ValueError, "labels: expected non-negative integers"),
        (dict(labels=np.full(8, 0.5)), ValueError, "labels: expected non-negative integers"),
        (dict(target=2), ValueError, r"target: expected a class in 0 \.\. 1, got 2"),
        (dict(target=-1), ValueError, "target: expected an integer >= 0"),
        (dict(target=True), TypeError, "target: expected an integer, got bool"),
        (dict(n_classes=1), ValueError, "n_classes"),
        (dict(epochs=0), ValueError, "epochs: expected an integer >= 1, got 0"),
        (dict(epochs=1.5), TypeError, "epochs: expected an integer, got float"),
        (dict(mask_epochs=-1), ValueError, "mask_epochs: expected an integer >= 0"),
        (dict(rho_b=0.0), ValueError, r"rho_b: expected a number in \(0"),
        (dict(rho_c=1.5), ValueError, "rho_c: expected a number in"),
        (dict(rho_b=0.6, rho_c=0.6), ValueError, "rho_b \\+ rho_c: expected at most 1"),
        (dict(holdout=1.0), ValueError, "holdout"),
        (dict(holdout=0.01), ValueError, "holdout: expected a share leaving at least one image"),
        (dict(mask_density=float("nan")), ValueError, "mask_density: expected a number"),
        (dict(batch_size=0), ValueError, "batch_size: expected an integer >= 1"),
        (dict(learning_rate=0.0), ValueError, "learning_rate"),
        (dict(num_threads=0), ValueError, "num_threads"),
    ],
)
def test_bad_arguments_are_refused(change, error, message):
    images, labels = stripes(8)
    arguments = dict(images=images, labels=labels, **FAST)
    arguments.update(change)
    if error is None:  # accepted (numpy numbers are numbers)
        ia.train_input_aware(arguments.pop("images"), arguments.pop("labels"), **arguments)
        return
    with pytest.raises(error, match=message):
        ia.train_input_aware(arguments.pop("images"), arguments.pop("labels"), **arguments)


def test_apply_refuses_other_images(trained):
    with pytest.raises(TypeError, match="images: expected dtype uint8, got float32"):
        trained.apply(np.zeros((2, 16, 16), np.float32))
    with pytest.raises(ValueError, match=r"images: expected a batch of shape \(B, 16, 16\)"):
        trained.apply(np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(ValueError, match=r"expected a batch of shape \(B, 16, 16\), got \(2, 16, 16, 1\)"):
        trained.triggers(np.zeros((2, 16, 16, 1), np.uint8))
    with pytest.raises(ValueError, match="trigger_from: expected as many images as images"):
        trained.apply(np.zeros((2, 16, 16), np.uint8), trigger_from=np.zeros((3, 16, 16), np.uint8))


# -- as an attack of evaluate and the report ---------------------------------------------
def sample_file(tmp_path, count=200):
    """A data file of the shipped MNIST sample's first ``count`` images."""
    from importlib.resources import files

    with np.load(files("sifternet") / "data" / "mnist_sample.npz") as sample:
        path = tmp_path / "mnist.npz"
        np.savez(path, images=sample["images"][:count], labels=sample["labels"][:count])
    return path


def test_evaluate_trains_input_aware_as_an_attack(tmp_path):
    from sifternet.eval import cli as eval_cli

    spec = eval_cli.Backdoor(
        str(sample_file(tmp_path)), attack="input-aware", epochs=1, model_cache=str(tmp_path / "ia.pt")
    )
    images, labels, attack, split, model, settings = eval_cli.backdoored(spec, threads=1)
    assert attack.name == "input-aware" and attack.poison_ratio == eval_cli.INPUT_AWARE_RATE
    held_out = settings["input_aware"]
    assert held_out["n_holdout"] > 0 and 0.0 <= held_out["attack_success_rate"] <= 1.0
    first = images[split.evaluation][:8]
    triggered = attack.apply(first)
    again = eval_cli.backdoored(spec, threads=1)  # from the cache: the same trigger
    np.testing.assert_array_equal(again.attack.apply(first), triggered)
    changed = triggered != first  # a trigger of its own per image: the masks differ
    assert len({changed[i].tobytes() for i in range(len(first))}) > 1
    assert model.predict(triggered).shape == (8,)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": "m.pt"}, "takes no model file"),
        ({"adaptive_purifier": "sifternet-repair"}, "takes no model file, adaptive purifier"),
        ({"attack_params": {"size": 3}}, r"parameters \{'size': 3\}"),
    ],
)
def test_input_aware_refuses_what_it_cannot_take(tmp_path, change, message):
    from sifternet.eval import cli as eval_cli

    spec = eval_cli.Backdoor(str(sample_file(tmp_path)), attack="input-aware", **change)
    with pytest.raises(ValueError, match=message):
        eval_cli.backdoored(spec)
