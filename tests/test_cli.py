"""The ``sifternet`` command, run in temporary folders."""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from sifternet import ModelFileError, SifterNet
from sifternet.cli import EVAL_COMMANDS, CliError, build_parser, main
from sifternet.modelfile import FILE_MODE


@pytest.fixture()
def data(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "data.npz"
    labels = np.repeat(np.arange(3), 5).astype(np.uint8)
    np.savez(path, images=rng.integers(0, 256, (15, 10, 8, 3), dtype=np.uint8), labels=labels)
    return path


@pytest.fixture()
def model(data, tmp_path):
    path = tmp_path / "model.npz"
    assert main(["fit", str(data), "--out", str(path), "--steps", "50", "--block-size", "3"]) == 0
    return path


@pytest.fixture()
def folders(tmp_path):
    """(model fitted on a folder of class sub-folders, folder of images below in/sub, output folder)."""
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
    return model, tmp_path / "in", tmp_path / "out"


def run(argv: list[str]) -> None:
    """Run a command as ``main`` does, but let its error propagate."""
    args = build_parser(argv[0]).parse_args(argv)
    args.run(args)


def test_purify_npz_equals_python_api_and_keeps_other_arrays(data, model, tmp_path, capsys):
    out = tmp_path / "out.npz"
    assert main(["purify", str(model), str(data), str(out), "--chunk", "4"]) == 0
    with np.load(data) as source, np.load(out) as result:
        np.testing.assert_array_equal(result["images"], SifterNet.load(model).purify(source["images"]))
        np.testing.assert_array_equal(result["labels"], source["labels"])
    assert "purified 15 images" in capsys.readouterr().out


def test_purify_writes_a_preview_grid(data, model, tmp_path):
    grid = tmp_path / "grid.png"
    assert main(["purify", str(model), str(data), str(tmp_path / "out.npz"), "--preview", str(grid)]) == 0
    assert cv2.imread(str(grid)) is not None


def test_outputs_are_written_atomically_with_the_usual_mode(data, model, tmp_path):
    out, grid = tmp_path / "out.npz", tmp_path / "grid.png"
    assert main(["purify", str(model), str(data), str(out), "--preview", str(grid)]) == 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    for written in (out, model, grid):  # not mkstemp's private 0600
        assert written.stat().st_mode & 0o777 == FILE_MODE


def test_purify_npy_with_overrides(data, model, tmp_path):
    with np.load(data) as source:
        np.save(tmp_path / "in.npy", source["images"])
        images = source["images"]
    out = tmp_path / "out.npy"
    assert (
        main(
            [
                "purify",
                str(model),
                str(tmp_path / "in.npy"),
                str(out),
                "--steps",
                "9",
                "--seed",
                "4",
                "--chunk",
                "7",
            ]
        )
        == 0
    )
    want = SifterNet.load(model).with_options(steps=9, seed=4).purify(images)
    np.testing.assert_array_equal(np.load(out), want)


def test_fit_steps_none_reaches_the_model_with_its_sweep_cap(data, tmp_path):
    model = tmp_path / "sweeps.npz"
    assert (
        main(
            [
                "fit",
                str(data),
                "--out",
                str(model),
                "--steps",
                "none",
                "--max-sweeps",
                "3",
                "--order",
                "sweep",
                "--output",
                "inpaint",
                "--joint-channels",
            ]
        )
        == 0
    )
    config = SifterNet.load(model).config
    assert (config.steps, config.max_sweeps, config.joint_channels) == (None, 3, True)


def test_purify_steps_none_recalls_until_converged(data, model, tmp_path):
    out = tmp_path / "converged.npz"
    assert main(["purify", str(model), str(data), str(out), "--steps", "none"]) == 0
    with np.load(data) as source, np.load(out) as result:
        want = SifterNet.load(model).with_options(steps=None).purify(source["images"])
        np.testing.assert_array_equal(result["images"], want)


def test_folders_in_and_out(folders):
    model, inbox, out = folders
    assert main(["purify", str(model), str(inbox), str(out), "--chunk", "2"]) == 0
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == ["sub/img0.png", "sub/img1.png", "sub/img2.png"]
    source = cv2.cvtColor(cv2.imread(str(inbox / "sub" / "img2.jpg")), cv2.COLOR_BGR2RGB)
    result = cv2.cvtColor(cv2.imread(str(out / "sub" / "img2.png")), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(result, SifterNet.load(model).purify(source, index_offset=2))


def test_folder_output_refuses_existing_outputs(folders):
    model, inbox, out = folders
    assert main(["purify", str(model), str(inbox), str(out)]) == 0
    with pytest.raises(CliError, match=r"already exists \(3 outputs do\): pass --resume .* or --force"):
        run(["purify", str(model), str(inbox), str(out)])


def test_folder_output_force_replaces_existing_outputs(folders):
    model, inbox, out = folders
    assert main(["purify", str(model), str(inbox), str(out)]) == 0
    (out / "sub" / "img0.png").write_bytes(b"stale")
    assert main(["purify", str(model), str(inbox), str(out), "--force"]) == 0
    assert cv2.imread(str(out / "sub" / "img0.png")) is not None


def test_folder_output_resume_purifies_only_missing_outputs(folders):
    model, inbox, out = folders
    assert main(["purify", str(model), str(inbox), str(out)]) == 0
    whole = {p.name: p.read_bytes() for p in (out / "sub").iterdir()}
    (out / "sub" / "img1.png").unlink()
    stamp = (out / "sub" / "img0.png").stat().st_mtime_ns
    assert main(["purify", str(model), str(inbox), str(out), "--resume"]) == 0
    assert {p.name: p.read_bytes() for p in (out / "sub").iterdir()} == whole
    assert (out / "sub" / "img0.png").stat().st_mtime_ns == stamp  # untouched


def test_fit_refuses_to_replace_a_model(data, model):
    before = model.read_bytes()
    with pytest.raises(CliError, match="already exists: pass --force"):
        run(["fit", str(data), "--out", str(model)])
    assert model.read_bytes() == before


def test_fit_refuses_a_missing_source(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        run(["fit", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "x.npz")])


def test_fit_refuses_more_seeds_than_a_class_has(data, tmp_path):
    with pytest.raises(ValueError, match=re.escape("class 0 has 5 image(s); 9 seed(s) per class needed")):
        run(["fit", str(data), "--out", str(tmp_path / "y.npz"), "--per-class", "9"])


def test_purify_refuses_to_overwrite_its_input(data, model):
    with pytest.raises(CliError, match="the input is never overwritten"):
        run(["purify", str(model), str(data), str(data)])


def test_purify_refuses_images_of_another_shape(model, tmp_path):
    bad, out = tmp_path / "bad.npz", tmp_path / "o.npz"
    np.savez(bad, images=np.zeros((2, 10, 9, 3), np.uint8))
    with pytest.raises(ValueError, match=re.escape("images: expected one image of shape (10, 8, 3)")):
        run(["purify", str(model), str(bad), str(out)])
    assert not out.exists()


def test_purify_refuses_a_corrupt_model(data, model, tmp_path):
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(model.read_bytes()[:100])
    with pytest.raises(ModelFileError, match="not a readable .npz model file"):
        run(["purify", str(corrupt), str(data), str(tmp_path / "o.npz")])


def test_main_reports_an_error_in_one_line_with_status_1(data, model, capsys):
    assert main(["fit", str(data), "--out", str(model)]) == 1
    assert (
        capsys.readouterr().err == f"sifternet: error: {model} already exists: pass --force to replace it\n"
    )


def test_command_help_exits_0(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["purify", "--help"])
    assert stop.value.code == 0 and "--preview" in capsys.readouterr().out


@pytest.mark.parametrize("dataset", ["mnist", "gtsrb"])
def test_demo(tmp_path, dataset, capsys):
    out = tmp_path / "demo.png"
    assert main(["demo", "--dataset", dataset, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "pixels still white" in text and "images/s" in text
    grid = cv2.imread(str(out))
    assert grid is not None and grid.shape[0] > 100


def test_demo_refuses_to_replace_its_preview(tmp_path):
    out = tmp_path / "demo.png"
    out.write_bytes(b"an earlier preview")
    with pytest.raises(CliError, match="already exists: pass --force"):
        run(["demo", "--out", str(out)])


# -- the core never imports the evaluation package ------------------------------------
def evaluation_modules_after(code: str, cwd: Path) -> list[str]:
    """The sifternet.eval modules a fresh interpreter has imported after running ``code``."""
    probe = f"{code}\nimport sys\nprint('imported:', *sorted(m for m in sys.modules if m.startswith('sifternet.eval')))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=cwd, check=True
    )
    return result.stdout.splitlines()[-1].split()[1:]


def test_importing_the_core_cli_imports_no_evaluation_module(tmp_path):
    assert evaluation_modules_after("import sifternet.cli", tmp_path) == []


@pytest.mark.parametrize("command", ["fit", "purify", "demo", "help"])
def test_core_commands_import_no_evaluation_module(command, data, model, tmp_path):
    argv = {
        "fit": ["fit", str(data), "--out", str(tmp_path / "new.npz")],
        "purify": ["purify", str(model), str(data), str(tmp_path / "out.npz")],
        "demo": ["demo", "--out", str(tmp_path / "demo.png")],
        "help": ["--help"],
    }[command]
    code = (
        f"from sifternet.cli import main\ntry:\n    assert main({argv!r}) == 0\nexcept SystemExit:\n    pass"
    )
    assert evaluation_modules_after(code, tmp_path) == []


def test_top_level_help_lists_the_evaluation_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    listed = " ".join(capsys.readouterr().out.split())
    for name, line in EVAL_COMMANDS.items():
        assert f"{name} {line}" in listed


@pytest.mark.parametrize(
    "command, option",
    [("evaluate", "--finetune-defenses"), ("sweep", "comma-separated steps"), ("report", "--datasets")],
)
def test_evaluation_command_help_shows_its_options(command, option, capsys):
    with pytest.raises(SystemExit) as stop:
        main([command, "--help"])
    text = capsys.readouterr().out
    assert stop.value.code == 0 and option in text and "--help" in text


# -- the installed console script ---------------------------------------------------
@pytest.fixture()
def script() -> str:
    """The installed ``sifternet`` console script (beside this interpreter, else on PATH)."""
    try:
        importlib.metadata.distribution("sifternet")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("sifternet is not installed as a distribution (pip install -e .)")
    found = shutil.which(
        "sifternet", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    )
    if found is None:
        pytest.skip("the sifternet console script is neither beside this Python nor on PATH")
    return found


def test_console_script_prints_its_version(script, tmp_path):
    result = subprocess.run([script, "--version"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("sifternet ")


def test_console_script_reports_an_error_in_one_line(script, tmp_path):
    result = subprocess.run(
        [script, "purify", "missing.npz", "a", "b"], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 1 and result.stderr.startswith("sifternet: error: ")
    assert len(result.stderr.strip().splitlines()) == 1
