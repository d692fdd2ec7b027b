import json
import time

import pandas as pd

MODELS = list(config["models"])
SOURCE = config["data"]["source"]
RAW_DIR = f"{config['data']['raw_dir']}/{SOURCE}"
LAYOUT = {"synthetic": "lits", "msd": "msd"}[SOURCE]
LIVERSEG_ENV = "../../envs/liverseg.yaml"  # relative to this folder


wildcard_constraints:
    case=r"case_\d+",
    model="|".join(MODELS),


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


def split_cases(part):
    """Cases of the 'train' or 'val' side of the split checkpoint."""
    with open(checkpoints.split.get().output[0]) as stream:
        return json.load(stream)[part]


def case_slices(part):
    return lambda wildcards: expand("data/slices/{case}.npz", case=split_cases(part))


def overlay_figures(wildcards):
    return expand("results/figures/overlay_{case}.png", case=split_cases("val"))
