# liverseg: liver and liver-tumour segmentation of abdominal CT, U-Net vs ResNet50 U-Net (see README.md).
import os
import time
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")


# config.yaml is the default experiment; `--configfile other.yaml` replaces it (not merged into it), so that an
# experiment holds only the settings it names.
if not workflow.config_settings.configfiles:

    # absolute: `workdir:` below changes the folder, and `--report` reads the config file again from there
    configfile: str(Path("config.yaml").resolve())


validate(config, "workflow/schemas/config.schema.yaml")

STARTED = time.time()
# Relative paths (the user's data folder, the weights cache, experiments/) are taken from where snakemake was started.
# A cluster job starts snakemake again inside the experiment's folder: it finds the first folder in the environment.
LAUNCH_DIR = Path(os.environ.setdefault("LIVERSEG_LAUNCH_DIR", os.getcwd()))
if "path" in config["data"]:
    config["data"]["path"] = str(
        (LAUNCH_DIR / Path(config["data"]["path"]).expanduser()).resolve()
    )
# rules run `python -m liverseg` from this checkout, in the active environment or in envs/liverseg.yaml's
SOURCE_DIR = str(Path(workflow.basedir) / "src")
PYTHON_PATHS = [
    path for path in os.environ.setdefault("PYTHONPATH", "").split(os.pathsep) if path
]
if PYTHON_PATHS[:1] != [SOURCE_DIR]:
    os.environ.update(PYTHONPATH=os.pathsep.join([SOURCE_DIR, *PYTHON_PATHS]))
# pretrained encoder weights, shared by every experiment of the project
config["pretrained_weights"]["cache"] = str(
    (LAUNCH_DIR / Path(config["pretrained_weights"]["cache"]).expanduser()).resolve()
)


# every output of an experiment (data products, models, results, logs, MLflow store) lives in its own folder
workdir: str(LAUNCH_DIR / "experiments" / config["experiment"])


if workflow.overwrite_workdir:
    print(
        f"liverseg: --directory given, so outputs go to {workflow.overwrite_workdir}, not experiments/{config['experiment']}/"
    )


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        "results/summary.csv",
        "results/summary.md",
        "results/metrics.json",
        "data/train/preview.png",
        overlay_figures,
        viewer_pages,
        "results/figures/learning_curves.png",
        "results/figures/case_dice.png",
        "results/report/summary.html",
        "results/report/cases.html",
        "results/report/config.html",
        expand("models/{entry}/segmenter.json", entry=SCORED),
        expand("models/{entry}/registered.json", entry=SCORED),


onsuccess:
    print(f"liverseg: workflow finished in {wall_time(STARTED)}")


onerror:
    print(
        f"liverseg: workflow failed after {wall_time(STARTED)}; see the log files named above"
    )
