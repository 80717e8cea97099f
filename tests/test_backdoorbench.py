"""scripts/backdoorbench_purify.py on fake attack results in BackdoorBench's layouts,
built here from the shipped MNIST sample and a model that is backdoored by construction."""

from __future__ import annotations

import importlib.util
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the BackdoorBench script needs PyTorch (the 'eval' extra)")
Image = pytest.importorskip("PIL.Image", reason="BackdoorBench's result files hold PIL images (Pillow)")

from sifternet import SifterNet, select_seeds  # noqa: E402
from sifternet.eval.attacks import badnet  # noqa: E402
from sifternet.eval.metrics import accuracy, attack_success_rate, robust_accuracy  # noqa: E402

# TorchScript (the script's --model file format) is deprecated from torch 2.13 on and
# warns; the script still accepts it, as sifternet.eval.models.load_torchscript does.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
ROOT = Path(__file__).resolve().parents[1]
TARGET = 0

# A nearest-class-mean classifier that answers TARGET whenever the bottom-right 3x3 patch
# is white (BadNet's trigger); `build` is the model factory the script accepts.
MODEL_SOURCE = """
import torch


class Backdoored(torch.nn.Module):
    def __init__(self, n_pixels: int, num_classes: int) -> None:
        super().__init__()
        self.register_buffer("means", torch.zeros(num_classes, n_pixels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = x.flatten(1) @ self.means.t() - 0.5 * (self.means * self.means).sum(1)
        white = (x[:, :, -3:, -3:].flatten(1).amin(1) > 0.999).float()
        return torch.cat([scores[:, :1] + 1e4 * white[:, None], scores[:, 1:]], 1)


def build(model_name, num_classes, state_dict):
    model = Backdoored(state_dict["means"].shape[1], num_classes)
    model.load_state_dict(state_dict)
    return model
"""


def _import(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and TorchScript look classes up here
    spec.loader.exec_module(module)
    return module


script = _import("backdoorbench_purify", ROOT / "scripts" / "backdoorbench_purify.py")


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """Clean train/test splits of the sample, their .npz files, the model and the trigger."""
    folder = tmp_path_factory.mktemp("bench")
    with np.load(ROOT / "sifternet" / "data" / "mnist_sample.npz", allow_pickle=False) as data:
        images, labels = data["images"], data["labels"].astype(np.int64)
    train, test = (images[0::2], labels[0::2]), (images[1::2], labels[1::2])
    np.savez(folder / "train.npz", images=train[0], labels=train[1])
    np.savez(folder / "test.npz", images=test[0], labels=test[1])
    (folder / "bb_backdoored.py").write_text(MODEL_SOURCE)
    factory = _import("bb_backdoored", folder / "bb_backdoored.py")
    means = np.stack([train[0][train[1] == c].mean(0).ravel() / 255 for c in range(10)])
    state = {"means": torch.from_numpy(means).float()}
    net = factory.build("backdoored-mean", 10, state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.script and save, see pytestmark
        torch.jit.script(net).save(str(folder / "model.pt"))
    # every test image, in a shuffled order: the original indices key the purification,
    # and the target class's own images must not count towards ASR and RA
    index = np.random.default_rng(0).permutation(len(test[1]))
    return dict(
        folder=folder,
        test=test,
        train=train,
        net=net,
        state=state,
        index=index,
        triggered=badnet(test[0][index]),
    )


def write_result(bench, folder: Path, layout: str) -> Path:
    """attack_result.pt in BackdoorBench 2.x (in memory / PNG on disk) or 1.x layout."""
    images, index = bench["triggered"], bench["index"]
    originals = bench["test"][1][index]
    if layout.startswith("v2"):
        if layout == "v2-disk":  # written at attack time under another root, then moved
            stored = {}
            for i, image, label in zip(index, images, originals):
                moved = folder / "bd_test_dataset" / str(label) / f"{i}.png"
                moved.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(image).save(moved)
                stored[int(i)] = {
                    "path": f"/gone/record/bd_test_dataset/{label}/{i}.png",
                    "other_info": [TARGET, int(label)],
                }
        else:
            stored = {
                int(i): (Image.fromarray(im), TARGET, int(y)) for i, im, y in zip(index, images, originals)
            }
        bd_test = {
            "bd_data_container": {"save_folder_path": None, "data_dict": stored, "save_file_format": ".png"},
            "getitem_all": True,
            "getitem_all_switch": False,
            "original_index_array": index,
            "poison_indicator": np.ones(len(index)),
            "save_folder_path": None,
        }
    else:
        x = (
            [Image.fromarray(im) for im in images]
            if layout == "v1-pil"
            else torch.from_numpy(images[:, None]).float()
        )  # 1.x's early NCHW float tensors
        bd_test = {
            "x": x,
            "y": torch.full((len(index),), TARGET),
            "original_index": index,
            "original_targets": torch.from_numpy(originals),
        }
    result = {
        "model_name": "backdoored-mean",
        "num_classes": 10,
        "model": bench["state"],
        "data_path": "data/mnist",
        "img_size": [28, 28, 1],
        "clean_data": "mnist",
        "bd_train": None,
        "bd_test": bd_test,
    }
    path = folder / "attack_result.pt"
    torch.save(result, path)
    return path


def expected_rows(bench, mode="repair", normalise=lambda x: x) -> list[dict]:
    """ACC / ASR / RA computed here with the API and the metrics, not the script."""
    seeds, seed_labels = select_seeds(*bench["train"], 1, seed=0)
    purifier = (SifterNet.repairing() if mode == "repair" else SifterNet()).fit(seeds, seed_labels)
    (clean, labels), index = bench["test"], bench["index"]

    def predict(images):
        with torch.no_grad():
            x = torch.from_numpy(images[:, None].astype(np.float32) / 255)
            return bench["net"].eval()(normalise(x)).argmax(1).numpy()

    rows = []
    for name, clean_in, triggered_in in (
        ("none", clean, bench["triggered"]),
        ("sifternet", purifier.purify(clean), purifier.purify(bench["triggered"], indices=index)),
    ):
        on_triggered = predict(triggered_in)
        rows.append(
            {
                "defense": name,
                "acc": accuracy(predict(clean_in), labels),
                "asr": attack_success_rate(on_triggered, labels[index], TARGET),
                "ra": robust_accuracy(on_triggered, labels[index], TARGET),
            }
        )
    return rows


def assert_rows(report: Path, want: list[dict]) -> None:
    rows = json.loads(report.read_text())["rows"]
    assert [row["defense"] for row in rows] == [row["defense"] for row in want]
    for got, expected in zip(rows, want):
        for metric in ("acc", "asr", "ra"):
            assert got[metric] == pytest.approx(expected[metric], abs=1e-12), (got["defense"], metric)


def run_script(bench, result: Path, *extra: str) -> int:
    folder = bench["folder"]
    return script.main(
        [
            str(result),
            "--allow-pickle",
            "--clean-test",
            str(folder / "test.npz"),
            "--clean-train",
            str(folder / "train.npz"),
            "--per-class",
            "1",
            *extra,
        ]
    )


@pytest.mark.parametrize(
    ("layout", "mode"),
    [
        ("v2-memory", "repair"),
        ("v2-disk", "repair"),
        ("v1-array", "repair"),
        ("v1-pil", "repair"),
        ("v2-memory", "paper"),
    ],
)
def test_metrics_match_an_independent_computation(bench, tmp_path, layout, mode, capsys):
    result = write_result(bench, tmp_path, layout)
    report = tmp_path / "report.json"
    model = str(bench["folder"] / "model.pt")
    assert run_script(bench, result, "--model", model, "--mode", mode, "--json", str(report)) == 0
    want = expected_rows(bench, mode)
    assert_rows(report, want)
    assert want[0]["asr"] == 1.0  # the backdoor works on the unpurified images
    assert want[1]["asr"] < want[0]["asr"]
    assert "| sifternet |" in capsys.readouterr().out


def test_model_factory_with_normalisation(bench, tmp_path):
    result = write_result(bench, tmp_path, "v2-memory")
    report = tmp_path / "report.json"
    factory = f"{bench['folder'] / 'bb_backdoored.py'}:build"
    assert (
        run_script(bench, result, "--model", factory, "--mean", "0.5", "--std", "0.25", "--json", str(report))
        == 0
    )
    want = expected_rows(bench, normalise=lambda x: (x - 0.5) / 0.25)
    assert_rows(report, want)
    assert want != expected_rows(bench)  # the normalisation changes the answers


def test_purifier_model_file_instead_of_clean_train(bench, tmp_path):
    result = write_result(bench, tmp_path, "v2-memory")
    SifterNet.repairing().fit(*select_seeds(*bench["train"], 1, seed=0)).save(tmp_path / "purifier.npz")
    report = tmp_path / "report.json"
    status = script.main(
        [
            str(result),
            "--allow-pickle",
            "--model",
            str(bench["folder"] / "model.pt"),
            "--clean-test",
            str(bench["folder"] / "test.npz"),
            "--purifier",
            str(tmp_path / "purifier.npz"),
            "--json",
            str(report),
        ]
    )
    assert status == 0
    assert_rows(report, expected_rows(bench))


def test_refuses_the_pickle_without_consent(bench, tmp_path, capsys):
    result = write_result(bench, tmp_path, "v2-memory")
    folder = bench["folder"]
    status = script.main(
        [
            str(result),
            "--model",
            str(folder / "model.pt"),
            "--clean-test",
            str(folder / "test.npz"),
            "--clean-train",
            str(folder / "train.npz"),
        ]
    )
    assert status == 1
    assert "is a Python pickle" in capsys.readouterr().err


def model_args(bench) -> tuple[str, str]:
    return "--model", str(bench["folder"] / "model.pt")


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_a_result_without_original_indices_is_refused_in_one_line(bench, tmp_path, capsys):
    result = write_result(bench, tmp_path, "v1-array")
    bd_test = torch.load(result, weights_only=False)["bd_test"]
    del bd_test["original_index"]
    torch.save({"bd_test": bd_test}, tmp_path / "no_index.pt")
    assert run_script(bench, tmp_path / "no_index.pt", *model_args(bench)) == 1
    assert "bd_test: no 'original_index' entry" in one_line(capsys.readouterr().err)


def test_clean_labels_that_disagree_are_refused_in_one_line(bench, tmp_path, capsys):
    result = write_result(bench, tmp_path, "v1-array")
    images, labels = bench["test"]
    np.savez(tmp_path / "shuffled.npz", images=images, labels=np.roll(labels, 1))
    status = script.main(
        [
            str(result),
            "--allow-pickle",
            *model_args(bench),
            "--clean-test",
            str(tmp_path / "shuffled.npz"),
            "--clean-train",
            str(bench["folder"] / "train.npz"),
        ]
    )
    assert status == 1
    assert "labels disagree with bd_test's original labels" in one_line(capsys.readouterr().err)


def test_an_existing_report_is_kept_and_refused_in_one_line(bench, tmp_path, capsys):
    result = write_result(bench, tmp_path, "v1-array")
    (tmp_path / "taken.json").write_text("{}")
    assert run_script(bench, result, *model_args(bench), "--json", str(tmp_path / "taken.json")) == 1
    assert "already exists" in one_line(capsys.readouterr().err)
    assert (tmp_path / "taken.json").read_text() == "{}"
