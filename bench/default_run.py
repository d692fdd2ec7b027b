"""The README's run command from clean clones of several commits, one after the other on this machine: the wall time of
each, its ratio to the baseline's (the issues' time budgets are ratios to d1850c1's default run on the same machine),
its epochs and its test figures, so that a budget is checked on figures from one run of this script.

Each commit is cloned from this repository into the work folder and run with this environment's packages (its own
`src/` first on the path), by `snakemake --cores 8 --resources gpu=1`, as a user runs it. Nothing else should run on the
machine meanwhile. Writes bench/results/default_run.md.

    python bench/default_run.py [--commits HEAD d1850c1] [--work DIR]
"""

import argparse
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from measure import write_result

from liverseg.devices import cpu_has_native_bf16, machine_description

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "d1850c1"
COMMAND = ["snakemake", "--cores", "8", "--resources", "gpu=1"]  # the README's run command
SUMMARY = "experiments/synthetic/results/summary.md"
# the summary's rows quoted, by the start of their label
ROWS = {
    "liver": "Liver Dice",
    "tumour": "Tumour Dice, cases holding tumour",
    "precision": "Lesion precision",
    "epoch": "Training time per epoch",
    "tumour_epoch": "Tumour stage time per epoch",
}


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "CPU"


def summary_rows(path: Path) -> dict[str, list[str]]:
    """The quoted rows of a summary table, each as its cells after the label (missing rows left out)."""
    rows = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        for key, label in ROWS.items():
            if cells[0].startswith(label) and key not in rows:
                rows[key] = cells[1:]
    return rows


def timed_run(commit: str, work: Path, order: int) -> dict:
    """Clone `commit` into `work`, run the README's command there; its wall time, exit code and summary rows."""
    clone = work / f"{order}_{commit}"
    subprocess.run(["rm", "-rf", str(clone)], check=True)
    git("clone", "-q", str(ROOT), str(clone))
    git("checkout", "-q", commit, cwd=clone)
    environment = {
        **os.environ,
        "PYTHONPATH": str(clone / "src"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    with open(clone.with_suffix(".log"), "w") as log:
        started = time.perf_counter()
        code = subprocess.run(COMMAND, cwd=clone, env=environment, stdout=log, stderr=subprocess.STDOUT).returncode
        wall = time.perf_counter() - started
    print(f"{commit}: exit {code}, {wall:.0f} s", flush=True)
    return {
        "commit": commit,
        "subject": textwrap.shorten(git("log", "-1", "--format=%s", commit), 60, placeholder=" ..."),
        "code": code,
        "wall": wall,
        "rows": summary_rows(clone / SUMMARY),
    }


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {round(seconds % 60)} s"


def table(runs: list[dict], baseline: str) -> str:
    base = next((run for run in runs if run["commit"] == baseline), None)
    lines = [
        f"# The default run against {baseline}'s, from clean clones on one machine",
        "",
        f"{machine_description()}, {cpu_name()}, native bfloat16: {'yes' if cpu_has_native_bf16() else 'no'}; "
        f"`{' '.join(COMMAND)}`, the runs one after the other in the order below. Figures are the summary's on the "
        "test cases: liver Dice, tumour Dice on cases holding tumour and lesion precision, per entry (unet / "
        "resnet50_unet / unet_cascade / resnet50_cascade); epochs: the U-Net's, the tumour stage's and the ResNet50 "
        "U-Net's seconds.",
        "",
        f"| commit | what it is | exit | wall time | ratio to {baseline} | liver Dice | tumour Dice | lesion precision "
        "| epochs (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        rows = run["rows"]
        ratio = f"{run['wall'] / base['wall']:.2f}" if base and base["code"] == 0 and run["code"] == 0 else "-"
        # columns: unet, resnet50_unet, unet_cascade (whose tumour stage both cascades share), resnet50_cascade
        epoch, tumour_epoch = rows.get("epoch", ["-"] * 4), rows.get("tumour_epoch", ["-"] * 4)
        epochs = [epoch[0], tumour_epoch[2], epoch[1]]
        lines.append(
            f"| `{run['commit']}` | {run['subject']} | {run['code']} | {minutes(run['wall'])} | {ratio} | "
            + " | ".join(" / ".join(rows.get(key, ["-"])) for key in ("liver", "tumour", "precision"))
            + f" | {', '.join(cell.removesuffix(' s') for cell in epochs) or '-'} |"
        )
    return "\n".join([*lines, ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", nargs="+", default=["HEAD", BASELINE], help="run in this order")
    parser.add_argument("--baseline", default=BASELINE, help="the commit the ratios are to")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "default_run_work")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    commits = [git("rev-parse", "--short", commit) for commit in args.commits]
    baseline = git("rev-parse", "--short", args.baseline)
    runs = [timed_run(commit, args.work, order) for order, commit in enumerate(commits, 1)]
    write_result("default_run", table(runs, baseline))


if __name__ == "__main__":
    main()
