"""The ``sifternet`` command, run in temporary folders."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from sifternet import SifterNet
from sifternet.cli import main


@pytest.fixture()
def data(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "data.npz"
    labels = np.repeat(np.arange(3), 5).astype(np.uint8)
    np.savez(path, images=rng.integers(0, 256, (15, 10, 8, 3), dtype=np.uint8), labels=labels)
    return path


def fit(data, tmp_path, *extra):
    model = tmp_path / "model.npz"
    assert main(["fit", str(data), "--out", str(model), "--steps", "50", "--block-size", "3", *extra]) == 0
    return model


def test_fit_then_purify_npz_equals_python_api(data, tmp_path, capsys):
    model = fit(data, tmp_path)
    out = tmp_path / "out.npz"
    assert main(["purify", str(model), str(data), str(out), "--chunk", "4", "--preview", str(tmp_path / "grid.png")]) == 0
    purifier = SifterNet.load(model)
    with np.load(data) as source, np.load(out) as result:
        np.testing.assert_array_equal(result["images"], purifier.purify(source["images"]))
        np.testing.assert_array_equal(result["labels"], source["labels"])
    assert cv2.imread(str(tmp_path / "grid.png")) is not None
    assert "purified 15 images" in capsys.readouterr().out
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []
    from sifternet.modelfile import FILE_MODE

    for written in (out, model, tmp_path / "grid.png"):  # not mkstemp's private 0600
        assert written.stat().st_mode & 0o777 == FILE_MODE


def test_purify_npy_with_overrides(data, tmp_path):
    model = fit(data, tmp_path)
    with np.load(data) as source:
        np.save(tmp_path / "in.npy", source["images"])
        images = source["images"]
    out = tmp_path / "out.npy"
    assert main(["purify", str(model), str(tmp_path / "in.npy"), str(out), "--steps", "9", "--seed", "4", "--chunk", "7"]) == 0
    want = SifterNet.load(model).with_options(steps=9, seed=4).purify(images)
    np.testing.assert_array_equal(np.load(out), want)


def test_steps_none_reaches_the_model_with_its_sweep_cap(data, tmp_path):
    model = tmp_path / "sweeps.npz"
    assert main(["fit", str(data), "--out", str(model), "--steps", "none", "--max-sweeps", "3", "--order", "sweep",
                 "--output", "inpaint", "--joint-channels"]) == 0
    config = SifterNet.load(model).config
    assert (config.steps, config.max_sweeps, config.joint_channels) == (None, 3, True)
    default = fit(data, tmp_path)
    out = tmp_path / "converged.npz"
    assert main(["purify", str(default), str(data), str(out), "--steps", "none"]) == 0
    with np.load(data) as source, np.load(out) as result:
        want = SifterNet.load(default).with_options(steps=None).purify(source["images"])
        np.testing.assert_array_equal(result["images"], want)


def test_folders_in_and_out(tmp_path):
    rng = np.random.default_rng(1)
    seeds = tmp_path / "seeds"
    for cls in ("cat", "dog"):
        (seeds / cls).mkdir(parents=True)
        for k in range(2):
            cv2.imwrite(str(seeds / cls / f"{k}.png"), rng.integers(0, 256, (6, 7, 3), dtype=np.uint8))
    model = tmp_path / "m.npz"
    assert main(["fit", str(seeds), "--out", str(model), "--per-class", "1", "--binarize", "otsu"]) == 0
    inbox = tmp_path / "in" / "sub"
    inbox.mkdir(parents=True)
    for k in range(3):
        cv2.imwrite(str(inbox / f"img{k}.jpg"), rng.integers(0, 256, (6, 7, 3), dtype=np.uint8))
    out = tmp_path / "out"
    assert main(["purify", str(model), str(tmp_path / "in"), str(out), "--chunk", "2"]) == 0
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == ["sub/img0.png", "sub/img1.png", "sub/img2.png"]
    purifier = SifterNet.load(model)
    source = cv2.cvtColor(cv2.imread(str(inbox / "img2.jpg")), cv2.COLOR_BGR2RGB)
    result = cv2.cvtColor(cv2.imread(str(out / "sub" / "img2.png")), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(result, purifier.purify(source, index_offset=2))
    # existing outputs are kept unless --force; --resume finishes an interrupted run
    assert main(["purify", str(model), str(tmp_path / "in"), str(out)]) == 1
    assert main(["purify", str(model), str(tmp_path / "in"), str(out), "--force"]) == 0
    whole = {p.name: p.read_bytes() for p in (out / "sub").iterdir()}
    (out / "sub" / "img1.png").unlink()
    stamp = (out / "sub" / "img0.png").stat().st_mtime_ns
    assert main(["purify", str(model), str(tmp_path / "in"), str(out), "--resume"]) == 0
    assert {p.name: p.read_bytes() for p in (out / "sub").iterdir()} == whole
    assert (out / "sub" / "img0.png").stat().st_mtime_ns == stamp  # untouched


def test_refusals(data, tmp_path, capsys):
    model = fit(data, tmp_path)
    before = model.read_bytes()
    assert main(["fit", str(data), "--out", str(model)]) == 1
    assert "already exists: pass --force" in capsys.readouterr().err
    assert model.read_bytes() == before
    assert main(["purify", str(model), str(data), str(data)]) == 1
    assert "the input is never overwritten" in capsys.readouterr().err
    bad = tmp_path / "bad.npz"
    np.savez(bad, images=np.zeros((2, 10, 9, 3), np.uint8))
    assert main(["purify", str(model), str(bad), str(tmp_path / "o.npz")]) == 1
    assert "images: expected one image of shape (10, 8, 3)" in capsys.readouterr().err
    assert not (tmp_path / "o.npz").exists()
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(before[:100])
    assert main(["purify", str(corrupt), str(data), str(tmp_path / "o.npz")]) == 1
    assert "not a readable .npz model file" in capsys.readouterr().err
    assert main(["fit", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "x.npz")]) == 1
    assert main(["fit", str(data), "--out", str(tmp_path / "y.npz"), "--per-class", "9"]) == 1
    assert "class 0 has 5 image(s); 9 seed(s) per class needed" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["purify", "--help"])


@pytest.mark.parametrize("dataset", ["mnist", "gtsrb"])
def test_demo(tmp_path, dataset, capsys):
    out = tmp_path / "demo.png"
    assert main(["demo", "--dataset", dataset, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "pixels still white" in text and "images/s" in text
    grid = cv2.imread(str(out))
    assert grid is not None and grid.shape[0] > 100
    assert main(["demo", "--dataset", dataset, "--out", str(out)]) == 1


def test_console_script_is_installed(tmp_path):
    script = Path(sys.executable).with_name("sifternet")
    assert script.exists(), f"no console script beside {sys.executable}: is sifternet pip-installed?"
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("sifternet ")
    result = subprocess.run([str(script), "purify", "missing.npz", "a", "b"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 1 and result.stderr.startswith("sifternet: error: ")
    assert len(result.stderr.strip().splitlines()) == 1
