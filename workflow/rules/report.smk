rule aggregate:
    input:
        scores=lambda wildcards: expand(
            "results/{entry}/metrics/{case}.json",
            entry=SCORED,
            case=split_cases(SCORED_ON),
        ),
        step_scores=lambda wildcards: expand(
            "results/{entry}/metrics/{case}.json",
            entry=SCORED,
            case=split_cases("val") if SCORED_ON == "test" else [],
        ),
        histories=trained_files("history.csv"),
        runs=trained_files("run.json"),
        split="data/split.json",
        choices=expand(CHOICE, entry=SCORED),
        benchmarks=lambda wildcards: sorted(
            {
                path
                for entry in SCORED
                for path in inference_benchmarks(entry, split_cases(SCORED_ON))
            }
        ),
    output:
        csv="results/summary.csv",
        md="results/summary.md",
        metrics="results/metrics.json",
        cases="results/cases.csv",
        statistics="results/statistics.csv",
        comparisons="results/comparisons.csv",
    log:
        "logs/aggregate.log",
    localrule: True  # light: not worth a cluster job
    conda:
        LIVERSEG_ENV
    params:
        entries=" ".join(f"--entry {e} {' '.join(stage_dirs(e))}" for e in SCORED),
        scored_on=SCORED_ON,
        choices=" ".join(f"{e}={CHOICE.format(entry=e)}" for e in SCORED),
    shell:
        "python -m liverseg aggregate {params.entries} "
        "--scores {input.scores} --scored-on {params.scored_on} --step-scores {input.step_scores} --benchmarks {input.benchmarks} "
        "--split {input.split} --choices {params.choices} --csv {output.csv} --md {output.md} --metrics-json {output.metrics} "
        "--cases-csv {output.cases} --statistics-csv {output.statistics} --comparisons-csv {output.comparisons} "
        "> {log} 2>&1"


rule overlay:
    input:
        volume=raw_file("volume"),
        label=raw_file("label"),
        predictions=expand("results/{entry}/post/{{case}}.nii.gz", entry=SCORED),
    output:
        report(
            "results/figures/overlay_{case}.png",
            caption="../report/overlay.rst",
            category="3. Overlays",
            labels={"case": "{case}"},
        ),
    log:
        "logs/overlay/{case}.log",
    conda:
        LIVERSEG_ENV
    params:
        predictions=lambda wildcards, input: [
            f"{m}={p}" for m, p in zip(SCORED, input.predictions)
        ],
        window=config["preprocess"]["window"],
    shell:
        "python -m liverseg overlay --case {wildcards.case} --volume {input.volume} --label {input.label} --predictions {params.predictions} "
        "--window {params.window} --out {output} > {log} 2>&1"


rule curves:
    input:
        trained_files("history.csv"),
    output:
        report(
            "results/figures/learning_curves.png",
            caption="../report/learning_curves.rst",
            category="2. Training",
        ),
    log:
        "logs/curves.log",
    localrule: True  # light: not worth a cluster job
    conda:
        LIVERSEG_ENV
    shell:
        "python -m liverseg curves --histories {input} --out {output} > {log} 2>&1"


rule case_dice:
    input:
        "results/cases.csv",
    output:
        report(
            "results/figures/case_dice.png",
            caption="../report/case_dice.rst",
            category="1. Results",
        ),
    log:
        "logs/case_dice.log",
    localrule: True  # light: not worth a cluster job
    conda:
        LIVERSEG_ENV
    shell:
        "python -m liverseg case-dice --cases {input} --out {output} > {log} 2>&1"


rule fetch_viewer:
    output:
        VIEWER_SCRIPT,
    log:
        "logs/fetch_viewer.log",
    localrule: True
    conda:
        LIVERSEG_ENV
    params:
        registry=config["viewer"]["registry"],
    shell:
        "python -m liverseg fetch-viewer --registry {params.registry:q} --out {output} > {log} 2>&1"


rule viewer:
    input:
        scan=raw_file("volume"),
        labels="results/{entry}/post/{case}.nii.gz",
        reference=raw_file("label"),
        script=VIEWER_SCRIPT,
    output:
        "results/{entry}/viewer/{case}.html",
    log:
        "logs/viewer/{entry}/{case}.log",
    conda:
        LIVERSEG_ENV
    shell:
        "python -m liverseg view {input.scan} {input.labels} --reference {input.reference} --out {output} > {log} 2>&1"


rule report_pages:
    input:
        summary="results/summary.md",
        cases="results/cases.csv",
        viewer=viewer_pages,
    output:
        summary=report(
            "results/report/summary.html",
            caption="../report/summary.rst",
            category="1. Results",
        ),
        cases=report(
            "results/report/cases.html",
            caption="../report/cases.rst",
            category="1. Results",
        ),
        config=report(
            "results/report/config.html",
            caption="../report/config.rst",
            category="4. Configuration",
        ),
    log:
        "logs/report_pages.log",
    localrule: True  # light: not worth a cluster job
    conda:
        LIVERSEG_ENV
    params:
        config=json.dumps(config),
    shell:
        "python -m liverseg report-pages --summary-md {input.summary} --cases {input.cases} --config {params.config:q} "
        "--summary-html {output.summary} --cases-html {output.cases} --config-html {output.config} "
        "--viewer-pages {input.viewer} > {log} 2>&1"
