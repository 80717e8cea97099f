"""Adaptive checks of the query mode on the unknown-trigger grid's models: a trigger larger
than the stated patch bound, and two triggers in one image.

Usage::

    python scripts/query_checks.py DATA_DIR REPORT_DIR [--datasets mnist,fmnist,gtsrb,cifar10]

``REPORT_DIR`` is a ``sifternet report DATA_DIR --grid unknown`` folder: its cached models
are loaded (a missing one is trained and cached there, as the report does). Prints a
Markdown table of Acc / ASR (%) and the mean model queries per image:

- *larger than the bound*: the White 5x5 centre models, query mode with its default bound
  (``patch_size=5``) and with a bound of 3, which the trigger exceeds;
- *two triggers*: the random-position checkerboard models (learned anywhere), each
  triggered test image stamped with a second checkerboard at another image's position.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from sifternet import SifterNet
from sifternet.eval import cli as eval_cli
from sifternet.eval import summary
from sifternet.eval.evaluate import seeds_from
from sifternet.eval.metrics import accuracy, attack_success_rate
from sifternet.query import QueryRepair


def cell(data_dir: Path, report: Path, dataset: str, attack: str) -> dict:
    """The report's run of ``dataset`` x ``attack``: its evaluation images, model and seeds."""
    data, threat = summary.DATASETS[dataset], summary.ATTACKS[attack]
    name = summary.run_name(dataset, attack)
    spec = eval_cli.Backdoor(
        str(data_dir / data.file),
        threat.attack,
        threat.params_for(data),
        epochs=data.epochs + threat.extra_epochs,
        model_cache=str(report / f"{name}.pt"),
        poison_rate=threat.poison_rate,
    )
    run = eval_cli.backdoored(spec, purifier=data.purifier)
    seeds = seeds_from(run.images, run.labels, run.split, data.per_class, 0)
    clean = run.images[run.split.evaluation]
    return {
        "clean": clean,
        "truth": run.labels[run.split.evaluation],
        "attack": run.attack,
        "model": run.model,
        "seeds": seeds,
        "label": data.label,
    }


def row(name: str, run: dict, triggered: np.ndarray, purify) -> str:
    """One table row: Acc on the clean images and ASR on ``triggered`` after ``purify``."""
    model, truth = run["model"], run["truth"]
    clean_out, clean_queries = purify(run["clean"])
    triggered_out, triggered_queries = purify(triggered)
    acc = accuracy(model.predict(clean_out), truth)
    asr = attack_success_rate(model.predict(triggered_out), truth, 0)
    queries = (
        "-" if clean_queries is None else f"{np.mean(clean_queries):.1f} / {np.mean(triggered_queries):.1f}"
    )
    return f"| {run['label']} | {name} | {100 * acc:.2f} | {100 * asr:.2f} | {queries} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("report", type=Path)
    parser.add_argument("--datasets", default="mnist,fmnist,gtsrb,cifar10")
    args = parser.parse_args()
    print("| data set | check | Acc % | ASR % | queries per image (clean / triggered) |")
    print("| --- | --- | ---: | ---: | --- |")
    for dataset in args.datasets.split(","):
        for attack, checks in (("white-centre-5", "bound"), ("random-checker", "two")):
            run = cell(args.data_dir, args.report, dataset, attack)
            default = SifterNet.repairing().fit(*run["seeds"])
            apply = run["attack"].apply
            if checks == "bound":
                title, triggered = "White 5x5 centre", apply(run["clean"])
                plans = [("query mode, bound 5", 5), ("query mode, bound 3", 3)]
            else:  # a second checkerboard: the batch reversed takes another image's position
                title, triggered = "two checkerboards", apply(apply(run["clean"])[::-1])[::-1]
                plans = [("query mode, bound 5", 5)]
            print(row(f"{title}: none", run, triggered, lambda x: (x, None)))
            print(row(f"{title}: default repair", run, triggered, lambda x: (default.purify(x), None)))  # noqa: B023
            for name, bound in plans:
                query = QueryRepair(run["model"].predict, default, patch_size=bound)

                def purify(images: np.ndarray, query: QueryRepair = query) -> tuple:
                    done = query.purify_queried(images)
                    return done.images, done.queries

                print(row(f"{title}: {name}", run, triggered, purify), flush=True)


if __name__ == "__main__":
    main()
