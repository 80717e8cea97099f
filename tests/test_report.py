"""The full evaluation report: summary tables from run folders, and `sifternet report`."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from sifternet.cli import CliError, build_parser, main
from sifternet.eval import cli as eval_cli
from sifternet.eval import summary as sm
from sifternet.eval.attacks import make_attack
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


# -- the unknown-trigger grid ------------------------------------------------------------

COUNT_LINE = "cells with ASR <= 5 % within 2 points of undefended accuracy"


def test_paper_grid_is_todays_plan():
    assert eval_cli.report_plan("paper") == [
        (d, a) for d in ("mnist", "fmnist", "gtsrb", "cifar10") for a in sm.GRIDS["paper"]
    ]
    assert sm.GRIDS["paper"] == ("badnet", "badnet-interior", "blended", "sig", "wanet")
    assert build_parser("report").parse_args(["report", "d", "--out", "o"]).grid == "paper"


def test_unknown_grid_adds_patches_input_aware_and_adaptive_attackers_to_the_paper_attacks():
    new = [a for a in sm.GRIDS["unknown"] if a not in sm.GRIDS["paper"]]
    assert new == [
        "white-centre",
        "black-interior",
        "grey-corner",
        "colour-interior",
        "random-checker",
        "white-centre-5",
        "input-aware",
        "content-patch",
        "repair-aware",
    ]
    assert set(sm.GRIDS["paper"]) < set(sm.GRIDS["unknown"])
    assert len(eval_cli.report_plan("unknown")) == 4 * 14
    assert sm.ATTACKS["repair-aware"].adaptive_purifier == "sifternet-repair"
    assert sm.ATTACKS["input-aware"].attack == eval_cli.INPUT_AWARE


STAMPED = [a for a in sm.GRIDS["unknown"] if sm.ATTACKS[a].attack != eval_cli.INPUT_AWARE]


@pytest.mark.parametrize("attack", STAMPED)
@pytest.mark.parametrize("dataset", list(sm.DATASETS))
def test_every_stamped_grid_trigger_applies_to_every_data_set(dataset, attack):
    data, spec = sm.DATASETS[dataset], sm.ATTACKS[attack]
    shape = (3, 28, 28) if data.grey else (3, 32, 32, 3)
    images = np.random.default_rng(0).integers(1, 255, shape, dtype=np.uint8)
    triggered = make_attack(spec.attack, **spec.params_for(data)).apply(images)
    assert triggered.shape == shape and (triggered != images).any()


@pytest.mark.parametrize(
    ("dataset", "value"),
    [("mnist", 90), ("fmnist", 90), ("gtsrb", (30, 200, 200)), ("cifar10", (30, 200, 200))],
)
def test_colour_patch_is_a_level_of_90_on_grey_data_sets(dataset, value):
    assert sm.ATTACKS["colour-interior"].params_for(sm.DATASETS[dataset]) == {
        "position": "interior",
        "value": value,
    }


def test_report_refuses_an_attack_of_another_grid(tmp_path):
    with pytest.raises(CliError, match=r"--attacks \(of the paper grid\): expected some of badnet,"):
        report([str(tmp_path), "--out", str(tmp_path / "r"), "--attacks", "white-centre"])


def test_report_entry_takes_a_triggers_grey_parameters_rate_and_epochs(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(eval_cli, "run_evaluate", lambda *args, **options: calls.append(args))
    spec = sm.AttackSpec(
        "test", "badnet", {"value": (1, 2, 3)}, {"value": 2}, poison_rate=0.2, extra_epochs=3
    )
    monkeypatch.setitem(sm.ATTACKS, "test-trigger", spec)
    eval_cli.run_report_entry(tmp_path, tmp_path / "r", "fmnist", "test-trigger", eval_cli.Evaluation())
    backdoor = calls[0][0]
    assert (backdoor.attack_params, backdoor.poison_rate, backdoor.epochs) == ({"value": 2}, 0.2, 6 + 3)
    eval_cli.run_report_entry(tmp_path, tmp_path / "r", "gtsrb", "test-trigger", eval_cli.Evaluation())
    assert calls[1][0].attack_params == {"value": (1, 2, 3)} and calls[1][0].epochs == 8 + 3
    assert backdoor.adaptive_purifier is None


def test_report_entry_gives_an_adaptive_attacker_the_defenders_seed_count(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(eval_cli, "run_evaluate", lambda *args, **options: calls.append(args))
    for dataset in ("fmnist", "gtsrb"):
        eval_cli.run_report_entry(tmp_path, tmp_path / "r", dataset, "repair-aware", eval_cli.Evaluation())
    assert [(b.adaptive_purifier, b.adaptive_per_class) for b, *_ in calls] == [
        ("sifternet-repair", sm.DATASETS["fmnist"].per_class),
        ("sifternet-repair", sm.DATASETS["gtsrb"].per_class),
    ]


class Measured(Exception):
    """Raised by a stand-in run with what it was asked to measure."""


def report_measures(tmp_path, *options: str) -> eval_cli.Evaluation:
    """What ``sifternet report`` would measure with ``options`` (the run is not made)."""

    def entry(data, out, dataset, attack, measured, **kwargs):
        raise Measured(measured)

    for spec in sm.DATASETS.values():
        (tmp_path / spec.file).touch()
    args = [
        "report",
        str(tmp_path),
        "--out",
        str(tmp_path / "r"),
        "--datasets",
        "mnist",
        "--attacks",
        "badnet",
    ]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(eval_cli, "run_report_entry", entry)
        with pytest.raises(Measured) as raised:
            main([*args, *options])
    return raised.value.args[0]


def test_unknown_grid_defaults_to_the_sifternet_defenses_the_floor_and_five_purifier_seeds(tmp_path):
    measured = report_measures(tmp_path, "--grid", "unknown")
    assert (measured.detectors, measured.purifier_seeds) == ((), 5)
    assert measured.defenses[0] == "none" and set(sm.FLOOR_DEFENSES) < set(measured.defenses)
    assert {"sifternet", "sifternet-repair", "sifternet-repair-dark"} < set(measured.defenses)
    assert "ifmv" not in measured.defenses
    paper = report_measures(tmp_path)
    assert (paper.detectors, paper.purifier_seeds) == (("strip", "teco"), 1)
    mine = report_measures(tmp_path, "--grid", "unknown", "--detectors", "strip", "--purifier-seeds", "2")
    assert (mine.detectors, mine.purifier_seeds) == (("strip",), 2)


def test_evaluate_takes_input_aware_as_an_attack_without_options():
    args = build_parser("evaluate").parse_args(["evaluate", "d.npz", "--out", "o", "--attack", "input-aware"])
    assert eval_cli._backdoor(args).attack == "input-aware" and eval_cli._backdoor(args).attack_params == {}


def test_evaluate_parses_the_badnet_options():
    args = build_parser("evaluate").parse_args(
        "evaluate d.npz --out o --value 30,200,200 --position centre --size 5 --pattern random "
        "--pattern-seed 4 --poison-rate 0.25".split()
    )
    backdoor = eval_cli._backdoor(args)
    assert backdoor.attack_params == {
        "position": "centre",
        "size": 5,
        "value": (30, 200, 200),
        "pattern": "random",
        "pattern_seed": 4,
    }
    assert backdoor.poison_rate == 0.25
    assert (
        eval_cli._backdoor(build_parser("evaluate").parse_args(["evaluate", "d", "--out", "o"])).poison_rate
        is None
    )
    assert build_parser("evaluate").parse_args("evaluate d --out o --value 160".split()).value == 160


@pytest.mark.parametrize("option", [["--value", "1,2"], ["--value", "white"], ["--position", "a,b"]])
def test_evaluate_refuses_malformed_badnet_options(option, capsys):
    with pytest.raises(SystemExit):
        build_parser("evaluate").parse_args(["evaluate", "d", "--out", "o", *option])
    assert "expected" in capsys.readouterr().err


def test_poison_rate_outside_zero_one_is_refused_before_training(tmp_path):
    data = tmp_path / "d.npz"
    np.savez(data, images=np.zeros((20, 8, 8), np.uint8), labels=np.arange(20) % 2)
    with pytest.raises(ValueError, match=r"poison_rate: expected a number in \(0, 1\), got 1.5"):
        eval_cli.backdoored(eval_cli.Backdoor(str(data), poison_rate=1.5))


def grid_run(folder: Path, dataset: str, attack: str, rows: dict) -> None:
    """A fake run of the grid: defense -> (Acc %, ASR %)."""
    run = folder / run_name(dataset, attack)
    run.mkdir(parents=True)
    rows_json = [
        dict(defense=d, description="", acc=a / 100, asr=r / 100, ra=0.0, seconds=1.0, images_per_s=2.0)
        for d, (a, r) in rows.items()
    ]
    (run / "report.json").write_text(json.dumps({"settings": {"n_eval": 100}, "rows": rows_json}))


@pytest.fixture()
def grid(tmp_path):
    """Three fake grid runs: one learned trigger with two floor defenses, one not learned,
    one learned on GTSRB."""
    grid_run(
        tmp_path,
        "mnist",
        "white-centre",
        {
            "none": (90, 99),
            "sifternet-repair": (89, 1),  # removes it; beats jpeg-75 (lower ASR, acc 89 >= 88 - 2)
            "sifternet": (60, 0),  # lower ASR but 28 points below the floor's accuracy
            "median-3x3": (88, 4),  # ASR 4 = jpeg-75's 4: not lower, does not beat it
            "jpeg-75": (88, 4),  # the best floor: within 2 points of 90, lowest ASR
            "bits-3": (50, 0),  # lower ASR but loses 40 points: not the best floor
        },
    )
    grid_run(
        tmp_path,
        "mnist",
        "black-interior",
        {"none": (90, 79.9), "sifternet-repair": (90, 1), "sifternet": (90, 90), "jpeg-75": (90, 50)},
    )
    grid_run(
        tmp_path,
        "gtsrb",
        "white-centre",
        {
            "none": (95, 100),
            "sifternet-repair": (92.9, 5),
            "sifternet": (93, 5),
            "jpeg-75": (60, 80),
            "bits-3": (50, 90),
        },
    )
    return tmp_path


KEYS = [("mnist", "white-centre"), ("mnist", "black-interior"), ("gtsrb", "white-centre")]


def test_best_floor_is_the_lowest_asr_within_two_points_else_the_most_accurate(grid):
    runs = load_runs(grid, KEYS)
    cells = sm.grid_cells(runs, floors=("jpeg-75", "bits-3"))
    assert cells[("mnist", "white-centre")].best_floor == "jpeg-75"
    assert cells[("gtsrb", "white-centre")].best_floor == "jpeg-75"  # none within 2 points: 60 > 50


def test_floor_marks_defenses_that_do_not_beat_the_best_floor(grid):
    cells = sm.grid_cells(load_runs(grid, KEYS), floors=("jpeg-75", "bits-3"))
    assert cells[("mnist", "white-centre")].not_beating_floor == ("sifternet", "median-3x3")
    assert cells[("gtsrb", "white-centre")].not_beating_floor == ()
    assert cells[("mnist", "black-interior")] == sm.GridCell(False, "jpeg-75", ())  # not learned: no marks


def test_beats_and_removes_at_the_edges():
    floor = {"acc": 0.90, "asr": 0.10}
    assert sm.beats({"acc": 0.88, "asr": 0.09}, floor) and not sm.beats({"acc": 0.879, "asr": 0.0}, floor)
    assert not sm.beats({"acc": 1.0, "asr": 0.10}, floor)
    assert sm.removes({"acc": 0.88, "asr": 0.05}, floor) and not sm.removes(
        {"acc": 0.88, "asr": 0.051}, floor
    )
    assert not sm.removes({"acc": 0.879, "asr": 0.0}, floor)


def test_count_lines_leave_out_triggers_not_learned(grid):
    runs = load_runs(grid, KEYS)
    counts = sm.grid_counts(runs, sm.grid_cells(runs, floors=("jpeg-75", "bits-3")))
    # learned: MNIST white-centre and GTSRB white-centre (the black patch reached 79.9 % only)
    assert counts["sifternet-repair"] == (1, 2)  # GTSRB: 92.9 is 2.1 points below 95
    assert counts["sifternet"] == (1, 2)  # MNIST: ASR 0 at 30 points; GTSRB: 93 within 2
    assert counts["median-3x3"] == (1, 1) and counts["bits-3"] == (0, 2)


def test_grid_markdown_flags_marks_and_counts(grid):
    text = sm.grid_markdown(
        load_runs(grid, KEYS), command="sifternet report x --grid unknown", floors=("jpeg-75", "bits-3")
    )
    assert (
        "| data set, trigger | none | sifternet | sifternet-repair | median-3x3 | jpeg-75 | bits-3 |" in text
    )
    assert (
        "| MNIST, White 3x3 centre | 90.00 / 99.00 | 60.00 / 0.00 † | 89.00 / 1.00 | 88.00 / 4.00 † |" in text
    )
    assert (
        "| MNIST, Black 3x3 interior (not learned) | 90.00 / 79.90 | 90.00 / 90.00 | 90.00 / 1.00 | - |"
        in text
    )
    assert f"- `sifternet-repair`: {COUNT_LINE}: 1 of 2" in text
    assert f"- `median-3x3`: {COUNT_LINE}: 1 of 1" in text
    assert "Reproduce: `sifternet report x --grid unknown`" in text


def test_grid_count_table_splits_the_counts_by_data_set_and_kind(grid):
    text = sm.grid_markdown(load_runs(grid, KEYS), floors=("jpeg-75", "bits-3"))
    header = "| defense | MNIST | GTSRB | patch triggers | all |"
    assert header in text
    assert (
        "| sifternet-repair | 1 of 1 | 0 of 1 | 1 of 2 | 1 of 2 |" in text
    )  # MNIST's black patch: not learned
    assert "| median-3x3 | 1 of 1 | - | 1 of 1 | 1 of 1 |" in text


def test_grid_markdown_shows_the_asr_over_purifier_seeds(grid):
    path = grid / run_name("gtsrb", "white-centre") / "report.json"
    run = json.loads(path.read_text())
    run["purifier_seeds"] = [
        dict(defense="sifternet", seeds=[0, 1, 2], asr=[0.02, 0.05, 0.08], mean=0.05, worst=0.08)
    ]
    path.write_text(json.dumps(run))
    text = sm.grid_markdown(load_runs(grid, KEYS))
    assert "## ASR over purifier seeds" in text
    assert "| GTSRB, White 3x3 centre | 5.00 / 8.00 (3) |" in text
    assert "| MNIST, White 3x3 centre | - |" in text


def test_grid_without_floor_defenses_marks_nothing(grid):
    text = sm.grid_markdown(load_runs(grid, KEYS), floors=("shrinkpad",))
    assert "No floor defense ran" in text and " †" not in text.split("## Acc / ASR")[1]


def test_write_summary_of_the_grid_writes_the_heat_map(grid):
    written = write_summary(grid, keys=KEYS, command="c", grid="unknown")
    assert [p.name for p in written] == ["summary.md", "summary.json", "summary-grid.png"]
    assert written[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(written[1].read_text())
    assert data["grid"] == "unknown" and data["cells"]["mnist-black-interior"]["learned"] is False
    assert set(data["counts"]) >= {"sifternet", "sifternet-repair"}
    assert not (grid / "summary.png").exists()


def test_write_summary_of_the_grid_without_matplotlib_removes_a_stale_heat_map(grid, monkeypatch):
    (grid / "summary-grid.png").write_bytes(b"an older heat map")
    monkeypatch.setattr(sm, "_heat_map", lambda runs, path: None)  # as without matplotlib
    assert [p.name for p in write_summary(grid, keys=KEYS, grid="unknown")] == ["summary.md", "summary.json"]
    assert not (grid / "summary-grid.png").exists()


def test_write_summary_refuses_an_unknown_grid(grid):
    with pytest.raises(ValueError, match="grid: expected one of .*'paper'.*, got 'other'"):
        write_summary(grid, grid="other")


@pytest.fixture(scope="module")
def tiny_grid(tmp_path_factory):
    """`sifternet report --grid unknown` end to end on a data folder holding the shipped
    MNIST sample as mnist_test.npz: two triggers, 300 images, run once."""
    if not HAS_TORCH:
        pytest.skip("PyTorch is not installed (optional extra 'eval')")
    folder = tmp_path_factory.mktemp("grid")
    sample = np.load(Path(eval_cli.__file__).parents[1] / "data" / "mnist_sample.npz")
    (folder / "data").mkdir()
    np.savez(folder / "data" / "mnist_test.npz", images=sample["images"], labels=sample["labels"])
    args = [
        "report",
        str(folder / "data"),
        "--out",
        str(folder / "out"),
        "--grid",
        "unknown",
        "--datasets",
        "mnist",
        "--attacks",
        "white-centre,random-checker",
        "--limit",
        "300",
        "--defenses",
        "sifternet-repair,jpeg-75,bits-3",
        "--detectors",
        "",
    ]
    assert main(args) == 0
    return args, folder / "out"


def test_tiny_grid_writes_the_table_count_lines_and_heat_map(tiny_grid):
    out = tiny_grid[1]
    summary = (out / "summary.md").read_text()
    assert "| data set, trigger | none | sifternet-repair | jpeg-75 | bits-3 |" in summary  # none added
    assert "| MNIST, White 3x3 centre" in summary and "| MNIST, Random-colour 4x4 checkerboard" in summary
    for defense in ("sifternet-repair", "jpeg-75", "bits-3"):
        assert f"- `{defense}`: {COUNT_LINE}: " in summary
    assert (out / "summary-grid.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in out.glob("*.pt")) == ["mnist-random-checker.pt", "mnist-white-centre.pt"]


def test_tiny_grid_records_each_triggers_parameters(tiny_grid):
    run = json.loads((tiny_grid[1] / "mnist-random-checker" / "report.json").read_text())
    assert run["settings"]["attack_params"] == {
        "size": 4,
        "pattern": "random-checkerboard",
        "position": "random",
    }
    assert run["settings"]["poison_rate"] == sm.ATTACKS["random-checker"].poison_rate == 0.2


def test_tiny_grid_resume_keeps_finished_runs(tiny_grid):
    args, out = tiny_grid
    before = (out / "mnist-white-centre" / "report.json").read_text()
    assert main([*args, "--resume"]) == 0
    assert (out / "mnist-white-centre" / "report.json").read_text() == before
    assert "summary-grid.png" in {p.name for p in out.iterdir()}
