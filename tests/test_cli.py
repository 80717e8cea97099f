"""The ``sifternet`` command, run in temporary folders."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from sifternet import ModelFileError, NearestSeedRepair, SifterNet
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


def fit_default_repair(source, model, *, per_class: int) -> int:
    """``sifternet fit SOURCE --out MODEL --repair agnostic --per-class N``: its exit status."""
    return main(
        ["fit", str(source), "--out", str(model), "--repair", "agnostic", "--per-class", str(per_class)]
    )


def test_nearest_model_fits_and_purifies_arrays_and_folders(data, folders, tmp_path, capsys):
    model = tmp_path / "nearest.npz"
    assert fit_default_repair(data, model, per_class=3) == 0
    out, grid, table = tmp_path / "out.npz", tmp_path / "grid.png", tmp_path / "scores.csv"
    extras = ["--preview", str(grid), "--scores", str(table)]
    assert main(["purify", str(model), str(data), str(out), *extras]) == 0
    with np.load(data) as source, np.load(out) as result:
        want = NearestSeedRepair.load(model).purify(source["images"])
        np.testing.assert_array_equal(result["images"], want)
    assert "(original | repaired | purified)" in capsys.readouterr().out and cv2.imread(str(grid)) is not None
    assert table.read_text().splitlines()[0] == "input,score,flipped_pixels"
    _, inbox, target = folders
    model = tmp_path / "nearest-folder.npz"
    assert fit_default_repair(tmp_path / "seeds", model, per_class=1) == 0
    assert main(["purify", str(model), str(inbox), str(target)]) == 0
    assert main(["purify", str(model), str(inbox), str(target), "--resume"]) == 0
    assert "3 finished outputs kept" in capsys.readouterr().out


def test_reject_above_abstains_from_suspicious_images(data, folders, tmp_path, capsys):
    model = tmp_path / "nearest.npz"
    assert fit_default_repair(data, model, per_class=3) == 0
    with np.load(data) as source:
        images = source["images"]
    scores = NearestSeedRepair.load(model).purify_scored(images).scores
    threshold = float(np.median(scores))
    out = tmp_path / "out.npz"
    assert main(["purify", str(model), str(data), str(out), "--reject-above", str(threshold)]) == 0
    with np.load(out) as result:
        np.testing.assert_array_equal(result["rejected"], scores > threshold)
        assert result["images"].shape == images.shape and "labels" in result
    assert f"{int((scores > threshold).sum())} rejected" in capsys.readouterr().out
    with pytest.raises(CliError, match="--reject-above: .*out.npy can hold only the images"):
        run(["purify", str(model), str(data), str(tmp_path / "out.npy"), "--reject-above", "0.5"])
    with pytest.raises(CliError, match="--reject-above: .*out.npz already holds a 'rejected' array"):
        run(["purify", str(model), str(out), str(tmp_path / "again.npz"), "--reject-above", "0.5"])
    assert not (tmp_path / "again.npz").exists()
    with pytest.raises(CliError, match=r"--reject-above: expected a score threshold in \[0, 1\], got 1.5"):
        run(["purify", str(model), str(data), str(tmp_path / "o.npz"), "--reject-above", "1.5"])
    _, inbox, target = folders
    model = tmp_path / "nearest-folder.npz"
    assert fit_default_repair(tmp_path / "seeds", model, per_class=1) == 0
    assert main(["purify", str(model), str(inbox), str(target), "--reject-above", "1"]) == 0  # all kept
    assert len(list(target.rglob("*.png"))) == 3
    with pytest.raises(CliError, match="rerun with its model, --seed, --steps and --reject-above"):
        run(["purify", str(model), str(inbox), str(target), "--resume", "--reject-above", "0.2"])
    images = [cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in sorted(inbox.rglob("*.jpg"))]
    scores = NearestSeedRepair.load(model).purify_scored(np.stack(images)).scores
    threshold = float(np.sort(scores)[1]) if scores.min() < scores.max() else 0.0
    assert (scores > threshold).any()  # some image is rejected
    forced = ["--force", "--reject-above", str(threshold)]  # also removes the earlier outputs it rejects
    assert main(["purify", str(model), str(inbox), str(target), *forced]) == 0
    written = sorted(p.name for p in target.rglob("*.png"))
    assert written == [f"img{k}.png" for k in range(3) if scores[k] <= threshold]


def test_nearest_model_refuses_sifternet_options(data, tmp_path):
    model = tmp_path / "nearest.npz"
    with pytest.raises(
        CliError, match="--repair agnostic: takes none of SifterNet's options, got --binarize"
    ):
        run(["fit", str(data), "--out", str(model), "--repair", "agnostic", "--binarize", "otsu"])
    assert not model.exists()
    assert main(["fit", str(data), "--out", str(model), "--repair", "agnostic"]) == 0
    with pytest.raises(CliError, match="--seed: .*nearest.npz holds a nearest-seed repair"):
        run(["purify", str(model), str(data), str(tmp_path / "out.npy"), "--seed", "3"])


def test_fit_repair_presets(data, tmp_path):
    for preset, threshold in (("highlights", 0.9), ("shadows", -0.9)):
        model = tmp_path / f"{preset}.npz"
        assert main(["fit", str(data), "--out", str(model), "--repair", preset, "--fill-size", "3"]) == 0
        config = SifterNet.load(model).config
        assert (config.threshold, config.output, config.fill_size) == (threshold, "inpaint", 3)


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
    with pytest.raises(ValueError, match=re.escape("bad.npz: expected images of shape (B, 10, 8, 3)")):
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
    probe = (
        f"{code}\nimport sys\n"
        "print('imported:', *sorted(m for m in sys.modules if m.startswith('sifternet.eval')))"
    )
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


# -- robustness: never a crash, a hang or lost data on user input ------------------------
MNIST = Path(__file__).resolve().parents[1] / "sifternet" / "data" / "mnist_sample.npz"
MANIFEST = ".sifternet-manifest.json"
#: The command in a fresh interpreter, so that a crash or a hang cannot take the session down.
CLI = "import sys\nfrom sifternet.cli import main\nsys.exit(main(sys.argv[1:]))"
#: The command as a terminal's foreground job runs it: Ctrl-C raises KeyboardInterrupt even
#: where the tests themselves run in the background of a shell, whose children inherit an
#: ignored SIGINT (which Python, and so the command, then keep ignoring).
CLI_FOREGROUND = "import signal\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n" + CLI
#: The command, killed (SIGKILL) at its n-th os.replace: a temporary is complete, not renamed.
KILLED_AT_RENAME = """import os, signal, sys
from sifternet.cli import main
left = int(os.environ["SIFTERNET_TEST_KILL_AT"])
rename = os.replace
def replace(*args, **kwargs):
    global left
    left -= 1
    if left == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    return rename(*args, **kwargs)
os.replace = replace
sys.exit(main(sys.argv[1:]))
"""
SLOW = ["--steps", "100000000", "--chunk", "1", "--threads", "1"]  # about 0.3 s per 28x28 image


def cli_process(*argv: object, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the command in a fresh interpreter, in ``cwd`` (outside the source tree, so that
    the installed package runs), with arguments as bytes: any file name passes."""
    command = [sys.executable, "-c", CLI, *(os.fsencode(a) for a in argv)]  # type: ignore[arg-type]
    return subprocess.run(command, capture_output=True, timeout=timeout, cwd=cwd)


def one_line(text: str | bytes) -> str:
    """The one line of an error report (fails on anything else, a traceback or a warning)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "backslashreplace")
    assert len(text.splitlines()) == 1, text
    return text.strip()


@pytest.fixture(scope="module")
def grey(tmp_path_factory):
    """(grey 28x28 model file fitted on the shipped MNIST sample, 12 other images of it)."""
    folder = tmp_path_factory.mktemp("grey")
    with np.load(MNIST) as sample:
        images, labels = sample["images"], sample["labels"]
    model = folder / "model.npz"
    SifterNet(binarize="global", steps=50).fit(images[:20], labels[:20]).save(model)
    return model, images[20:32]


def write_images(folder: Path, images, names=None) -> list[Path]:
    """Encode ``images`` into ``folder`` (format from each name's suffix; default 000.png, ...)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, image in enumerate(images):
        path = folder / (names[k] if names else f"{k:03d}.png")
        path.write_bytes(cv2.imencode(path.suffix, image)[1].tobytes())
        paths.append(path)
    return paths


def tree(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder``, dot files included, by relative path: its bytes."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def png(width: int, height: int, colour: int, rows: bytes, *, chunks=(), end: bool = True) -> bytes:
    """A hand-made 8-bit PNG: IHDR, extra ``chunks``, one IDAT of ``rows``, IEND unless not ``end``."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    head = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0))
    body = b"".join(chunk(kind, data) for kind, data in chunks) + chunk(b"IDAT", zlib.compress(rows))
    return b"\x89PNG\r\n\x1a\n" + head + body + (chunk(b"IEND", b"") if end else b"")


def decoded(path: Path) -> np.ndarray:
    return cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)


def test_file_names_that_are_not_utf8_are_read_and_keep_their_bytes(grey, tmp_path):
    model, images = grey
    name = os.fsdecode(b"caf\xe9.png")
    write_images(tmp_path / "in", images[:2], ["a.png", name])
    result = cli_process("purify", model, tmp_path / "in", tmp_path / "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    names = sorted(n for n in os.listdir(os.fsencode(tmp_path / "out")) if not n.startswith(b"."))
    assert names == [b"a.png", b"caf\xe9.png"]
    want = SifterNet.load(model).purify(images[:2])
    np.testing.assert_array_equal(decoded(tmp_path / "out" / name), want[1])
    write_images(tmp_path / "seeds" / os.fsdecode(b"cl\xe4ss"), images[:2], [name, "b.png"])
    result = cli_process(
        "fit", tmp_path / "seeds", "--out", tmp_path / "m.npz", "--per-class", "1", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr


def test_two_inputs_of_one_output_name_are_refused_before_writing(grey, tmp_path, capsys):
    model, images = grey
    write_images(tmp_path / "in" / "sub", images[:3], ["a.png", "a.bmp", "b.png"])
    assert main(["purify", str(model), str(tmp_path / "in"), str(tmp_path / "out")]) == 1
    error = one_line(capsys.readouterr().err)
    assert "sub/a.bmp" in error and "sub/a.png" in error
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "source, target, extra",
    [
        ("in", "in/out", []),  # the output inside the input
        ("out/in", "out", []),  # the input inside the output
        ("in", "link-to-in/out", []),  # the same, through a symbolic link
        ("link-to-out-in", "out", []),
        ("in", "out", ["--preview", "in/grid.png"]),  # a preview would join the input
        ("in", "out", ["--preview", "out/grid.png"]),
    ],
)
def test_input_and_output_must_not_contain_each_other(grey, tmp_path, capsys, source, target, extra):
    model, images = grey
    write_images(tmp_path / "in", images[:2])
    write_images(tmp_path / "out" / "in", images[2:4])
    (tmp_path / "link-to-in").symlink_to(tmp_path / "in")
    (tmp_path / "link-to-out-in").symlink_to(tmp_path / "out" / "in")
    before = tree(tmp_path)
    extra = [str(tmp_path / extra[1]) if k == 1 else x for k, x in enumerate(extra)]
    assert main(["purify", str(model), str(tmp_path / source), str(tmp_path / target), *extra]) == 1
    assert re.search(r"inside|the input|the output", one_line(capsys.readouterr().err))
    assert tree(tmp_path) == before


def test_the_output_must_not_replace_the_model(data, model, capsys):
    before = model.read_bytes()
    assert main(["purify", str(model), str(data), str(model), "--force"]) == 1
    assert "model" in one_line(capsys.readouterr().err)
    assert model.read_bytes() == before


@pytest.mark.parametrize("kill_at", [1, 2, 3, 4, 5])
def test_a_run_killed_at_any_rename_resumes_to_the_uninterrupted_result(grey, tmp_path, kill_at):
    model, images = grey
    write_images(tmp_path / "in", images[:5])
    whole, out = tmp_path / "whole", tmp_path / "out"
    argv = ["purify", str(model), str(tmp_path / "in")]
    assert main([*argv, str(whole), "--chunk", "2"]) == 0
    command = [sys.executable, "-c", KILLED_AT_RENAME, *argv, str(out), "--chunk", "2"]
    env = {**os.environ, "SIFTERNET_TEST_KILL_AT": str(kill_at)}
    assert subprocess.run(command, env=env, capture_output=True, cwd=tmp_path).returncode == -signal.SIGKILL
    assert main([*argv, str(out), "--chunk", "2", "--resume"]) == 0
    assert tree(out) == tree(whole)  # no temporary left, nothing unfinished kept
    assert main(["purify", str(model), str(out), str(tmp_path / "again")]) == 0


def test_resume_refuses_outputs_of_other_settings(grey, tmp_path, capsys):
    model, images = grey
    write_images(tmp_path / "in", images[:4])
    out = tmp_path / "out"
    assert main(["purify", str(model), str(tmp_path / "in"), str(out), "--seed", "1"]) == 0
    (out / "002.png").unlink()
    before = tree(out)
    assert main(["purify", str(model), str(tmp_path / "in"), str(out), "--resume", "--seed", "2"]) == 1
    assert "--force" in one_line(capsys.readouterr().err)
    assert tree(out) == before


def test_resume_redoes_an_output_it_did_not_finish(grey, tmp_path):
    model, images = grey
    write_images(tmp_path / "in", images[:3])
    whole, out = tmp_path / "whole", tmp_path / "out"
    assert main(["purify", str(model), str(tmp_path / "in"), str(whole)]) == 0
    write_images(out, images[1:2], ["001.png"])  # a complete PNG, but not a purified one
    assert main(["purify", str(model), str(tmp_path / "in"), str(out), "--resume"]) == 0
    assert tree(out) == tree(whole)


def wait_for(condition, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.mark.parametrize("target", ["out", "out.npy"])
def test_a_second_writer_of_one_output_is_refused_naming_the_first(grey, tmp_path, target):
    model, images = grey
    source = tmp_path / ("in" if target == "out" else "in.npy")
    if target == "out":
        write_images(source, images)
    else:
        np.save(source, images)
    out = tmp_path / target
    argv = [sys.executable, "-c", CLI, "purify", str(model), str(source), str(out)]
    with subprocess.Popen(
        [*argv, *SLOW], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path
    ) as first:
        try:
            if target == "out":
                wait_for(lambda: out.is_dir() and any(out.glob("*.png")))
            else:
                wait_for(lambda: any(p.name.startswith(".out") for p in tmp_path.iterdir()))
            second = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=tmp_path)
            assert first.poll() is None, "the first run ended too early for this test"
        finally:
            first.kill()
    assert second.returncode == 1
    error = one_line(second.stderr)
    assert str(out) in error and f"pid {first.pid}" in error


@pytest.mark.parametrize("kind", ["npz", "npy"])
def test_an_array_declaring_a_huge_shape_is_refused_before_allocation(grey, tmp_path, capsys, kind):
    model, _ = grey
    header = io_header({"descr": "|u1", "fortran_order": False, "shape": (10**10, 28, 28)})
    source = tmp_path / f"huge.{kind}"
    if kind == "npy":
        source.write_bytes(header + bytes(1000))
    else:
        with zipfile.ZipFile(source, "w") as archive:
            archive.writestr("images.npy", header + bytes(1000))
    assert main(["purify", str(model), str(source), str(tmp_path / f"out.{kind}")]) == 1
    error = one_line(capsys.readouterr().err)
    assert str(source) in error and "(10000000000, 28, 28)" in error


def io_header(fields: dict) -> bytes:
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, fields)
    return buffer.getvalue()


def test_an_image_declaring_60000_squared_pixels_is_one_error_line(grey, tmp_path, capsys):
    model, images = grey
    write_images(tmp_path / "in", images[:1])
    (tmp_path / "in" / "huge.png").write_bytes(png(60000, 60000, 0, bytes(1000)))
    assert main(["purify", str(model), str(tmp_path / "in"), str(tmp_path / "out")]) == 1
    assert "huge.png" in one_line(capsys.readouterr().err)


@pytest.mark.parametrize("error", [MemoryError, RecursionError, OverflowError, cv2.error])
def test_main_reports_resource_errors_in_one_line(grey, tmp_path, capsys, monkeypatch, error):
    model, images = grey
    write_images(tmp_path / "in", images[:2])

    def fail(self, images, *args, **kwargs):
        raise error()

    monkeypatch.setattr(SifterNet, "purify_scored", fail)
    assert main(["purify", str(model), str(tmp_path / "in"), str(tmp_path / "out")]) == 1
    assert one_line(capsys.readouterr().err).startswith("sifternet: error: ")


def test_ctrl_c_exits_130_saying_what_was_finished(grey, tmp_path, capsys, monkeypatch):
    model, images = grey
    write_images(tmp_path / "in", images[:3])
    whole, out = tmp_path / "whole", tmp_path / "out"
    argv = ["purify", str(model), str(tmp_path / "in")]
    assert main([*argv, str(whole), "--chunk", "1"]) == 0
    purify, calls = SifterNet.purify_scored, []

    def interrupted(self, images, *args, **kwargs):
        calls.append(len(images))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return purify(self, images, *args, **kwargs)

    monkeypatch.setattr(SifterNet, "purify_scored", interrupted)
    capsys.readouterr()
    try:
        status = main([*argv, str(out), "--chunk", "1"])
    except KeyboardInterrupt:
        status = "KeyboardInterrupt leaked"
    assert status == 130
    error = one_line(capsys.readouterr().err)
    assert "interrupted: 1 of 3 images written; rerun with --resume" in error
    monkeypatch.undo()
    assert main([*argv, str(out), "--chunk", "1", "--resume"]) == 0
    assert tree(out) == tree(whole)


def test_sigint_exits_130_in_one_line(grey, tmp_path):
    model, images = grey
    write_images(tmp_path / "in", np.concatenate([images] * 4))  # 48 images: the signal lands mid-run
    out = tmp_path / "out"
    argv = [sys.executable, "-c", CLI_FOREGROUND, "purify", str(model), str(tmp_path / "in"), str(out), *SLOW]
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path
    ) as run:
        wait_for(lambda: any(out.glob("*.png")) or run.poll() is not None)
        assert run.poll() is None, "the run ended before it could be interrupted"
        run.send_signal(signal.SIGINT)
        _, stderr = run.communicate(timeout=60)
    assert run.returncode == 130
    assert re.fullmatch(
        r"sifternet: interrupted: \d+ of 48 images written; rerun with --resume", one_line(stderr)
    )


@pytest.mark.parametrize(
    "options, option",
    [
        (["--preview", "grid.xyz"], "--preview"),
        (["--preview", "grid"], "--preview"),
        (["--preview", "existing.png"], "--preview"),
        (["--preview-count", "0"], "--preview-count"),
        (["--preview-count", "-3"], "--preview-count"),
        (["--chunk", "0"], "--chunk"),
        (["--threads", "0"], "--threads"),
        (["--threads", "99999999999"], "--threads"),
    ],
)
def test_purify_options_are_checked_before_any_work(grey, tmp_path, capsys, options, option):
    model, images = grey
    write_images(tmp_path / "in", images[:2])
    (tmp_path / "existing.png").write_bytes(b"an earlier preview")
    options = [str(tmp_path / o) if o.startswith(("grid", "existing")) else o for o in options]
    out = tmp_path / "out"
    assert main(["purify", str(model), str(tmp_path / "in"), str(out), *options]) == 1
    assert one_line(capsys.readouterr().err).startswith(f"sifternet: error: {option}")
    assert not out.exists()


@pytest.mark.parametrize(
    "argv, option",
    [
        (["fit", "{data}", "--out", "{tmp}/m.npz", "--threads", "0"], "--threads"),
        (["fit", "{data}", "--out", "{tmp}/m.npz", "--selection-seed", "-1"], "--selection-seed"),
        (["demo", "--out", "{tmp}/demo.xyz"], "--out"),
        (["demo", "--out", "{tmp}/demo.png", "--threads", "-2"], "--threads"),
    ],
)
def test_fit_and_demo_options_are_checked_before_any_work(data, tmp_path, capsys, argv, option):
    argv = [a.format(data=data, tmp=tmp_path) for a in argv]
    assert main(argv) == 1
    assert one_line(capsys.readouterr().err).startswith(f"sifternet: error: {option}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.npz"]


def test_a_folder_of_another_image_shape_is_refused_naming_a_file(grey, tmp_path, capsys):
    model, _ = grey
    write_images(tmp_path / "in", np.zeros((2, 28, 30), np.uint8))
    assert main(["purify", str(model), str(tmp_path / "in"), str(tmp_path / "out")]) == 1
    error = one_line(capsys.readouterr().err)
    assert str(tmp_path / "in" / "000.png") in error and "expected a grey image of shape (28, 28)" in error


@pytest.mark.parametrize(
    "colour, what",
    [(3, "palette PNG"), (4, "grey+alpha PNG"), (2, "PNG")],
)
def test_a_png_of_another_colour_type_says_what_was_expected(grey, tmp_path, capsys, colour, what):
    model, images = grey
    pixel = {2: 3, 3: 1, 4: 2}[colour]
    rows = b"".join(b"\0" + bytes(28 * pixel) for _ in range(28))
    palette = [(b"PLTE", bytes(v for i in range(256) for v in (i, i, i)))] if colour == 3 else []
    write_images(tmp_path / "in", images[:1])
    (tmp_path / "in" / "other.png").write_bytes(png(28, 28, colour, rows, chunks=palette))
    assert main(["purify", str(model), str(tmp_path / "in"), str(tmp_path / "out")]) == 1
    error = one_line(capsys.readouterr().err)
    assert "other.png: expected a grey image of shape (28, 28)" in error and f"got a {what}" in error


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_a_truncated_image_is_refused_naming_it(grey, tmp_path, capfd, suffix):
    model, images = grey
    write_images(tmp_path / "in", images[:2], ["a.png", f"b{suffix}"])
    cut = tmp_path / "in" / f"b{suffix}"
    cut.write_bytes(cut.read_bytes()[:-30])
    assert main(["purify", str(model), str(tmp_path / "in"), str(tmp_path / "out")]) == 1
    error = one_line(capfd.readouterr().err)  # also no line of libpng's or libjpeg's
    assert f"b{suffix}: " in error and "truncated" in error.split(f"b{suffix}: ")[1]


def without_file_permissions() -> list[str]:
    """A command prefix under which file permissions apply (root reads any file)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: every file is readable")
    caps = "-dac_override,-dac_read_search"
    return [setpriv, "--bounding-set", caps, "--inh-caps", caps]


def test_an_unreadable_image_is_one_line_naming_it(grey, tmp_path):
    model, images = grey
    write_images(tmp_path / "in", images[:2])
    (tmp_path / "in" / "001.png").chmod(0)
    command = [*without_file_permissions(), sys.executable, "-c", CLI]
    result = subprocess.run(
        [*command, "purify", str(model), str(tmp_path / "in"), str(tmp_path / "out")],
        capture_output=True,
        cwd=tmp_path,
    )
    assert result.returncode == 1
    error = one_line(result.stderr)
    assert "001.png" in error and "permission denied" in error.lower()


@pytest.mark.parametrize("kind", ["fifo", "device", "link-to-device"])
def test_only_regular_files_and_folders_are_read(grey, tmp_path, kind):
    model, _ = grey
    source = {"fifo": tmp_path / "in.npy", "device": Path("/dev/zero"), "link-to-device": tmp_path / "z.npz"}
    if kind == "fifo":
        os.mkfifo(source[kind])
    elif kind == "link-to-device":
        source[kind].symlink_to("/dev/zero")
    result = cli_process("purify", model, source[kind], tmp_path / "out.npy", cwd=tmp_path, timeout=30)
    assert result.returncode == 1
    assert "expected a regular file or a folder" in one_line(result.stderr)


def test_a_model_that_is_a_named_pipe_is_refused(grey, tmp_path):
    _, images = grey
    write_images(tmp_path / "in", images[:1])
    os.mkfifo(tmp_path / "model.npz")
    model = tmp_path / "model.npz"
    result = cli_process("purify", model, tmp_path / "in", tmp_path / "out", cwd=tmp_path, timeout=30)
    assert result.returncode == 1
    assert "model.npz: expected a model file, got a named pipe" in one_line(result.stderr)


def peak_memory_kb(argv: list[str], cwd: Path) -> tuple[int, int]:
    """(exit status, peak resident memory in KB) of the command in a fresh interpreter."""
    with subprocess.Popen(
        [sys.executable, "-c", CLI, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd
    ) as run:
        _, status, usage = os.wait4(run.pid, 0)
        run.returncode = os.waitstatus_to_exitcode(status)
    return run.returncode, usage.ru_maxrss


def test_images_of_another_size_are_refused_from_their_header(grey, tmp_path):
    model, images = grey
    write_images(tmp_path / "small", images[:2])
    big = cv2.imencode(".png", np.zeros((3000, 3000), np.uint8))[1].tobytes()
    (tmp_path / "big").mkdir()
    for k in range(40):  # 360 MB of pixels if decoded
        (tmp_path / "big" / f"{k:02d}.png").write_bytes(big)
    status, small = peak_memory_kb(
        ["purify", str(model), str(tmp_path / "small"), str(tmp_path / "o1")], tmp_path
    )
    assert status == 0
    status, peak = peak_memory_kb(
        ["purify", str(model), str(tmp_path / "big"), str(tmp_path / "o2")], tmp_path
    )
    assert status == 1 and peak < small + 60_000


def test_a_single_image_array_is_refused_as_ambiguous(grey, tmp_path, capsys):
    model, images = grey
    np.save(tmp_path / "one.npy", images[0])
    assert main(["purify", str(model), str(tmp_path / "one.npy"), str(tmp_path / "out.npy")]) == 1
    error = one_line(capsys.readouterr().err)
    assert "expected images of shape (B, 28, 28)" in error and "(1, 28, 28)" in error
    assert not (tmp_path / "out.npy").exists()


def read_scores(path: Path) -> list[tuple[str, float, int]]:
    """The rows of a --scores CSV, after checking its header."""
    lines = path.read_text().splitlines()
    assert lines[0] == "input,score,flipped_pixels"
    rows = (line.split(",") for line in lines[1:])
    return [(name, float(score), int(flipped)) for name, score, flipped in rows]


def test_scores_of_an_array_run_are_purify_scored_per_image(grey, tmp_path):
    model, images = grey
    np.save(tmp_path / "in.npy", images)
    argv = ["purify", str(model), str(tmp_path / "in.npy"), str(tmp_path / "out.npy"), "--chunk", "5"]
    assert main([*argv, "--scores", str(tmp_path / "scores.csv")]) == 0
    want = SifterNet.load(model).purify_scored(images)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), want.images)
    flipped = want.flipped.sum(axis=(1, 2))
    assert read_scores(tmp_path / "scores.csv") == [
        (str(i), score, count) for i, (score, count) in enumerate(zip(want.scores, flipped))
    ]
    assert len({score for _, score, _ in read_scores(tmp_path / "scores.csv")}) > 1  # the check can tell


def test_scores_of_a_resumed_folder_run_are_those_of_one_run(grey, tmp_path, capsys):
    model, images = grey
    write_images(tmp_path / "in" / "a,b", images[:6])  # a comma in the path: quoted in the CSV
    write_images(tmp_path / "in", images[6:])
    argv = ["purify", str(model), str(tmp_path / "in")]
    assert main([*argv, str(tmp_path / "whole"), "--scores", str(tmp_path / "whole.csv")]) == 0
    rows = (tmp_path / "whole.csv").read_text().splitlines()
    assert len(rows) == 13 and any(row.startswith('"a,b/000.png",') for row in rows)
    # a run without scores, two of its outputs lost, resumed with --scores: the same CSV
    assert main([*argv, str(tmp_path / "out")]) == 0
    for name in ("000.png", "a,b/003.png"):
        (tmp_path / "out" / name).unlink()
    scores = tmp_path / "scores.csv"
    assert main([*argv, str(tmp_path / "out"), "--resume", "--scores", str(scores)]) == 0
    assert scores.read_text() == (tmp_path / "whole.csv").read_text()
    assert tree(tmp_path / "out") == tree(tmp_path / "whole")
    # resumed again with everything finished: the scores come from the manifest
    assert main([*argv, str(tmp_path / "out"), "--resume", "--scores", str(scores)]) == 0
    assert scores.read_text() == (tmp_path / "whole.csv").read_text()
    # a manifest of an earlier version, with no scores: the outputs are redone to score them
    manifest = tmp_path / "out" / ".sifternet-manifest.json"
    content = json.loads(manifest.read_text())
    del content["scores"]
    manifest.write_text(json.dumps(content))
    assert main([*argv, str(tmp_path / "out"), "--resume", "--scores", str(scores)]) == 0
    assert scores.read_text() == (tmp_path / "whole.csv").read_text()
    assert "purified 12 images" in capsys.readouterr().out


@pytest.mark.parametrize("where", ["existing.csv", "out/scores.csv", "in/scores.csv", "scores.txt"])
def test_scores_outputs_are_checked_before_any_work(grey, tmp_path, capsys, where):
    model, images = grey
    write_images(tmp_path / "in", images[:2])
    (tmp_path / "existing.csv").write_text("an earlier table")
    argv = ["purify", str(model), str(tmp_path / "in"), str(tmp_path / "out")]
    assert main([*argv, "--scores", str(tmp_path / where)]) == 1
    assert one_line(capsys.readouterr().err).startswith("sifternet: error: --scores: ")
    assert not (tmp_path / "out").exists() and (tmp_path / "existing.csv").read_text() == "an earlier table"
