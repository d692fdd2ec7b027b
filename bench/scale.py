"""Cost per case at LiTS scale: N full-size cases through the real workflow up to the training sets, for several N.

The cases are the project's phantoms resampled to LiTS's size: 512x512 in-plane and a slice count drawn from
74 + 913 * Beta(2, 2.7) (LiTS: 74 to 987 slices, 448 on average; this draw's mean is 462), the same physical extent,
stored as LiTS stores them (uncompressed .nii, int16 scans, uint8 labels). The sets are nested: case k is the same
for every N, so N = 8 holds N = 4's cases. For each N, `snakemake --until split`, then every case's slices and crops
as targets, run the default config on a `lits` folder of the first N cases (ingest checks them, preprocess makes the
128 px slices, crop the tumour stage's boxes; the folder's files read once before, so that every N reads them from
memory), and the jobs' Snakemake benchmarks give each job's wall time, CPU time and peak RSS (ingest, one job for all
cases, run three times: its fastest run). Then, in a fresh process each, the stage-1 training set and the tumour
stage's are loaded as training loads them (`load_slice_set`), and their memory is set against the README's formula
(3 bytes a pixel: a float16 image and uint8 labels; 48 KiB a 128 px slice).
Each job's fixed start-up (Python, imports, Snakemake's shell) is measured in the same run, on four small cases (64x64,
8 slices) through the same workflow, and set apart: the net time per voxel is a stage's seconds less its jobs' start-up.
Targets: net time per million voxels flat within 15% from the smallest N to the largest, peak RSS flat (bounded by the
largest volume: its ratio to that volume's size), the training sets within 10% of the formula. Writes
bench/results/scale.md.

    python bench/scale.py [--cases 4 8 16] [--work DIR] [--cores 2]
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from measure import write_result
from scipy import ndimage

from liverseg.data.synthetic import Case, case_seed, make_case, write_case
from liverseg.devices import machine_description

ROOT = Path(__file__).resolve().parents[1]
SEED, SIZE = 2024, 512
LITS_SLICES, LITS_CASES = 58_638, 131
STAGES = ("ingest", "preprocess", "crop")
INGEST_RUNS = 3

# a child process's training set: load it as training does, report seconds, resident memory before and after
LOAD = """
import json, sys, time, psutil
from pathlib import Path
from liverseg.training.dataset import load_slice_set
files, slices = sorted(Path(sys.argv[1]).glob("*.npz")), int(sys.argv[2])
process = psutil.Process()
before = process.memory_info().rss
started = time.perf_counter()
data = load_slice_set(files, slices)
seconds = time.perf_counter() - started
after = process.memory_info().rss
print(json.dumps({"slices": len(data), "pixels": int(data.images[0].numel()), "seconds": seconds,
                  "held": after - before}))
"""


def resized_case(number: int, size: int, slices: int) -> Case:
    """Phantom `number` resampled to `size` x `size` and `slices` slices, over the same physical extent."""
    case = make_case(case_seed(SEED, number))
    zoom = np.array([size, size, slices]) / case.image.shape
    image = ndimage.zoom(case.image, zoom, order=1, grid_mode=True, mode="nearest")
    label = ndimage.zoom(case.label, zoom, order=0, grid_mode=True, mode="nearest")
    return Case(image, label, tuple(np.array(case.spacing) / zoom), case.orientation)


def write_cases(raw: Path, count: int, size: int = SIZE, slice_counts=None) -> None:
    """The first `count` cases in `raw` (LiTS layout), written once and kept for the larger N; full-size unless told."""
    raw.mkdir(parents=True, exist_ok=True)
    if slice_counts is None:
        slice_counts = np.rint(74 + 913 * np.random.default_rng(SEED).beta(2.0, 2.7, size=count)).astype(int)
    for number, slices in enumerate(slice_counts):
        if (raw / f"segmentation-{number}.nii").exists():
            continue
        case = resized_case(number, size, int(slices))
        partial = raw / ".partial"  # a case appears whole or not at all
        partial.mkdir(exist_ok=True)
        write_case(case, partial / f"volume-{number}.nii", partial / f"segmentation-{number}.nii")
        for name in (f"volume-{number}.nii", f"segmentation-{number}.nii"):
            (partial / name).rename(raw / name)
        print(f"case {number}: {case.image.shape}", flush=True)


def read_through(folder: Path) -> None:
    """Read every file once, so that each N's ingest (the first job to read them) reads them from memory, as the
    jobs after it do: else whichever N reads a case first pays the disk for it."""
    for path in sorted(folder.iterdir()):
        with open(path, "rb") as stream:
            while stream.read(1 << 24):
                pass


def run_workflow(work: Path, raw: Path, n: int, cores: int, name: str = "") -> Path:
    """The workflow up to the training sets for the first n cases; their experiment folder."""
    name = name or str(n)
    folder = work / f"lits_{name}"
    folder.mkdir(exist_ok=True)
    for file in [f"{kind}-{k}.nii" for k in range(n) for kind in ("volume", "segmentation")]:
        if not (folder / file).exists():
            os.link(raw / file, folder / file)
    read_through(folder)
    config = yaml.safe_load((ROOT / "config.yaml").read_text())  # the default's, on this folder read in place
    config |= {"experiment": f"scale_{name}", "data": {"source": "lits", "path": str(folder)}}
    (work / f"scale_{name}.yaml").write_text(yaml.safe_dump(config))
    command = ["snakemake", "-s", str(ROOT / "Snakefile"), "--cores", str(cores), "--resources", "gpu=1"]
    command += ["--configfile", str(work / f"scale_{name}.yaml")]
    environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    experiment = work / "experiments" / f"scale_{name}"
    benchmarks = experiment / "benchmarks"
    # ingest, a single job, is run INGEST_RUNS times and its fastest run kept, as timeit does: one run moved by up to
    # half its time between repeats
    for run in range(INGEST_RUNS):
        until = ["--until", "split"] if run == 0 else ["--until", "ingest", "--forcerun", "ingest"]
        subprocess.run([*command, *until], cwd=work, env=environment, check=True, capture_output=True)
        (benchmarks / "ingest").mkdir(exist_ok=True)
        (benchmarks / "ingest.tsv").rename(benchmarks / "ingest" / f"run_{run}.tsv")
    # then every case's slices and tumour-stage crops, named (the checkpoints are done: they are planned at once)
    cases = pd.read_csv(experiment / "data/cases.tsv", sep="\t")["case"]
    targets = [f"data/{kind}/{case}.npz" for case in cases for kind in ("slices", "crops/tumour_unet")]
    command[3:3] = targets  # before the options that take several values
    subprocess.run(command, cwd=work, env=environment, check=True, capture_output=True)
    return experiment


def job_costs(experiment: Path) -> pd.DataFrame:
    """Per stage: jobs, voxels, wall seconds (summed over jobs) and per million voxels, the largest peak RSS, the
    largest case's voxels, and each job's seconds (by case for the per-case stages)."""
    cases = pd.read_csv(experiment / "data/cases.tsv", sep="\t")
    voxels = cases.set_index("case")["shape"].map(lambda shape: np.prod([int(s) for s in shape.split("x")]))
    rows = []
    for stage in STAGES:
        files = sorted((experiment / "benchmarks" / stage).rglob("*.tsv"))
        tables = {path.stem: pd.read_csv(path, sep="\t").iloc[0] for path in files}
        if stage == "ingest":  # one job, run several times: its fastest run
            tables = {stage: min(tables.values(), key=lambda t: t["s"])}
        seconds = {case: float(t["s"]) for case, t in tables.items()}
        touched = voxels if stage == "ingest" else voxels[[path.stem for path in files]]
        rows.append(
            {
                "stage": stage,
                "jobs": len(tables),
                "mvoxels": touched.sum() / 1e6,
                "seconds": sum(seconds.values()),
                "cpu_seconds": sum(float(t["cpu_time"]) for t in tables.values()),
                "s_per_mvoxel": sum(seconds.values()) / (touched.sum() / 1e6),
                "peak_rss_mib": max(float(t["max_rss"]) for t in tables.values()),
                "largest_mvoxels": touched.max() / 1e6,
                "job_seconds": seconds,
            }
        )
    return pd.DataFrame(rows).set_index("stage")


def training_set(folder: Path, slices: int) -> dict:
    """Load time and memory held of the training set made of `folder`'s cases, in a fresh process."""
    out = subprocess.run([sys.executable, "-c", LOAD, str(folder), str(slices)], check=True, capture_output=True)
    measured = json.loads(out.stdout.decode().splitlines()[-1])
    measured["formula"] = measured["slices"] * measured["pixels"] * 3  # float16 image and uint8 labels
    return measured


def disk(paths) -> float:
    return sum(path.stat().st_size for path in paths) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, nargs="+", default=[4, 8, 16], help="the N to run, nested")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "scale_work", help="kept between runs")
    parser.add_argument("--cores", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    raw = args.work / "raw"
    started = time.perf_counter()
    write_cases(raw, max(args.cases))
    print(f"cases written in {time.perf_counter() - started:.0f} s", flush=True)
    os.sync()  # else their writeback to disk runs beside the first N's jobs and slows them
    # each job's start-up: the same workflow on four cases too small to cost anything else
    write_cases(args.work / "small", 4, size=64, slice_counts=[8] * 4)
    small = job_costs(run_workflow(args.work, args.work / "small", 4, args.cores, name="start_up"))
    start_up = {  # a job's wall and CPU seconds
        stage: (
            small.loc[stage, "seconds"] / small.loc[stage, "jobs"],
            small.loc[stage, "cpu_seconds"] / small.loc[stage, "jobs"],
        )
        for stage in STAGES
    }
    stages, sets, disks = {}, [], []
    for n in sorted(args.cases):
        experiment = run_workflow(args.work, raw, n, args.cores)
        stages[n] = job_costs(experiment)
        for what, folder, slices in (
            ("stage 1 slices", experiment / "data/slices", 1),
            ("tumour stage crops", experiment / "data/crops/tumour_unet", 3),
        ):
            sets.append({"n": n, "set": what} | training_set(folder, slices))
        raw_mib = disk(path for path in (args.work / f"lits_{n}").iterdir())
        derived = disk(path for path in (experiment / "data").rglob("*.npz"))
        stage1_slices = next(s["slices"] for s in sets if s["n"] == n and s["set"] == "stage 1 slices")
        disks.append({"n": n, "raw": raw_mib, "derived": derived, "slices": stage1_slices})
    write_result("scale", table(stages, start_up, sets, disks, args.cores))


def flatness(ratio: float) -> str:
    return f"x{ratio:.2f} ({'flat' if abs(ratio - 1) <= 0.15 else 'NOT flat'} within 15%)"


def table(stages: dict, start_up: dict, sets: list[dict], disks: list[dict], cores: int) -> str:
    small, large = min(stages), max(stages)
    lines = [
        "# Cost per case at LiTS scale: ingest, preprocess and crop of N full-size cases, and the training sets",
        "",
        f"{machine_description()}; snakemake --cores {cores}; 512x512 cases with 74 to 987 slices (see the script).",
        "Net: a stage's seconds (wall, or CPU over all its threads) less its jobs' start-up, measured in the same run on",
        "four 64x64 cases of 8 slices through the same workflow (a job's wall and CPU seconds: "
        + ", ".join(f"{stage} {wall:.2f} and {cpu:.2f}" for stage, (wall, cpu) in start_up.items())
        + "). Largest case: its volume and labels as stored (3 bytes a voxel).",
        "",
        "| N | stage | jobs | million voxels | wall s per million voxels | net wall | net CPU "
        "| peak RSS of a job (MiB) | largest case (MiB) | peak RSS / largest case |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    wall, cpu, held = {}, {}, {}
    for n, costs in stages.items():
        for stage, r in costs.iterrows():
            wall[n, stage] = (r.seconds - r.jobs * start_up[stage][0]) / r.mvoxels
            cpu[n, stage] = (r.cpu_seconds - r.jobs * start_up[stage][1]) / r.mvoxels
            largest = r.largest_mvoxels * 3e6 / 2**20
            held[n, stage] = r.peak_rss_mib / largest
            lines.append(
                f"| {n} | {stage} | {r.jobs} | {r.mvoxels:,.0f} | {r.s_per_mvoxel:.4f} | {wall[n, stage]:.4f} "
                f"| {cpu[n, stage]:.4f} | {r.peak_rss_mib:,.0f} | {largest:,.0f} | {held[n, stage]:.2f} |"
            )
    lines += ["", f"Per stage, N = {large} against N = {small}:", ""]
    for stage in STAGES:
        a, b = (stages[n].loc[stage] for n in (small, large))
        line = (
            f"- {stage}: net wall time per voxel {flatness(wall[large, stage] / wall[small, stage])}, net CPU time "
            f"{flatness(cpu[large, stage] / cpu[small, stage])}, wall time with the start-up "
            f"x{b.s_per_mvoxel / a.s_per_mvoxel:.2f}; largest peak RSS x{b.peak_rss_mib / a.peak_rss_mib:.2f}, per "
            f"largest case x{held[large, stage] / held[small, stage]:.2f}"
        )
        if stage != "ingest":  # the nested sets' shared cases: scale's own effect, without the change of case mix
            shared = sum(b.job_seconds[case] for case in a.job_seconds) / sum(a.job_seconds.values())
            line += f"; N = {small}'s {a.jobs} cases took x{shared:.2f} of their time at N = {small}"
        lines.append(line)
    lines += [
        "",
        "| N | training set | slices | load (s) | held (MiB) | formula: 3 bytes a pixel (MiB) | held / formula |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in sets:
        ratio = s["held"] / s["formula"]
        lines.append(
            f"| {s['n']} | {s['set']} | {s['slices']:,} | {s['seconds']:.1f} | {s['held'] / 2**20:,.0f} "
            f"| {s['formula'] / 2**20:,.0f} | {ratio:.3f}{'' if abs(ratio - 1) <= 0.10 else ' (OUTSIDE 10%)'} |"
        )
    per_slice = disks[-1]["raw"] / disks[-1]["slices"], disks[-1]["derived"] / disks[-1]["slices"]
    lines += [
        "",
        "| N | raw cases (MiB) | made by the workflow (MiB) | per case: raw / made (MiB) |",
        "|---|---|---|---|",
        *[
            f"| {d['n']} | {d['raw']:,.0f} | {d['derived']:,.0f} | {d['raw'] / d['n']:,.0f} / {d['derived'] / d['n']:,.1f} |"
            for d in disks
        ],
        "",
        f"For LiTS ({LITS_CASES} cases, {LITS_SLICES:,} slices), at these sizes per slice: "
        f"{LITS_SLICES * per_slice[0] / 1024:,.1f} GiB of uncompressed scans and labels, and "
        f"{LITS_SLICES * per_slice[1] / 1024:,.1f} GiB made by the workflow up to the training sets.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
