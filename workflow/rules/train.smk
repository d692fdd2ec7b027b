rule train:
    input:
        train="data/train/augmented.npz",
        val=case_slices("val"),
    output:
        model="models/{model}/best.pt",
        history="models/{model}/history.csv",
        run="models/{model}/run.json",
    log:
        "logs/train/{model}.log",
    conda:
        LIVERSEG_ENV
    threads: config["train"]["threads"]
    resources:
        gpu=1,
    params:
        model=lambda wildcards: json.dumps(config["models"][wildcards.model]),
        settings=json.dumps(
            {k: v for k, v in config["train"].items() if k != "threads"}
        ),
        tracking_uri=config["mlflow"]["tracking_uri"],
        experiment=config["mlflow"]["experiment"],
    shell:
        "liverseg train --name {wildcards.model} --model {params.model:q} --settings {params.settings:q} "
        "--train-set {input.train} --val-slices {input.val} --out-dir models/{wildcards.model} "
        "--tracking-uri {params.tracking_uri:q} --experiment {params.experiment:q} --threads {threads} > {log} 2>&1"
