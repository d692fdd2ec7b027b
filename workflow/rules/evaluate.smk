rule predict:
    input:
        models=case_weights(lambda wildcards: wildcards.model),
        slices="data/slices/{case}.npz",
        volume=raw_file("volume"),
    output:
        "results/{model}/pred/{case}.nii.gz",
    log:
        "logs/predict/{model}/{case}.log",
    benchmark:
        "benchmarks/predict/{model}/{case}.tsv"
    wildcard_constraints:
        model="|".join(STAGE1),
    conda:
        LIVERSEG_ENV
    threads: at_least_a_cpu(2)
    resources:
        gpu=network_gpu,
        torch_threads=network_threads,
    params:
        device=config["train"]["device"],
        flip_tta=lambda wildcards: "--flip-tta" if mirrored(wildcards.model) else "",
    shell:
        "python -m liverseg predict --checkpoint {input.models} --slices {input.slices} --volume {input.volume} "
        "{params.flip_tta} --device {params.device} --threads {resources.torch_threads} --out {output} > {log} 2>&1"


rule choose_lesion_peak:
    input:
        models=lambda wildcards: [
            weights
            for case in split_cases("val")
            for weights in weights_of_case(wildcards.model, case)
        ],
        volumes=lambda wildcards: [
            cases_table().loc[case, "volume"] for case in split_cases("val")
        ],
        labels=lambda wildcards: [
            cases_table().loc[case, "label"] for case in split_cases("val")
        ],
    output:
        LESION_PEAK,
    log:
        "logs/choose_lesion_peak/{model}.log",
    wildcard_constraints:
        model="|".join(TUMOUR_STAGES) or "no-tumour-stage",
    conda:
        LIVERSEG_ENV
    threads: at_least_a_cpu(2)
    resources:
        gpu=network_gpu,
        torch_threads=network_threads,
    params:
        device=config["train"]["device"],
        window=config["preprocess"]["window"],
        flip_tta=lambda wildcards: "--flip-tta" if mirrored(wildcards.model) else "",
    shell:
        "python -m liverseg choose-lesion-peak --checkpoint {input.models} --volume {input.volumes} "
        "--label {input.labels} --window {params.window} {params.flip_tta} --device {params.device} "
        "--threads {resources.torch_threads} --out {output} > {log} 2>&1"


rule cascade:
    input:
        models=case_weights(lambda wildcards: CASCADES[wildcards.cascade]["tumour"]),
        liver=lambda wildcards: f"results/{CASCADES[wildcards.cascade]['liver']}/post/{wildcards.case}.nii.gz",
        volume=raw_file("volume"),
        lesion_peak=lambda wildcards: lesion_peak_choice(wildcards.cascade),
    output:
        "results/{cascade}/pred/{case}.nii.gz",
    log:
        "logs/cascade/{cascade}/{case}.log",
    benchmark:
        "benchmarks/cascade/{cascade}/{case}.tsv"
    wildcard_constraints:
        cascade="|".join(CASCADES) or "no-cascade",
    conda:
        LIVERSEG_ENV
    threads: at_least_a_cpu(2)
    resources:
        gpu=network_gpu,
        torch_threads=network_threads,
    params:
        device=config["train"]["device"],
        window=config["preprocess"]["window"],
        flip_tta=lambda wildcards: (
            "--flip-tta" if mirrored(CASCADES[wildcards.cascade]["tumour"]) else ""
        ),
        min_lesion_peak=lambda wildcards: lesion_peak_option(wildcards.cascade),
    shell:
        "python -m liverseg cascade --checkpoint {input.models} --liver {input.liver} --volume {input.volume} "
        "--window {params.window} {params.flip_tta} {params.min_lesion_peak} --device {params.device} "
        "--threads {resources.torch_threads} --out {output} > {log} 2>&1"


rule choose_postprocess:
    input:
        labels=lambda wildcards: [cases_table().loc[c, "label"] for c in choice_cases()],
        predictions=lambda wildcards: expand(
            "results/{entry}/pred/{case}.nii.gz",
            entry=wildcards.entry,
            case=choice_cases(),
        ),
    output:
        CHOICE,
    log:
        "logs/choose_postprocess/{entry}.log",
    localrule: not config["postprocess"]["choose"]  # it only writes the config's steps, or it reads the cases
    conda:
        LIVERSEG_ENV
    params:
        settings=json.dumps(config["postprocess"]),
    shell:
        "python -m liverseg choose-postprocess --settings {params.settings:q} --labels {input.labels} "
        "--predictions {input.predictions} --out {output} > {log} 2>&1"


rule postprocess:
    input:
        prediction="results/{entry}/pred/{case}.nii.gz",
        choice=CHOICE,
    output:
        "results/{entry}/post/{case}.nii.gz",
    log:
        "logs/postprocess/{entry}/{case}.log",
    conda:
        LIVERSEG_ENV
    shell:
        "python -m liverseg postprocess --prediction {input.prediction} --choice {input.choice} --out {output} "
        "> {log} 2>&1"


rule score:
    input:
        label=raw_file("label"),
        prediction="results/{entry}/pred/{case}.nii.gz",
        postprocessed="results/{entry}/post/{case}.nii.gz",
    output:
        "results/{entry}/metrics/{case}.json",
    log:
        "logs/score/{entry}/{case}.log",
    conda:
        LIVERSEG_ENV
    params:
        settings=json.dumps(config["postprocess"]),
    shell:
        "python -m liverseg score --model {wildcards.entry} --case {wildcards.case} --label {input.label} "
        "--prediction {input.prediction} --postprocessed {input.postprocessed} --settings {params.settings:q} "
        "--out {output} > {log} 2>&1"
