rule fetch_weights:
    output:
        f"{WEIGHTS_CACHE}/{{encoder}}.{{weights}}.safetensors",
    log:
        "logs/fetch_weights/{encoder}.{weights}.log",
    localrule: True
    conda:
        LIVERSEG_ENV
    params:
        endpoint=config["pretrained_weights"]["endpoint"],
    shell:
        "python -m liverseg fetch-weights --encoder {wildcards.encoder} --weights {wildcards.weights} "
        "--endpoint {params.endpoint:q} --out {output} > {log} 2>&1"


rule train:
    input:
        train=training_inputs("train"),
        val=training_inputs("val"),
        weights=lambda wildcards: encoder_weights_file(wildcards.model),
    output:
        model="models/{model}/best.pt",
        history="models/{model}/history.csv",
        run="models/{model}/run.json",
    log:
        "logs/train/{model}.log",
    priority: training_priority
    conda:
        LIVERSEG_ENV
    threads: training_threads
    resources:
        gpu=network_gpu,
        torch_threads=network_threads,
    params:
        name=lambda wildcards: wildcards.model,
        out_dir=lambda wildcards, output: os.path.dirname(output.model),
        model=lambda wildcards: json.dumps(model_spec(wildcards.model)),
        settings=lambda wildcards: json.dumps(train_settings(wildcards.model)),
        augment=lambda wildcards: json.dumps(augment_settings(wildcards.model)),
        tracking_uri=config["mlflow"]["tracking_uri"],
        experiment=MLFLOW_EXPERIMENT,
        config=json.dumps(
            {key: config[key] for key in ("experiment", "data", "preprocess", "split")}
        ),
        weights=lambda wildcards, input: (
            f"--weights-file {shlex.quote(input.weights[0])}" if input.weights else ""
        ),
    shell:
        "python -m liverseg train --name {params.name} --model {params.model:q} --settings {params.settings:q} "
        "--augment {params.augment:q} --train-slices {input.train} --val-slices {input.val} "
        "--out-dir {params.out_dir} --tracking-uri {params.tracking_uri:q} "
        "--experiment {params.experiment:q} {params.weights} --config {params.config:q} --threads {resources.torch_threads} > {log} 2>&1"


# with split.folds: each fold's training, on the other folds' patients, validated on its own (its other params:
# the train rule's)
use rule train as train_fold with:
    output:
        model="models/{model}/fold_{fold}/best.pt",
        history="models/{model}/fold_{fold}/history.csv",
        run="models/{model}/fold_{fold}/run.json",
    log:
        "logs/train/{model}/fold_{fold}.log",
    params:
        name=lambda wildcards: f"{wildcards.model}-fold{wildcards.fold}",  # the MLflow run and registered model


rule segmenter:
    input:
        weights=lambda wildcards: [path for _, path in stage_weights(wildcards.entry)],
        choice=CHOICE,
        liver_choice=lambda wildcards: (
            [CHOICE.format(entry=CASCADES[wildcards.entry]["liver"])]
            if wildcards.entry in CASCADES
            else []
        ),
        lesion_peak=lambda wildcards: lesion_peak_choice(wildcards.entry),
    output:
        "models/{entry}/segmenter.json",
    log:
        "logs/segmenter/{entry}.log",
    localrule: True  # light: not worth a cluster job
    conda:
        LIVERSEG_ENV
    params:
        stages=lambda wildcards: [
            f"{role}={path}" for role, path in stage_weights(wildcards.entry)
        ],
        window=config["preprocess"]["window"],
        liver_choice=lambda wildcards, input: (
            f"--liver-choice {input.liver_choice}" if input.liver_choice else ""
        ),
        mirrored=lambda wildcards: mirrored_roles(wildcards.entry),
        min_lesion_peak=lambda wildcards: lesion_peak_option(wildcards.entry),
    shell:
        "python -m liverseg segmenter --name {wildcards.entry} --stage {params.stages} --window {params.window} "
        "--choice {input.choice} {params.liver_choice} --flip-tta {params.mirrored} {params.min_lesion_peak} "
        "--out {output} > {log} 2>&1"


rule register:
    input:
        segmenter="models/{entry}/segmenter.json",
        weights=lambda wildcards: [path for _, path in stage_weights(wildcards.entry)],
    output:
        "models/{entry}/registered.json",
    log:
        "logs/register/{entry}.log",
    localrule: True  # light: not worth a cluster job
    conda:
        LIVERSEG_ENV
    params:
        tracking_uri=config["mlflow"]["tracking_uri"],
        experiment=MLFLOW_EXPERIMENT,
    shell:
        "python -m liverseg register --name {wildcards.entry} --folder models/{wildcards.entry} "
        "--tracking-uri {params.tracking_uri:q} --experiment {params.experiment:q} --out {output} > {log} 2>&1"
