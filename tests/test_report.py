"""The full evaluation report: summary tables from run folders, and `sifternet report`."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from sifternet.eval.summary import PAPER_TABLE5, load_runs, run_name, summary_markdown, write_summary

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
HAS_TORCH = importlib.util.find_spec("torch") is not None


def fake_run(folder: Path, dataset: str, attack: str, acc: float, asr: float) -> None:
    run = folder / run_name(dataset, attack)
    run.mkdir(parents=True)
    rows = [dict(defense=name, description="", acc=acc * scale, asr=asr * scale, ra=0.5, seconds=0.25,
                 images_per_s=4000.0) for name, scale in (("ifmv", 0.5), ("none", 1.0), ("sifternet", 0.9))]
    (run / "report.json").write_text(json.dumps({
        "settings": {"n_eval": 500}, "rows": rows, "notes": [],
        "detectors": [dict(detector="strip", description="", auc=0.8125, seconds=1.5)],
        "finetuned": [dict(defense="sifternet", description="", epochs=2, n_images=9, acc=0.7, asr=0.1,
                           ra=0.6, raw_acc=0.75, raw_asr=0.95, seconds=3.0)],
    }))


def test_summary_gathers_every_run_in_the_papers_layout(tmp_path):
    fake_run(tmp_path, "gtsrb", "blended", 0.9, 0.8)
    fake_run(tmp_path, "mnist", "badnet", 0.5, 0.25)
    (tmp_path / "not-a-run").mkdir()
    runs = load_runs(tmp_path)
    assert list(runs) == [("mnist", "badnet"), ("gtsrb", "blended")]  # the tables' order
    text = summary_markdown(runs, command="sifternet report x")
    defenses = text.split("## Defenses")[1].split("##")[0]
    assert "| data set, attack | none | sifternet | ifmv |" in defenses  # known order first
    assert "| MNIST, BadNet corner | 50.00 / 25.00 | 45.00 / 22.50 | 25.00 / 12.50 |" in defenses
    assert "| GTSRB, Blended | 90.00 / 80.00 | 81.00 / 72.00 | 45.00 / 40.00 |" in defenses
    assert "| MNIST, BadNet corner | 0.812 |" in text  # STRIP's AUC
    assert "| MNIST, BadNet corner | sifternet | 2 | 70.00 / 10.00 | 75.00 / 95.00 |" in text
    clean, after = PAPER_TABLE5["mnist"]
    assert f"| MNIST | {clean[0]:.2f} / {clean[1]:.2f} | {after[0]:.2f} / {after[1]:.2f} | 50.00 / 25.00 |" in text
    written = write_summary(tmp_path, command="sifternet report x")
    assert [p.name for p in written[:2]] == ["summary.md", "summary.json"]
    assert set(json.loads(written[1].read_text())["runs"]) == {"mnist-badnet", "gtsrb-blended"}


def test_summary_of_a_folder_without_runs_says_what_it_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="no run folders with report.json"):
        write_summary(tmp_path)


def test_report_refuses_unknown_names_and_missing_data(tmp_path, capsys):
    from sifternet.cli import main

    assert main(["report", str(tmp_path), "--out", str(tmp_path / "r"), "--datasets", "mnist,svhn"]) == 1
    assert "--datasets: expected some of mnist,fmnist,gtsrb,cifar10, got 'mnist,svhn'" in capsys.readouterr().err
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "r"), "--datasets", "mnist"]) == 1
    assert "missing mnist_test.npz" in capsys.readouterr().err


@pytest.mark.skipif(not HAS_TORCH, reason="PyTorch is not installed (optional extra 'eval')")
@pytest.mark.skipif(not (SHARED / "mnist_test.npz").exists(), reason="../shared/data/mnist_test.npz not found")
def test_report_command_on_a_small_slice(tmp_path, capsys):
    from sifternet.cli import main

    out = tmp_path / "report"
    args = ["report", str(SHARED), "--out", str(out), "--datasets", "mnist", "--attacks", "badnet",
            "--limit", "800", "--defenses", "none,sifternet,sifternet-repair", "--detectors", "strip,teco"]
    assert main(args) == 0
    run = json.loads((out / "mnist-badnet" / "report.json").read_text())
    assert [r["defense"] for r in run["rows"]] == ["none", "sifternet", "sifternet-repair"]
    assert [d["detector"] for d in run["detectors"]] == ["strip", "teco"]
    summary = (out / "summary.md").read_text()
    assert "| MNIST, BadNet corner |" in summary and "strip AUC" in summary
    assert (out / "mnist-badnet.pt").exists()  # the model cache sits beside the runs
    capsys.readouterr()
    assert main(args) == 1  # a finished run is never silently redone
    assert "pass --resume to keep finished runs" in capsys.readouterr().err
    before = (out / "mnist-badnet" / "report.json").read_text()
    assert main([*args, "--resume"]) == 0
    assert (out / "mnist-badnet" / "report.json").read_text() == before
