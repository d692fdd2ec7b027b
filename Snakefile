# liverseg: liver and liver-tumour segmentation of abdominal CT, U-Net vs ResNet50 U-Net (see README.md).
import time

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")

STARTED = time.time()


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


onsuccess:
    print(f"liverseg: workflow finished in {wall_time(STARTED)}")


onerror:
    print(
        f"liverseg: workflow failed after {wall_time(STARTED)}; see the log files named above"
    )
