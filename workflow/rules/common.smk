import json
import os
import platform
import shlex
import shutil
import time

import pandas as pd

MODELS = list(config["models"])  # every trained model
TUMOUR_STAGES = [m for m in MODELS if "crop" in config["models"][m]]
STAGE1 = [m for m in MODELS if m not in TUMOUR_STAGES]
CASCADES = config.get("cascades", {})
SCORED = STAGE1 + list(
    CASCADES
)  # entries with predictions, scores and a column in the table
# split.folds >= 2: each model is trained once per fold (models/<model>/fold_<k>/), and each entry is their ensemble
FOLDS = config["split"].get("folds", 0)
SOURCE = config["data"]["source"]
# where the raw cases are: made or downloaded inside the experiment, or the user's folder read in place
RAW_DIR = (
    config["data"]["path"] if SOURCE in ("lits", "folder") else f"data/raw/{SOURCE}"
)
# domain-randomised phantoms (synthetic source only): numbered from 1000 (liverseg.data.synthetic.RANDOMISED_FIRST;
# the workflow test checks the two agree), they train and are never validated or scored
RANDOMISED = {"cases": 0, "seed": 0, "ranges": {}} | config["data"].get(
    "synthetic", {}
).get("randomised", {})
RANDOMISED_CASES = [f"case_{1000 + k}" for k in range(RANDOMISED["cases"])]
LAYOUT = {"synthetic": "lits", "msd": "msd", "lits": "lits", "folder": "msd"}[SOURCE]
# with a test split, only the untouched test cases are scored; validation still judges post-processing
SCORED_ON = "test" if config["split"]["test_fraction"] > 0 else "val"
MLFLOW_EXPERIMENT = config["mlflow"].get(
    "experiment", f"liverseg-{config['experiment']}"
)
LIVERSEG_ENV = "../../envs/liverseg.yaml"  # relative to this folder
WEIGHTS_CACHE = config["pretrained_weights"][
    "cache"
]  # absolute: resolved in the Snakefile
# NiiVue's browser build where the checkout's `liverseg view` reads it (reporting/viewer.py: VENDORED)
VIEWER_SCRIPT = f"{SOURCE_DIR}/liverseg/reporting/vendor/niivue.umd.js"


def surely_no_gpu():
    """Whether `device: auto` cannot find a GPU on this machine, told without importing torch into the workflow: Linux
    where no GPU driver's tool is on the PATH (NVIDIA's and AMD's drivers each bring one) or CUDA_VISIBLE_DEVICES
    hides every device. Elsewhere, or in doubt, False."""
    if platform.system() != "Linux":
        return False  # macOS may have MPS
    if os.environ.get("CUDA_VISIBLE_DEVICES") in ("", "-1"):
        return True
    return not any(shutil.which(tool) for tool in ("nvidia-smi", "rocm-smi", "amd-smi"))


# whether networks run on this machine's CPU (asked once, not per job)
NETWORKS_ON_CPU_HERE = config["train"]["device"] == "cpu" or (
    config["train"]["device"] == "auto" and surely_no_gpu()
)


def network_gpu(wildcards):
    """The `gpu` resource of a job that runs a network (training, prediction, the tumour stage): 1, so that
    `--resources gpu=1` puts one at a time on the GPU. Run here on the CPU, such jobs hold none and share the cores by
    their threads like any other job: prediction jobs then run side by side instead of in a queue. A cluster job always
    asks for its GPU (profiles/slurm says how to turn it off). A function, so that it is asked once the executor is
    known (it is not yet while the Snakefile is read)."""
    return int(not (workflow.local_exec and NETWORKS_ON_CPU_HERE))


MACHINE_CPUS = (
    len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
)


def cores_per_cpu():
    """Snakemake's cores to one CPU of this machine: more than 1 where `--cores` promises more than the machine has
    (the README's 8 on a 2-CPU laptop), 1 on a cluster, where each job has cores of its own.
    """
    if not workflow.local_exec:
        return 1
    return max(1, -(-workflow.cores // MACHINE_CPUS))


def at_least_a_cpu(threads):
    """A network job's threads (prediction, the tumour stage's): `threads`, and at least one CPU's share of `--cores`.
    Snakemake counts `--cores`, not CPUs: on a 2-CPU laptop given `--cores 8`, predictions counted as 2 of 8 ran two
    at once beside the tumour stage, the run's longest job, on the one CPU it did not hold, and took CPU from it (its
    last epochs 20 to 70% slower) while the other CPU idled later. The jobs of a second or so (scores,
    post-processing, viewers) keep one of `--cores`: run several at once, they fill Snakemake's pauses between jobs
    (given a CPU each, the data jobs before the trainings took 13 s longer). A function, so that it is asked once the
    executor is known.
    """
    return lambda wildcards: max(threads, cores_per_cpu())


def network_threads(wildcards, threads):
    """The torch threads of a job that runs a network: its share of this machine's CPUs where `--cores` promises more
    than the machine has. A 2-CPU laptop given `--cores 8` runs four 2-thread prediction jobs at once, whose OpenMP
    threads then wait on each other's: four such jobs took 40% longer than with one thread each. Cluster jobs keep
    their threads (each has its own cores). A resource, not a param, so that another `--cores` trains nothing again.
    """
    if not workflow.local_exec:
        return threads
    return max(1, threads * MACHINE_CPUS // max(workflow.cores, MACHINE_CPUS))


wildcard_constraints:
    case=r"case_\d+",
    encoder=r"[^./]+",
    weights=r"[^./]+",
    model="|".join(MODELS),
    entry="|".join(SCORED),
    fold=r"\d+",


def training_threads(wildcards):
    """A training job's threads: its model's own `threads`, else train.threads."""
    return config["models"][wildcards.model].get("threads", config["train"]["threads"])


def training_priority(wildcards):
    """A training job's priority: above every other job's (0), so that it starts as soon as cores free up instead of
    after the predictions of the model trained before it; a tumour stage's above a stage-1 model's, since every cascade
    waits on it and the default's trains longest. Two trainings share a CPU side by side (`train.threads`), and one left
    to run alone at the end keeps one core busy while the other has nothing to do. A training that asks for all of
    `--cores` runs alone on them instead, before every other job once they are all free (the trainings that fit
    beside the last preprocessing jobs start before it): its priority is above any two others' together, since the
    scheduler weighs the sum of the priorities of the jobs it starts at once. Cluster jobs have cores of their own:
    there the order idles none."""
    tumour, stage1 = 2, 1
    priority = tumour if wildcards.model in TUMOUR_STAGES else stage1
    if workflow.local_exec and training_threads(wildcards) >= workflow.cores:
        return priority + tumour + stage1
    return priority


def wall_time(started):
    minutes, seconds = divmod(time.time() - started, 60)
    return f"{int(minutes)} min {seconds:.0f} s"


def cases_table():
    """The case table written by the ingest checkpoint."""
    return pd.read_csv(
        checkpoints.ingest.get().output[0], sep="\t", dtype=str
    ).set_index("case")


def raw_file(column):
    """Input function: a case's volume or label path, from the case table."""
    return lambda wildcards: cases_table().loc[wildcards.case, column]


def case_checksums(wildcards):
    """A case's files as ingest checked them, as a param rather than the whole table as input: a rewritten case
    table reruns the jobs of the cases whose row changed, and a file replaced in a folder read in place (its time
    kept) is seen by its checksum."""
    row = cases_table().loc[wildcards.case]
    return f"{row['volume_sha256']} {row['label_sha256']}"


def split_file():
    with open(checkpoints.split.get().output[0]) as stream:
        return json.load(stream)


def split_cases(part, fold=None):
    """Cases of the 'train', 'val' or 'test' part of the split checkpoint; with a fold, that fold's own training or
    validation cases (with folds, 'train' and 'val' hold every fold's)."""
    split = split_file()
    if fold is None:
        return split[part]
    own = split["folds"][int(fold)]
    return (
        own if part == "val" else [case for case in split["train"] if case not in own]
    )


def training_dirs(model):
    """The folders a model is trained into: its own, or one per fold (liverseg.models.checkpoint.training_folders)."""
    if not FOLDS:
        return [f"models/{model}"]
    return [f"models/{model}/fold_{k}" for k in range(FOLDS)]


def trained_files(name):
    """A file of every training of every model (its history.csv, run.json)."""
    return [f"{folder}/{name}" for model in MODELS for folder in training_dirs(model)]


def weights_of_case(model, case):
    """The weights that segment a case: with folds, a fold's validation case is segmented by that fold's model (its
    out-of-fold prediction), a test case by every fold's (the ensemble)."""
    if FOLDS:
        for k, cases in enumerate(split_file()["folds"]):
            if case in cases:
                return [f"models/{model}/fold_{k}/best.pt"]
    return [f"{folder}/best.pt" for folder in training_dirs(model)]


def case_weights(model):
    """Input function: `weights_of_case` of the case, the model a function of the wildcards."""
    return lambda wildcards: weights_of_case(model(wildcards), wildcards.case)


CHOICE = "results/{entry}/postprocess.json"  # an entry's post-processing steps, as chosen (or kept) for it


def choice_cases():
    """The cases post-processing is judged on where `postprocess.choose` is on: the validation cases (with folds,
    every fold's, each predicted by the models that did not train on it), else none (every step is kept).
    """
    return split_cases("val") if config["postprocess"]["choose"] else []


def case_slices(part):
    return lambda wildcards: expand("data/slices/{case}.npz", case=split_cases(part))


def training_inputs(part):
    """Whole slices for a stage-1 model, the liver crops made for it for a tumour stage; without the randomised
    phantoms for a model that says `randomised_phantoms: false`."""

    def files(wildcards):
        if wildcards.model in TUMOUR_STAGES:
            pattern = f"data/crops/{wildcards.model}/{{case}}.npz"
        else:
            pattern = "data/slices/{case}.npz"
        cases = split_cases(part, wildcards.get("fold"))
        if not config["models"][wildcards.model].get("randomised_phantoms", True):
            cases = [case for case in cases if case not in RANDOMISED_CASES]
        return expand(pattern, case=cases)

    return files


def encoder_weights_file(model):
    """The cached pretrained weights a model's encoder asks for (none for a U-Net or encoder_weights: null)."""
    spec = config["models"][model]
    if spec["kind"] != "smp" or spec.get("encoder_weights") is None:
        return []
    return [f"{WEIGHTS_CACHE}/{spec['encoder']}.{spec['encoder_weights']}.safetensors"]


def augment_settings(model):
    """The config's augment section with the model's own overrides."""
    return {**config["augment"], **config["models"][model].get("augment", {})}


def train_settings(model):
    """The config's train section with the model's own overrides."""
    settings = {k: v for k, v in config["train"].items() if k != "threads"}
    return {**settings, **config["models"][model].get("train", {})}


def model_spec(model):
    """A model's entry as training reads it: without `flip_tta` and `min_lesion_peak`, which only prediction reads,
    and `threads`, which only the scheduler reads (as train.threads), so that changing them trains nothing again.
    """
    return {
        k: v
        for k, v in config["models"][model].items()
        if k not in ("flip_tta", "min_lesion_peak", "threads")
    }


def liver_hu_option(model):
    """The crop step's --liver-hu for a tumour stage that sets it, else nothing."""
    liver_hu = config["models"][model]["crop"].get("liver_hu")
    return "" if liver_hu is None else f"--liver-hu {liver_hu}"


def stage_models(entry):
    """The trained models of a scored entry's stages, in order."""
    if entry in CASCADES:
        return [CASCADES[entry]["liver"], CASCADES[entry]["tumour"]]
    return [entry]


def stage_dirs(entry):
    """Folders of the trained stages of a scored entry, in order."""
    return [f"models/{model}" for model in stage_models(entry)]


def stage_weights(entry):
    """(role, weights) of a scored entry's stages, in order: a file per stage, or one per fold."""
    return [
        (role, f"{folder}/best.pt")
        for role, model in zip(("liver", "tumour"), stage_models(entry))
        for folder in training_dirs(model)
    ]


def mirrored(model):
    """Whether a model's predictions average each slice with its mirror (its entry's `flip_tta`)."""
    return config["models"][model].get("flip_tta", False)


LESION_PEAK = "models/{model}/lesion_peak.json"  # a tumour stage's lowest lesion peak, chosen on validation cases


def lesion_peak_choice(entry):
    """The lowest-lesion-peak file of a cascade whose tumour stage's entry says `min_lesion_peak: validation`, else
    none (a stage-1 model too)."""
    if entry not in CASCADES:
        return []
    tumour = CASCADES[entry]["tumour"]
    if config["models"][tumour].get("min_lesion_peak") != "validation":
        return []
    return [LESION_PEAK.format(model=tumour)]


def lesion_peak_option(entry):
    """--min-lesion-peak for a cascade whose tumour stage's entry sets it (--min-lesion-peak-from where it is chosen
    on the validation cases), else (a stage-1 model too) nothing."""
    if entry not in CASCADES:
        return ""
    peak = config["models"][CASCADES[entry]["tumour"]].get("min_lesion_peak")
    if peak is None:
        return ""
    if peak == "validation":
        return f"--min-lesion-peak-from {lesion_peak_choice(entry)[0]}"
    return f"--min-lesion-peak {peak}"


def mirrored_roles(entry):
    """The roles of a scored entry's stages that are mirrored, for its segmenter's description."""
    return [
        role
        for role, model in zip(("liver", "tumour"), stage_models(entry))
        if mirrored(model)
    ]


def inference_benchmarks(entry, cases):
    """The benchmark files of the jobs that segment an entry's cases: its stage-1 model's prediction and, for a
    cascade, its tumour stage's."""
    if entry in CASCADES:
        stage1 = CASCADES[entry]["liver"]
        own = expand("benchmarks/cascade/{entry}/{case}.tsv", entry=entry, case=cases)
    else:
        stage1, own = entry, []
    return (
        expand("benchmarks/predict/{model}/{case}.tsv", model=stage1, case=cases) + own
    )


def overlay_figures(wildcards):
    return expand("results/figures/overlay_{case}.png", case=split_cases(SCORED_ON))


def viewer_pages(wildcards):
    """A viewer page per scored entry and case, or none (viewer.pages: false)."""
    if not config["viewer"]["pages"]:
        return []
    return expand(
        "results/{entry}/viewer/{case}.html", entry=SCORED, case=split_cases(SCORED_ON)
    )


for _name, _cascade in CASCADES.items():
    if _cascade["liver"] not in STAGE1 or _cascade["tumour"] not in TUMOUR_STAGES:
        raise ValueError(
            f"config: cascade {_name!r} needs a stage-1 model as liver (one of {STAGE1}) and a model with crop "
            f"as tumour (one of {TUMOUR_STAGES}); got liver={_cascade['liver']!r}, tumour={_cascade['tumour']!r}"
        )

for _key, _sources in {
    "synthetic": ["synthetic"],
    "msd": ["msd"],
    "path": ["lits", "folder"],
}.items():
    if _key in config["data"] and SOURCE not in _sources:
        raise ValueError(
            f"config: data.{_key} is read only with data.source {' or '.join(_sources)}; this experiment's source is "
            f"{SOURCE!r}, so remove data.{_key}"
        )
