"""Markdown table of Acc / ASR per defense from `sifternet evaluate` report folders.

Usage: python scripts/summarize_evaluation.py FOLDER [FOLDER ...]
Each FOLDER holds one sub-folder per run (DATA-SETTING/report.json, as written by
scripts/run_evaluation.sh); runs of the same name in several folders are merged.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ORDER = ["none", "sifternet", "sifternet-repair", "sifternet-binary-gate", "binarise-only",
         "erase-visited", "seed-consensus", "median-3x3", "ifmv"]
DATASETS = {"mnist": "MNIST", "fmnist": "Fashion-MNIST", "gtsrb": "GTSRB"}
SETTINGS = {"bottom_right": "BadNet corner", "interior": "BadNet interior", "blended": "Blended",
            "sig": "SIG", "wanet": "WaNet"}


def main() -> None:
    runs: dict[str, dict[str, dict]] = {}
    for folder in map(Path, sys.argv[1:]):
        for report in sorted(folder.glob("*/report.json")):
            rows = json.loads(report.read_text())["rows"]
            merged = runs.setdefault(report.parent.name, {})
            for row in rows:
                merged.setdefault(row["defense"], row)
    defenses = [d for d in ORDER if any(d in r for r in runs.values())]
    print("| data set, attack | " + " | ".join(defenses) + " |")
    print("| --- | " + " | ".join("---" for _ in defenses) + " |")
    for data in DATASETS:
        for setting in SETTINGS:
            rows = runs.get(f"{data}-{setting}")
            if not rows:
                continue
            cells = [f"{100 * rows[d]['acc']:.2f} / {100 * rows[d]['asr']:.2f}" if d in rows else "-" for d in defenses]
            print(f"| {DATASETS[data]}, {SETTINGS[setting]} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
