if SOURCE == "synthetic":

    rule synthesise:
        output:
            directory(RAW_DIR),
        log:
            "logs/synthesise.log",
        conda:
            LIVERSEG_ENV
        threads: 4
        params:
            cases=config["data"]["synthetic"]["cases"],
            seed=config["data"]["synthetic"]["seed"],
            randomised=RANDOMISED["cases"],
            randomised_seed=RANDOMISED["seed"],
            ranges=json.dumps(RANDOMISED["ranges"]),
        shell:
            "python -m liverseg synthesise --cases {params.cases} --seed {params.seed} "
            "--randomised-cases {params.randomised} --randomised-seed {params.randomised_seed} "
            "--ranges {params.ranges:q} --threads {threads} --out {output} > {log} 2>&1"


if SOURCE == "msd":

    rule download:
        output:
            directory(RAW_DIR),
        log:
            "logs/download.log",
        localrule: True  # runs where snakemake runs: compute nodes of a cluster often have no internet
        conda:
            LIVERSEG_ENV
        params:
            mirror=" ".join(
                f"--{key} {shlex.quote(value)}"
                for key, value in config["data"].get("msd", {}).items()
            ),
        shell:
            "python -m liverseg download {params.mirror} --out {output} > {log} 2>&1"


checkpoint ingest:
    input:
        RAW_DIR,
    output:
        cases="data/cases.tsv",
        rejected="data/rejected.tsv",
    log:
        "logs/ingest.log",
    benchmark:
        "benchmarks/ingest.tsv"
    conda:
        LIVERSEG_ENV
    threads: 4  # cases checked at once, each holding its volume
    params:
        layout=LAYOUT,
        skip="--skip-invalid" if config["data"]["skip_invalid"] else "",
    shell:
        "python -m liverseg ingest --raw {input} --layout {params.layout} --out {output.cases} "
        "--rejected {output.rejected} {params.skip} --threads {threads} > {log} 2>&1"


rule preprocess:
    input:
        volume=raw_file("volume"),
        label=raw_file("label"),
    output:
        "data/slices/{case}.npz",
    log:
        "logs/preprocess/{case}.log",
    benchmark:
        "benchmarks/preprocess/{case}.tsv"
    conda:
        LIVERSEG_ENV
    params:
        checked=case_checksums,
        window=config["preprocess"]["window"],
        size=config["preprocess"]["image_size"],
    shell:
        "python -m liverseg preprocess --volume {input.volume} --label {input.label} --window {params.window} "
        "--size {params.size} --out {output} > {log} 2>&1"


checkpoint split:
    input:
        "data/cases.tsv",
    output:
        "data/split.json",
    log:
        "logs/split.log",
    localrule: True  # light: not worth a cluster job
    conda:
        LIVERSEG_ENV
    params:
        val_fraction=config["split"]["val_fraction"],
        folds=FOLDS,
        test_fraction=config["split"]["test_fraction"],
        stratify="--stratify-tumour" if config["split"]["stratify_tumour"] else "",
        seed=config["split"]["seed"],
        train_only=" ".join(RANDOMISED_CASES),
    shell:
        "python -m liverseg split --cases {input} --val-fraction {params.val_fraction} "
        "--test-fraction {params.test_fraction} --folds {params.folds} {params.stratify} --seed {params.seed} "
        "--train-only {params.train_only} --out {output} > {log} 2>&1"


rule crop:
    input:
        volume=raw_file("volume"),
        label=raw_file("label"),
    output:
        "data/crops/{model}/{case}.npz",
    log:
        "logs/crop/{model}/{case}.log",
    benchmark:
        "benchmarks/crop/{model}/{case}.tsv"
    conda:
        LIVERSEG_ENV
    params:
        checked=case_checksums,
        window=config["preprocess"]["window"],
        crop=lambda wildcards: config["models"][wildcards.model]["crop"],
        liver_hu=lambda wildcards: liver_hu_option(wildcards.model),
    shell:
        "python -m liverseg crop --volume {input.volume} --label {input.label} --window {params.window} "
        "--size {params.crop[size]} --margin-mm {params.crop[margin_mm]} --jitter-mm {params.crop[jitter_mm]} "
        "{params.liver_hu} --out {output} > {log} 2>&1"


rule augment:
    input:
        split="data/split.json",
        slices=case_slices("train"),
    output:
        preview=report(
            "data/train/preview.png",
            caption="../report/augmentation.rst",
            category="2. Training",
        ),
    log:
        "logs/augment.log",
    conda:
        LIVERSEG_ENV
    params:
        settings=json.dumps(config["augment"]),
    shell:
        "python -m liverseg augment --slices {input.slices} --settings {params.settings:q} "
        "--preview {output.preview} > {log} 2>&1"
