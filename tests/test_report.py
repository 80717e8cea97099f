"""The full evaluation report: summary tables from run folders, and `sifternet report`."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from sifternet.cli import CliError, build_parser, main
from sifternet.eval import cli as eval_cli
from sifternet.eval.summary import PAPER_TABLE5, load_runs, run_name, summary_markdown, write_summary

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
HAS_TORCH = importlib.util.find_spec("torch") is not None


def fake_run(folder: Path, dataset: str, attack: str, acc: float, asr: float) -> None:
    run = folder / run_name(dataset, attack)
    run.mkdir(parents=True)
    rows = [
        dict(
            defense=name,
            description="",
            acc=acc * scale,
            asr=asr * scale,
            ra=0.5,
            seconds=0.25,
            images_per_s=4000.0,
        )
        for name, scale in (("ifmv", 0.5), ("none", 1.0), ("sifternet", 0.9))
    ]
    (run / "report.json").write_text(
        json.dumps(
            {
                "settings": {"n_eval": 500},
                "rows": rows,
                "notes": [],
                "detectors": [dict(detector="strip", description="", auc=0.8125, seconds=1.5)],
                "finetuned": [
                    dict(
                        defense="sifternet",
                        description="",
                        epochs=2,
                        n_images=9,
                        acc=0.7,
                        asr=0.1,
                        ra=0.6,
                        raw_acc=0.75,
                        raw_asr=0.95,
                        seconds=3.0,
                    )
                ],
            }
        )
    )


@pytest.fixture()
def runs(tmp_path):
    """A report folder with two fake runs and a folder that is not a run."""
    fake_run(tmp_path, "gtsrb", "blended", 0.9, 0.8)
    fake_run(tmp_path, "mnist", "badnet", 0.5, 0.25)
    (tmp_path / "not-a-run").mkdir()
    return tmp_path


@pytest.fixture()
def summary(runs):
    return summary_markdown(load_runs(runs), command="sifternet report x")


def test_load_runs_finds_the_runs_in_the_tables_order(runs):
    assert list(load_runs(runs)) == [("mnist", "badnet"), ("gtsrb", "blended")]


def test_defense_table_puts_known_defenses_first(summary):
    defenses = summary.split("## Defenses")[1].split("##")[0]
    assert "| data set, attack | none | sifternet | ifmv |" in defenses
    assert "| MNIST, BadNet corner | 50.00 / 25.00 | 45.00 / 22.50 | 25.00 / 12.50 |" in defenses
    assert "| GTSRB, Blended | 90.00 / 80.00 | 81.00 / 72.00 | 45.00 / 40.00 |" in defenses


def test_detector_table_shows_each_auc(summary):
    assert "| MNIST, BadNet corner | 0.812 |" in summary  # STRIP's AUC


def test_finetune_table_shows_each_fine_tuning(summary):
    assert "| MNIST, BadNet corner | sifternet | 2 | 70.00 / 10.00 | 75.00 / 95.00 |" in summary


def test_paper_table_stands_beside_the_run(summary):
    clean, after = PAPER_TABLE5["mnist"]
    assert (
        f"| MNIST | {clean[0]:.2f} / {clean[1]:.2f} | {after[0]:.2f} / {after[1]:.2f} | 50.00 / 25.00 |"
        in summary
    )


def test_write_summary_writes_markdown_and_json_of_every_run(runs):
    written = write_summary(runs, command="sifternet report x")
    assert [p.name for p in written[:2]] == ["summary.md", "summary.json"]
    assert set(json.loads(written[1].read_text())["runs"]) == {"mnist-badnet", "gtsrb-blended"}


def test_summary_of_a_folder_without_runs_says_what_it_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="no run folders with report.json"):
        write_summary(tmp_path)


def report(argv: list[str]) -> None:
    """Run ``sifternet report`` as ``main`` does, but let its error propagate."""
    args = build_parser("report").parse_args(["report", *argv])
    args.run(args)


def test_report_refuses_unknown_data_set_names(tmp_path):
    with pytest.raises(
        CliError, match="--datasets: expected some of mnist,fmnist,gtsrb,cifar10, got 'mnist,svhn'"
    ):
        report([str(tmp_path), "--out", str(tmp_path / "r"), "--datasets", "mnist,svhn"])


def test_report_refuses_missing_data_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing mnist_test.npz"):
        report([str(tmp_path), "--out", str(tmp_path / "r"), "--datasets", "mnist"])


def test_report_entry_is_the_evaluate_command_with_its_settings(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(eval_cli, "run_evaluate", lambda *args, **options: calls.append((args, options)))
    common = eval_cli.Evaluation(
        defenses=("none", "sifternet"), detectors=("strip",), detector_images=250, strip_copies=50
    )
    eval_cli.run_report_entry(tmp_path, tmp_path / "r", "gtsrb", "badnet-interior", common, limit=800)
    (backdoor, evaluation, out), options = calls[0]
    assert out == tmp_path / "r" / "gtsrb-badnet-interior" and options["overwrite"] is True
    args = build_parser("evaluate").parse_args(
        [
            "evaluate",
            str(tmp_path / "gtsrb.npz"),
            "--out",
            str(out),
            "--binarize",
            "local_mean",
            "--block-size",
            "15",
            "--steps",
            "200",
            "--per-class",
            "10",
            "--epochs",
            "8",
            "--position",
            "interior",
            "--limit",
            "800",
            "--model-cache",
            str(tmp_path / "r" / "gtsrb-badnet-interior.pt"),
            "--defenses",
            "none,sifternet",
            "--detectors",
            "strip",
            "--detector-images",
            "250",
            "--strip-copies",
            "50",
        ]
    )
    assert backdoor == eval_cli._backdoor(args)
    assert evaluation == eval_cli._evaluation(args)


@pytest.fixture(scope="module")
def small_report(tmp_path_factory):
    """The command and the folder of a report on an MNIST slice, run once."""
    if not HAS_TORCH:
        pytest.skip("PyTorch is not installed (optional extra 'eval')")
    if not (SHARED / "mnist_test.npz").exists():
        pytest.skip("the shared mnist_test.npz is not found")
    out = tmp_path_factory.mktemp("report") / "report"
    args = [
        "report",
        str(SHARED),
        "--out",
        str(out),
        "--datasets",
        "mnist",
        "--attacks",
        "badnet",
        "--limit",
        "800",
        "--defenses",
        "none,sifternet,sifternet-repair",
        "--detectors",
        "strip,teco",
    ]
    assert main(args) == 0
    return args, out


def test_report_runs_every_defense_and_detector(small_report):
    _, out = small_report
    run = json.loads((out / "mnist-badnet" / "report.json").read_text())
    assert [r["defense"] for r in run["rows"]] == ["none", "sifternet", "sifternet-repair"]
    assert [d["detector"] for d in run["detectors"]] == ["strip", "teco"]


def test_report_writes_the_summary(small_report):
    summary = (small_report[1] / "summary.md").read_text()
    assert "| MNIST, BadNet corner |" in summary and "strip AUC" in summary


def test_report_keeps_the_model_cache_beside_the_runs(small_report):
    assert (small_report[1] / "mnist-badnet.pt").exists()


def test_report_never_silently_redoes_a_finished_run(small_report):
    args, _ = small_report
    with pytest.raises(FileExistsError, match="pass --resume to keep finished runs"):
        report(args[1:])


def test_report_resume_keeps_finished_runs(small_report):
    args, out = small_report
    before = (out / "mnist-badnet" / "report.json").read_text()
    assert main([*args, "--resume"]) == 0
    assert (out / "mnist-badnet" / "report.json").read_text() == before
