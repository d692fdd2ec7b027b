rule aggregate:
    input:
        scores=lambda wildcards: expand(
            "results/{model}/metrics/{case}.json",
            model=MODELS,
            case=split_cases("val"),
        ),
        histories=expand("models/{model}/history.csv", model=MODELS),
        runs=expand("models/{model}/run.json", model=MODELS),
    output:
        csv="results/summary.csv",
        md="results/summary.md",
        metrics="results/metrics.json",
    log:
        "logs/aggregate.log",
    conda:
        LIVERSEG_ENV
    params:
        models=MODELS,
    shell:
        "liverseg aggregate --models {params.models} --histories {input.histories} --runs {input.runs} "
        "--scores {input.scores} --csv {output.csv} --md {output.md} --metrics-json {output.metrics} > {log} 2>&1"


rule overlay:
    input:
        volume=raw_file("volume"),
        label=raw_file("label"),
        predictions=expand("results/{model}/post/{{case}}.nii.gz", model=MODELS),
    output:
        "results/figures/overlay_{case}.png",
    log:
        "logs/overlay/{case}.log",
    conda:
        LIVERSEG_ENV
    params:
        predictions=lambda wildcards, input: [
            f"{m}={p}" for m, p in zip(MODELS, input.predictions)
        ],
        window=config["preprocess"]["window"],
    shell:
        "liverseg overlay --case {wildcards.case} --volume {input.volume} --label {input.label} --predictions {params.predictions} "
        "--window {params.window} --out {output} > {log} 2>&1"
