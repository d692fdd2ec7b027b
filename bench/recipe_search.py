"""Variants of the default experiment's model entries, trained side by side on one device and scored on phantom designs
that no training draws (issue 19): what a change of an entry buys on designs the models never saw, seed against seed.

The data are the default experiment's (config.yaml: its 32 cases, split and preprocessing), with randomised phantoms
added to the training part for the variants that ask for them. Each variant (bench/recipe_search.yaml) trains through
the workflow's own preparation and epoch loop (`prepare_training`, then its `fit`; without the MLflow run) once per seed,
several at a time. Every stage-1 variant and cascade is then scored by `liverseg shifted`'s check (`check_shifted`) on
each design of the file: randomised designs drawn with a seed of their own, to choose by, and the designs of
docs/robustness.md with its seed 99, to report. The tables are rewritten as each design's scores come in, so a run
cut short keeps what it scored. Writes recipe_search.md and recipe_search.csv into bench/results (or --out).

    python bench/recipe_search.py [--variants bench/recipe_search.yaml] [--work DIR] [--jobs 6] [--threads 2]
        [--only VARIANT ...] [--seeds S ...] [--designs NAME ...] [--epochs N] [--cases N]
"""

import argparse
import contextlib
import multiprocessing
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, ThreadPoolExecutor, wait
from pathlib import Path

import pandas as pd
import torch
import yaml

from liverseg.cores import usable_cpus
from liverseg.data.cases import write_cases_table
from liverseg.data.crops import crop_case
from liverseg.data.randomised import RandomisedRanges, randomised_styles
from liverseg.data.slices import save_slices, slice_case
from liverseg.data.split import split_cases
from liverseg.data.synthetic import RANDOMISED_FIRST, generate_dataset
from liverseg.devices import machine_description
from liverseg.external.designs import check_shifted
from liverseg.training import resume
from liverseg.training.augment import AugmentSettings
from liverseg.training.settings import TrainSettings
from liverseg.training.setup import prepare_training

ROOT = Path(__file__).resolve().parent.parent
# (summary column, its name in the tables, which entries it is shown for)
SCORES = (
    ("liver_dice", "Liver Dice (per case)", "stage-1"),
    ("tumour_dice_cases_with_tumour", "Tumour Dice, cases holding tumour", "cascade"),
    ("lesion_recall_ge10mm", "Lesion recall, 10 mm and more", "cascade"),
    ("lesion_recall_lt10mm", "Lesion recall, under 10 mm", "cascade"),
    ("lesion_precision", "Lesion precision", "cascade"),
)


def entry_of(config: dict, variant: dict) -> dict:
    """A variant's model entry: config.yaml's, its keys changed (augment and train merged into the entry's own). It
    trains on the randomised phantoms unless it says `randomised_phantoms: false`, as in the workflow."""
    base, change = config["models"][variant["from"]], variant.get("change", {})
    entry = {"randomised_phantoms": True, **base, **change}
    for key in ("augment", "train"):
        entry[key] = {**base.get(key, {}), **change.get(key, {})}
    return entry


def model_name(variant: str, seed: int) -> str:
    return f"{variant}-s{seed}"


def make_data(config: dict, work: Path, phantoms: int, crops: list[dict], threads: int) -> tuple[dict, set[str]]:
    """The default experiment's cases and `phantoms` randomised ones in `work`: their slices, the crops of each crop
    setting (`work/crops/<k>`), the split; and the randomised cases' names."""
    synthetic, part = config["data"]["synthetic"], config["split"]
    raw = work / "raw"
    if not raw.exists():
        ranges = RandomisedRanges.from_dict(synthetic["randomised"]["ranges"])
        styles = randomised_styles(phantoms, synthetic["randomised"]["seed"], ranges)
        generate_dataset(raw, synthetic["cases"], synthetic["seed"], randomised=styles, threads=threads)
    table = write_cases_table(raw, "lits", work / "cases.tsv", work / "rejected.tsv", False, threads)
    randomised = {case for case in table["case"] if int(case.split("_")[1]) >= RANDOMISED_FIRST}
    split = split_cases(
        table, part["val_fraction"], part["seed"], part["test_fraction"], part["stratify_tumour"], sorted(randomised)
    )
    window, size = tuple(config["preprocess"]["window"]), config["preprocess"]["image_size"]

    def write(case: str, volume: str, label: str) -> None:
        slices = work / "slices" / f"{case}.npz"
        if not slices.exists():
            save_slices(slice_case(Path(volume), Path(label), window, size), slices)
        for k, crop in enumerate(crops):
            out = work / "crops" / str(k) / f"{case}.npz"
            if not out.exists():
                args = (crop["size"], crop["margin_mm"], crop["jitter_mm"], crop.get("liver_hu"))
                save_slices(crop_case(Path(volume), Path(label), window, *args), out)

    with ThreadPoolExecutor(threads) as pool:
        for done in [pool.submit(write, *row) for row in table[["case", "volume", "label"]].itertuples(index=False)]:
            done.result()
    return split, randomised


def train_job(job: dict) -> dict:
    """One variant at one seed, trained into its folder (best.pt, history.csv); its log beside them."""
    torch.set_num_threads(job["threads"])
    out_dir = job["out_dir"]
    out_dir.mkdir(parents=True, exist_ok=True)
    settings, augment = TrainSettings.from_config(job["settings"]), AugmentSettings.from_config(job["augment"])
    with open(out_dir / "train.log", "w") as log, contextlib.redirect_stdout(log):
        prepared = prepare_training(job["name"], job["entry"], settings, augment, job["train_files"], job["val_files"])
        started = time.perf_counter()
        table = prepared.fit(out_dir, lambda row: None)
    resume.discard(out_dir)
    seen = len(table) * prepared.data["train_slices"]
    return {"model": job["name"], "seconds": time.perf_counter() - started, "epochs": len(table), "seen": seen}


def score_job(job: dict) -> pd.DataFrame:
    """Some entries scored on one design by `liverseg shifted`'s check, on one thread; its log in its folder."""
    torch.set_num_threads(1)
    out_dir = job["out_dir"]
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "score.log", "w") as log, contextlib.redirect_stdout(log):
        summary = check_shifted(job["config"], job["models_dir"], job["cases"], job["seed"], out_dir, job["design"])
    if job["cascades_only"]:
        summary = summary[summary["model"].isin(job["config"]["cascades"])]
    return summary.assign(design=job["name"])


def training_jobs(config, variants, split, randomised, crops, work, threads, epochs) -> list[dict]:
    train_settings = {k: v for k, v in config["train"].items() if k != "threads"}
    jobs = []
    for name, variant in variants.items():
        entry = entry_of(config, variant)
        if "crop" in entry:
            pattern = f"crops/{crops.index(entry['crop'])}/{{}}.npz"
        else:
            pattern = "slices/{}.npz"

        files = {
            part: [work / pattern.format(c) for c in split[part] if entry["randomised_phantoms"] or c not in randomised]
            for part in ("train", "val")
        }
        for seed in variant["seeds"]:
            settings = {**train_settings, **entry["train"], "seed": seed}
            if epochs is not None:
                settings["epochs"] = epochs
                if settings.get("swa_start") is not None:  # a shorter run still averages, its last epoch at least
                    settings["swa_start"] = min(settings["swa_start"], epochs)
            jobs.append(
                {
                    "name": model_name(name, seed),
                    "entry": entry,
                    "settings": settings,
                    "augment": {**config["augment"], **entry["augment"]},
                    "train_files": files["train"],
                    "val_files": files["val"],
                    "out_dir": work / "models" / model_name(name, seed),
                    "threads": threads,
                }
            )
    # the longest first: they run beside the short ones instead of after them
    return sorted(jobs, key=lambda job: -job["settings"]["epochs"] * len(job["train_files"]))


def scoring_jobs(config, variants, cascades, designs, work, cases) -> list[dict]:
    """Per design, one job per stage-1 variant (its seeds) and one per cascade (seed with seed, beside its stage-1
    model, whose scores that job leaves out), so that each starts as soon as its own models are trained."""
    stage1 = [name for name, v in variants.items() if "crop" not in config["models"][v["from"]]]
    groups = {
        liver: ({model_name(liver, s): variants[liver] for s in variants[liver]["seeds"]}, {}) for liver in stage1
    }
    for name, cascade in cascades.items():
        models, chosen = {}, {}
        liver, tumour = variants[cascade["liver"]], variants[cascade["tumour"]]
        for seed in sorted(set(liver["seeds"]) & set(tumour["seeds"])):
            stages = {"liver": model_name(cascade["liver"], seed), "tumour": model_name(cascade["tumour"], seed)}
            models |= {stages["liver"]: liver, stages["tumour"]: tumour}
            chosen[model_name(name, seed)] = stages
        groups[name] = (models, chosen)
    return [
        {
            "needs": set(models),
            "name": design_name,
            "design": design.get("design", design_name),
            "cases": cases or design["cases"],
            "seed": design["seed"],
            "config": {**config, "models": {m: entry_of(config, v) for m, v in models.items()}, "cascades": chosen},
            "cascades_only": bool(chosen),
            "models_dir": work / "models",
            "out_dir": work / "scores" / design_name / group,
        }
        for design_name, design in designs.items()
        for group, (models, chosen) in groups.items()
    ]


def variant_of(model: str) -> tuple[str, str]:
    name, _, seed = model.rpartition("-s")
    return name, seed


def tables(scores: pd.DataFrame, trained: pd.DataFrame, plan: dict, header: list[str]) -> str:
    """The markdown: how each variant trained, then each score by variant and design (one value per seed)."""
    designs = [d for d in plan["designs"] if d in set(scores["design"])] if len(scores) else []
    lines = [*header, "", "## Training", ""]
    lines += [
        "| variant | from | change | seeds | epochs | slices seen / its base's | seconds on the device (each seed) |"
    ]
    lines += ["|---|---|---|---|---|---|---|"]
    if len(trained):
        trained = trained.assign(variant=[variant_of(m)[0] for m in trained["model"]])
        for name, variant in plan["variants"].items():
            rows = trained[trained["variant"] == name]
            base = trained[trained["variant"] == variant["from"]]
            if rows.empty:
                continue
            ratio = rows["seen"].mean() / base["seen"].mean() if len(base) else float("nan")
            seconds = " / ".join(f"{s:.0f}" for s in rows["seconds"])
            change = yaml.safe_dump(variant.get("change", {}), default_flow_style=True, width=1000).strip()
            change = "-" if change == "{}" else f"`{change}`"
            lines.append(
                f"| {name} | {variant['from']} | {change} | {len(rows)} | {rows['epochs'].iloc[0]} | {ratio:.2f} | {seconds} |"
            )
    if not len(scores):
        return "\n".join(lines) + "\n"
    scores = scores.assign(variant=[variant_of(m)[0] for m in scores["model"]])
    cascade_names = set(plan["cascades"])
    for column, title, kind in SCORES:
        names = [n for n in [*plan["variants"], *plan["cascades"]] if (n in cascade_names) == (kind == "cascade")]
        names = [n for n in names if n in set(scores["variant"])]
        if not names:
            continue
        lines += ["", f"## {title}", ""]
        lines += ["| " + " | ".join(["variant", *designs]) + " |", "|" + "---|" * (len(designs) + 1)]
        for name in names:
            cells = []
            for design in designs:
                got = scores[(scores["variant"] == name) & (scores["design"] == design)].sort_values("model")
                cells.append(" / ".join(f"{v:.3f}" for v in got[column]) or "-")
            lines.append("| " + " | ".join([name, *cells]) + " |")
    return "\n".join(lines) + "\n"


def run_jobs(trainings: list[dict], scorings: list[dict], a, on_result) -> list[str]:
    """Trainings `a.jobs` at a time, scorings `a.score_jobs` at a time, each as soon as the models it scores are trained,
    so that the CPU scores while the device trains; nothing new starts after `a.budget` seconds. What was left out."""
    spawn = multiprocessing.get_context("spawn")  # CUDA in the workers
    deadline, trained, running = time.perf_counter() + a.budget, set(), {}
    with (
        ProcessPoolExecutor(a.jobs, mp_context=spawn) as train_pool,
        ProcessPoolExecutor(a.score_jobs, mp_context=spawn) as score_pool,
    ):
        while True:
            busy = list(running.values())
            while trainings and busy.count("train") < a.jobs and time.perf_counter() < deadline:
                running[train_pool.submit(train_job, trainings.pop(0))] = "train"
                busy.append("train")
            ready = [job for job in scorings if job["needs"] <= trained]
            while ready and busy.count("score") < a.score_jobs and time.perf_counter() < deadline:
                scorings.remove(ready[0])
                running[score_pool.submit(score_job, ready.pop(0))] = "score"
                busy.append("score")
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                result = future.result()
                if running.pop(future) == "train":
                    trained.add(result["model"])
                on_result(result)
    return [job["name"] for job in trainings] + [f"{job['name']}: {job['out_dir'].name}" for job in scorings]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", type=Path, default=ROOT / "bench" / "recipe_search.yaml")
    parser.add_argument("--config", type=Path, default=ROOT / "config.yaml")
    parser.add_argument("--work", type=Path, default=Path("recipe_search_work"))
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--jobs", type=int, default=6, help="trainings at once")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of each training")
    parser.add_argument("--score-jobs", type=int, default=8, help="scorings at once, one thread each")
    parser.add_argument("--budget", type=float, default=float("inf"), help="seconds after which nothing new starts")
    parser.add_argument("--only", nargs="+", help="these variants (and the cascades of two of them) alone")
    parser.add_argument("--designs", nargs="+", help="these designs alone")
    parser.add_argument("--seeds", type=int, nargs="+", help="every variant these seeds")
    parser.add_argument("--epochs", type=int, help="every variant this many epochs (a smaller run)")
    parser.add_argument("--cases", type=int, help="every design this many cases (a smaller run)")
    a = parser.parse_args()

    started = time.perf_counter()
    config, plan = yaml.safe_load(a.config.read_text()), yaml.safe_load(a.variants.read_text())
    variants = {n: v for n, v in plan["variants"].items() if not a.only or n in a.only}
    if a.seeds:
        variants = {n: {**v, "seeds": a.seeds} for n, v in variants.items()}
    cascades = {n: c for n, c in plan["cascades"].items() if c["liver"] in variants and c["tumour"] in variants}
    designs = {n: d for n, d in plan["designs"].items() if not a.designs or n in a.designs}
    crops = []
    for variant in variants.values():
        crop = entry_of(config, variant).get("crop")
        if crop is not None and crop not in crops:
            crops.append(crop)
    work = a.work.resolve()
    split, randomised = make_data(config, work, plan["randomised_phantoms"], crops, usable_cpus())
    a.out.mkdir(parents=True, exist_ok=True)
    header = [
        "# Model recipes on phantom designs no training draws (bench/recipe_search.py)",
        "",
        f"Command: `python bench/recipe_search.py {' '.join(sys.argv[1:])}`",
        f"Machine: {machine_description()}; {a.jobs} trainings at once ({a.threads} threads each) beside "
        f"{a.score_jobs} scorings (one thread each).",
        f"Data: config.yaml's {config['data']['synthetic']['cases']} cases and split "
        f"({len(split['train']) - len(randomised)} training, {len(split['val'])} validation), {len(randomised)} "
        f"randomised phantoms for the variants that ask for them; made in {time.perf_counter() - started:.0f} s. "
        "Each design's column: its cases scored by `liverseg shifted`'s check; values per seed, in the order of "
        "the seeds; `choose` designs are drawn to choose by.",
    ]
    trained, scores = [], pd.DataFrame()

    def write() -> None:
        (a.out / "recipe_search.md").write_text(tables(scores, pd.DataFrame(trained), plan, header))
        scores.to_csv(a.out / "recipe_search.csv", index=False)

    def on_result(result) -> None:
        nonlocal scores
        if isinstance(result, dict):
            trained.append(result)
        else:
            scores = pd.concat([scores, result], ignore_index=True)
        write()
        print(f"{time.perf_counter() - started:.0f} s: {len(trained)} trained, {len(scores)} scores", flush=True)

    trainings = training_jobs(config, variants, split, randomised, crops, work, a.threads, a.epochs)
    scorings = scoring_jobs(config, variants, cascades, designs, work, a.cases)
    left = run_jobs(trainings, scorings, a, on_result)
    header.append(
        f"All in {time.perf_counter() - started:.0f} s." + (f" Left out at the budget: {left}." if left else "")
    )
    write()
    print((a.out / "recipe_search.md").read_text())


if __name__ == "__main__":
    main()
