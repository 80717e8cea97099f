"""Render pytest-benchmark JSON into benchmarks/REPORT.md and PNG plots.

    python benchmarks/report.py --run          # run the benchmarks, then render
    python benchmarks/report.py results.json   # render saved results

Writes REPORT.md (medians, speed-ups against the baseline measured in the same run, the
machine) beside this file, and, when matplotlib is installed, samples.png (time against
samples, purification and CNN inference, 1 and 2 threads) and threads.png (speed-up from
1 to 2 threads).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent


def load(path: Path) -> dict:
    data = json.loads(path.read_text())
    if "benchmarks" not in data:
        raise SystemExit(f"{path}: not pytest-benchmark JSON (no 'benchmarks')")
    return data


def rate(bench: dict) -> float:
    return bench["extra_info"].get("images", 1) / bench["stats"]["min"]


def group_tables(benches: list[dict]) -> list[str]:
    lines = []
    groups = defaultdict(list)
    for b in benches:
        groups[b["group"]].append(b)
    for group, items in sorted(groups.items()):
        baseline = next((b for b in items if "baseline" in b["name"]), None)
        lines += [
            f"### {group}",
            "",
            "| benchmark | median ms | min ms | items/s | vs baseline |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for b in sorted(items, key=lambda b: b["name"]):
            ratio = f"{rate(b) / rate(baseline):.1f}x" if baseline and b is not baseline else ""
            lines.append(
                f"| `{b['name']}` | {1e3 * b['stats']['median']:.2f} | {1e3 * b['stats']['min']:.2f} | "
                f"{rate(b):,.0f} | {ratio} |"
            )
        lines.append("")
    return lines


def cost_table(benches: list[dict]) -> list[str]:
    cells = defaultdict(dict)
    for b in benches:
        info = b["extra_info"]
        if "flops_per_image" in info:
            cells[(info["n"], info["p"])][info["representation"]] = (info, b["stats"]["min"] / info["images"])
    if not cells:
        return []
    lines = [
        "### Work per image and the kernel's choice (500 steps, 1 thread)",
        "",
        "The paper counts 2N^2 FLOPs per full sweep of a dense network (2N per step).",
        "",
        "| N | P | dense FLOPs/image | overlap FLOPs/image | auto picks | dense us/image "
        "| overlap us/image | faster |",
        "| ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    for (n, p), reps in sorted(cells.items()):
        if len(reps) < 2:
            continue
        (d_info, d_t), (o_info, o_t) = reps["dense"], reps["overlap"]
        faster = "dense" if d_t < o_t else "overlap"
        lines.append(
            f"| {n} | {p} | {d_info['flops_per_image']:,.0f} | {o_info['flops_per_image']:,.0f} | "
            f"{d_info['picked']} | {1e6 * d_t:.2f} | {1e6 * o_t:.2f} | {faster} |"
        )
    return lines + [""]


def samples_table(benches: list[dict]) -> tuple[list[str], dict]:
    series = defaultdict(dict)
    for b in benches:
        info = b["extra_info"]
        if "stage" in info:
            series[(info["stage"], info["threads"])][info["samples"]] = b["stats"]["min"]
    if not series:
        return [], series
    counts = sorted({c for s in series.values() for c in s})
    keys = sorted(series)
    lines = [
        "### Fig. 6: purification and inference time against samples (GTSRB, seconds)",
        "",
        "| samples | "
        + " | ".join(f"{stage}, {t} thread(s)" for stage, t in keys)
        + " | purify / inference (2 threads) |",
        "| ---: | " + " | ".join("---:" for _ in keys) + " | ---: |",
    ]
    for c in counts:
        row = [f"{series[k].get(c, float('nan')):.4f}" for k in keys]
        p, i = series.get(("purify", 2), {}).get(c), series.get(("inference", 2), {}).get(c)
        lines.append(
            f"| {c} | " + " | ".join(row) + f" | {p / i:.2f} |"
            if p and i
            else f"| {c} | " + " | ".join(row) + " | |"
        )
    return lines + [""], series


def plots(series: dict, benches: list[dict]) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return ["(plots skipped: matplotlib is not installed)"]
    written = []
    if series:
        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        for (stage, threads), points in sorted(series.items()):
            xs = sorted(points)
            ax.loglog(xs, [points[x] for x in xs], marker="o", label=f"{stage}, {threads} thread(s)")
        ax.set_xlabel("samples (GTSRB images)")
        ax.set_ylabel("seconds")
        ax.legend(fontsize="small")
        ax.grid(True, which="both", alpha=0.3)
        fig.tight_layout()
        fig.savefig(HERE / "samples.png", dpi=110)
        plt.close(fig)
        written.append("![time against samples](samples.png)")
    pairs = defaultdict(dict)
    for b in benches:
        threads = b.get("params", {}) or {}
        if "threads" in threads and b["group"] in (
            "W1 recall",
            "purify GTSRB",
            "Hebbian training P=4300 N=1024",
        ):
            pairs[b["group"]][threads["threads"]] = b["stats"]["min"]
    pairs = {g: t for g, t in pairs.items() if 1 in t and 2 in t}
    if pairs:
        fig, ax = plt.subplots(figsize=(5.5, 3.0))
        names = sorted(pairs)
        ax.bar(names, [pairs[g][1] / pairs[g][2] for g in names])
        ax.axhline(2.0, color="grey", linestyle="--", linewidth=1)
        ax.set_ylabel("speed-up, 1 -> 2 threads")
        fig.tight_layout()
        fig.savefig(HERE / "threads.png", dpi=110)
        plt.close(fig)
        written.append("![speed-up from 1 to 2 threads](threads.png)")
    return written


#: What each baseline computes (benchmarks/baselines.py); each is timed in the same run
#: as the rows it is compared with, and the recall baselines are checked bit-identical.
BASELINES = [
    (
        "W1 recall",
        (
            "`test_w1_numpy_baseline`: the Hebbian overlap form vectorised over the "
            "batch in NumPy, on 1,000 images of channel 0 (rates are per (image, channel) plane, like "
            "the kernel rows'). Overlaps m = s Xi^T for all rows at once (B x P); then per step, for "
            "all rows together: one gather of the visited neuron's pattern column xi_i (the kernel's "
            "random streams), the field h_i = xi_i . m - P s_i (`einsum`), s_i <- +1 if h_i >= 0 "
            "else -1, and the rank-1 update m += 2 s_i xi_i of the rows whose neuron flipped. "
            "Integers held in float32, exact since every sum is at most P N in magnitude. "
            "Single-threaded apart from the one BLAS product that starts the overlaps. The kernel "
            "rows check channel 1's first 1,000 images against it bit for bit."
        ),
    ),
    (
        "Hebbian training",
        (
            "`test_hebbian_training_numpy_baseline`: NumPy's float32 `X.T @ X` "
            "(BLAS, all cores), the same product without the zeroed diagonal."
        ),
    ),
    (
        "binarise GTSRB",
        (
            "`test_binarise_per_image_opencv_baseline`: local mean k = 11 one image "
            "at a time, OpenCV `boxFilter` per channel plane, split and merged per image; checked equal "
            "to the batched binarisation."
        ),
    ),
    (
        "baselines on 20 images",
        (
            "`test_python_loop_baseline`: the style of common NumPy Hopfield "
            "code, one image and one neuron at a time, h_i = W_i . s with float64 weights; checked equal "
            "to the kernel."
        ),
    ),
    (
        "GIL: Python threads",
        (
            "`test_gil_is_released[1]`: channel 0 recalled by one Python thread "
            "calling the kernel with one OpenMP thread, against two Python threads on halves."
        ),
    ),
]


def baselines_section() -> list[str]:
    lines = ["### Baselines", ""]
    lines += [f"- {group}: {text}" for group, text in BASELINES]
    return lines + [""]


def render(data: dict) -> str:
    machine = data.get("machine_info", {})
    cpu = machine.get("cpu", {})
    benches = data["benchmarks"]
    samples, series = samples_table(benches)
    lines = [
        "# sifternet benchmark report",
        "",
        f"Machine: {cpu.get('brand_raw', machine.get('processor', '?'))}, "
        f"{cpu.get('count', '?')} logical cores, "
        f"Python {machine.get('python_version', '?')}; run {data.get('datetime', '?')}. "
        "Times are the best and "
        "median of a few rounds; ratios compare with the baseline measured in the same run.",
        "",
        "Regenerate: `python benchmarks/report.py --run`.",
        "",
    ]
    lines += baselines_section() + cost_table(benches) + samples + plots(series, benches) + [""]
    lines += group_tables(benches)
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", type=Path, help="pytest-benchmark JSON to render")
    parser.add_argument("--run", action="store_true", help="run `pytest benchmarks` first")
    args = parser.parse_args()
    results = args.results or HERE / "results.json"
    if args.run:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                str(HERE),
                "-q",
                "-p",
                "no:cacheprovider",
                f"--benchmark-json={results}",
            ],
            check=True,
        )
    if not results.exists():
        raise SystemExit(f"{results}: not found (pass --run to run the benchmarks)")
    (HERE / "REPORT.md").write_text(render(load(results)))
    print(f"wrote {HERE / 'REPORT.md'}")


if __name__ == "__main__":
    main()
