rule predict:
    input:
        model="models/{model}/best.pt",
        slices="data/slices/{case}.npz",
        volume=raw_file("volume"),
    output:
        "results/{model}/pred/{case}.nii.gz",
    log:
        "logs/predict/{model}/{case}.log",
    conda:
        LIVERSEG_ENV
    threads: 2
    resources:
        gpu=1,
    params:
        device=config["train"]["device"],
    shell:
        "liverseg predict --checkpoint {input.model} --slices {input.slices} --volume {input.volume} "
        "--device {params.device} --threads {threads} --out {output} > {log} 2>&1"


rule postprocess:
    input:
        "results/{model}/pred/{case}.nii.gz",
    output:
        "results/{model}/post/{case}.nii.gz",
    log:
        "logs/postprocess/{model}/{case}.log",
    conda:
        LIVERSEG_ENV
    params:
        radius=config["postprocess"]["closing_radius_mm"],
    shell:
        "liverseg postprocess --prediction {input} --closing-radius-mm {params.radius} --out {output} > {log} 2>&1"


rule evaluate:
    input:
        label=raw_file("label"),
        prediction="results/{model}/pred/{case}.nii.gz",
        postprocessed="results/{model}/post/{case}.nii.gz",
    output:
        "results/{model}/metrics/{case}.json",
    log:
        "logs/evaluate/{model}/{case}.log",
    conda:
        LIVERSEG_ENV
    shell:
        "liverseg evaluate --model {wildcards.model} --case {wildcards.case} --label {input.label} "
        "--prediction {input.prediction} --postprocessed {input.postprocessed} --out {output} > {log} 2>&1"
