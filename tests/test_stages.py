"""The public stages of SifterNet compose to purify, bit for bit, and no module outside
``sifternet/purifier.py`` reaches a private member of a SifterNet."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from sifternet import SifterNet
from sifternet.binarize import states_to_pixels

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [
    {"steps": 300},
    {"binarize": "global", "order": "sweep", "steps": None, "max_sweeps": 2, "output": "restore"},
    {"output": "inpaint", "joint_channels": True, "agreement": 0.5, "steps": 200, "seed": 9},
    {"rule": "storkey", "margin": 0.2, "steps": 150},
]


def _images(seed: int, *shape: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


@pytest.mark.parametrize("shape", [(9, 11), (12, 10, 3)])
@pytest.mark.parametrize("options", CONFIGS)
def test_purify_is_the_composition_of_the_stages(shape, options):
    purifier = SifterNet(block_size=5, **options).fit(_images(0, 5, *shape))
    batch = _images(1, 17, *shape)
    states = purifier.to_states(batch)
    assert states.dtype == np.int8 and states.shape == (17,) + shape[:2] + (purifier.n_channels,)
    recalled = purifier.recall_states(states, index_offset=4)
    composed = purifier.to_images(batch, states, recalled)
    np.testing.assert_array_equal(purifier.purify(batch, index_offset=4), composed)
    np.testing.assert_array_equal(purifier.purify(batch[3], index_offset=7), composed[3])


def test_recall_states_leaves_its_input_alone_and_is_keyed_by_index():
    purifier = SifterNet(steps=400).fit(_images(0, 4, 8, 8, 3))
    states = purifier.to_states(_images(1, 6, 8, 8, 3))
    before = states.copy()
    whole = purifier.recall_states(states)
    np.testing.assert_array_equal(states, before)
    np.testing.assert_array_equal(purifier.recall_states(states[2:], index_offset=2), whole[2:])
    np.testing.assert_array_equal(
        purifier.recall_states(states[::-1], indices=np.arange(6)[::-1]), whole[::-1]
    )


def test_thresholds_above_every_field_erase_each_visited_neuron():
    purifier = SifterNet(steps=None, order="sweep", max_sweeps=1).fit(_images(0, 3, 6, 6))
    states = purifier.to_states(_images(1, 2, 6, 6))
    theta = np.full((6, 6, 1), 4.0)  # |field| <= P = 3
    assert (purifier.recall_states(states, thresholds=theta) == -1).all()


def test_binarize_is_the_states_as_pixels():
    purifier = SifterNet().fit(_images(0, 3, 8, 8))
    batch = _images(1, 4, 8, 8)
    np.testing.assert_array_equal(
        purifier.binarize(batch), states_to_pixels(purifier.to_states(batch))[..., 0]
    )


@pytest.mark.parametrize(
    "call, error, match",
    [
        (
            lambda p, s: p.recall_states(s.astype(np.int16)),
            TypeError,
            "states: expected an int8 numpy array, got int16",
        ),
        (lambda p, s: p.recall_states(s[:, :, :7]), ValueError, r"states: expected states \(B, 8, 8, 1\)"),
        (lambda p, s: p.recall_states(s[0]), ValueError, r"states: expected states \(B, 8, 8, 1\)"),
        (
            lambda p, s: p.to_images(np.zeros((3, 8, 8), np.uint8), s, s),
            ValueError,
            r"before: expected states of shape \(3, 8, 8, 1\)",
        ),
        (
            lambda p, s: p.to_images(np.zeros((2, 8, 8), np.uint8), s, [s]),
            TypeError,
            "after: expected an int8 numpy array, got list",
        ),
        (lambda p, s: p.recall_states(s, thresholds=np.zeros((8, 8))), ValueError, "thresholds"),
    ],
)
def test_stage_errors(call, error, match):
    purifier = SifterNet().fit(_images(0, 3, 8, 8))
    with pytest.raises(error, match=match):
        call(purifier, purifier.to_states(_images(1, 2, 8, 8)))


def test_image_shape_before_fit_is_an_error():
    with pytest.raises(RuntimeError, match="not fitted"):
        SifterNet().image_shape  # noqa: B018


def _private_members() -> set[str]:
    tree = ast.parse((ROOT / "sifternet" / "purifier.py").read_text())
    (cls,) = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "SifterNet"]
    names = {
        node.attr for node in ast.walk(cls) if isinstance(node, ast.Attribute) and node.attr.startswith("_")
    }
    names |= {node.name for node in cls.body if isinstance(node, ast.FunctionDef)}
    return {name for name in names if name.startswith("_") and not name.startswith("__")}


def test_no_module_outside_the_purifier_touches_a_private_sifternet_member():
    private = _private_members()
    assert {"_as_batch", "_image_shape"} <= private  # the scan sees the class
    files = [
        path
        for folder in ("sifternet", "benchmarks", "scripts", "tests", "fuzz")
        for path in (ROOT / folder).rglob("*.py")
        if path.name != "purifier.py"
    ]
    offenders = [
        f"{path.relative_to(ROOT)}:{node.lineno}: .{node.attr}"
        for path in files
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute) and node.attr in private
    ]
    assert not offenders, "private SifterNet members used outside purifier.py:\n" + "\n".join(offenders)
