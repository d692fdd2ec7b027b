"""The real workflow through Snakemake on a tiny config: every declared output, geometry, table and MLflow runs."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from liverseg.evaluation.lesion_peak_choice import CANDIDATES
from tests.helpers import TINY, free_port, program, snakemake, tool_environment, vendored_viewer

pytestmark = pytest.mark.workflow
MODELS = ["unet", "resnet50_unet", "tumour_unet"]
SCORED = ["unet", "resnet50_unet", "unet_cascade"]
TUMOUR_STAGES = ["tumour_unet"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    vendored_viewer()  # the tiny experiment makes viewer pages; offline, the workflow could not fetch NiiVue
    env = {**tool_environment(), "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL": "1"}  # the tiny trainings last seconds
    root = tmp_path_factory.mktemp("workflow")
    result = snakemake(root, "--cores", "2", "--resources", "gpu=1", "--configfile", str(TINY), env=env)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    return root / "experiments" / "tiny", env, result


def test_every_declared_output_exists(finished_run):
    workdir, _, result = finished_run
    split = json.loads((workdir / "data/split.json").read_text())
    cases = pd.read_csv(workdir / "data/cases.tsv", sep="\t")
    assert list(cases["case"]) == ["case_000", "case_001", "case_002", "case_1000"]
    assert len(split["val"]) == 1 and not set(split["val"]) & set(split["train"])
    assert split["train_only"] == ["case_1000"] and "case_1000" in split["train"], "the randomised case only trains"
    designs = json.loads((workdir / "data/raw/synthetic/randomised.json").read_text())
    assert list(designs) == ["volume-1000.nii.gz"] and designs["volume-1000.nii.gz"]["max_slices"] == 24
    client = MlflowClient(f"sqlite:///{workdir}/mlflow.db")
    for model, with_phantom in (("unet", True), ("resnet50_unet", False)):  # resnet50_unet: randomised_phantoms false
        run = client.get_run(json.loads((workdir / f"models/{model}/run.json").read_text())["run_id"])
        trained = next(d for d in run.inputs.dataset_inputs if d.tags[0].value == "training")
        files = json.loads(trained.dataset.source)["files"]
        assert ("case_1000.npz" in files) == with_phantom and len(files) == len(split["train"]) - (not with_phantom)
    for case in cases["case"]:
        assert (workdir / f"data/slices/{case}.npz").is_file()
    config = yaml.safe_load(TINY.read_text())
    (low, high), liver_hu = config["preprocess"]["window"], config["models"]["tumour_unet"]["crop"]["liver_hu"]
    for case in cases["case"]:
        with np.load(workdir / f"data/crops/tumour_unet/{case}.npz") as crops:
            assert crops["image"].shape[1:] == (32, 32) and (crops["label"] >= 1).any()
            liver = crops["image"][crops["label"] >= 1].astype(np.float32)
            assert abs(np.median(liver) - (liver_hu - low) / (high - low)) < 0.03, "the liver's median at liver_hu"
    assert plt_image(workdir / "data/train/preview.png").ndim == 3
    for model in MODELS:
        for name in ("best.pt", "history.csv", "run.json"):
            assert (workdir / f"models/{model}/{name}").is_file()
    for model in SCORED:
        for case in split["val"]:
            for stage in ("pred", "post"):
                assert (workdir / f"results/{model}/{stage}/{case}.nii.gz").is_file()
            assert (workdir / f"results/{model}/metrics/{case}.json").is_file()
    for name in ("summary.csv", "summary.md", "metrics.json", "cases.csv", "statistics.csv", "comparisons.csv"):
        assert (workdir / "results" / name).is_file()
    comparisons = pd.read_csv(workdir / "results/comparisons.csv")
    assert len(comparisons) == 3 * 2 * 2  # 3 pairs of entries, 2 targets, Dice and HD95
    assert "## Paired differences" in (workdir / "results/summary.md").read_text()
    figures = sorted(p.name for p in (workdir / "results/figures").iterdir())
    assert figures == sorted(
        ["case_dice.png", "learning_curves.png", *(f"overlay_{case}.png" for case in split["val"])]
    )
    overlay = plt_image(workdir / "results/figures" / f"overlay_{split['val'][0]}.png")
    assert overlay.shape[1] > 1.5 * overlay.shape[0], (
        "the CT, both models and the cascade side by side, at most two slices"
    )
    assert plt_image(workdir / "results/figures/learning_curves.png").shape[1] > 2 * 300, "one panel per model"
    lesion_peak = json.loads((workdir / "models/tumour_unet/lesion_peak.json").read_text())
    assert lesion_peak["judged_on"] == [cases.set_index("case").loc[case, "volume"] for case in split["val"]]
    assert lesion_peak["weights"] == ["models/tumour_unet/best.pt"] * len(split["val"])
    assert [cut["min_lesion_peak"] for cut in lesion_peak["cuts"]] == list(CANDIDATES)
    assert lesion_peak["min_lesion_peak"] in CANDIDATES
    for entry in SCORED:
        choice = json.loads((workdir / f"results/{entry}/postprocess.json").read_text())
        assert choice["judged_on"] == [] and all(s["kept"] for s in choice["steps"]), "postprocess.choose is off"
        description = json.loads((workdir / f"models/{entry}/segmenter.json").read_text())
        assert description["name"] == entry and description["postprocess"] == choice["settings"]
        chosen = lesion_peak["min_lesion_peak"] if entry == "unet_cascade" else None
        assert description.get("min_lesion_peak") == chosen, "the cascade's lowest lesion peak, chosen"
        mirrored = {"liver": False} | ({"tumour": True} if entry == "unet_cascade" else {})  # tumour_unet: flip_tta
        assert description["flip_tta"] == mirrored
    for page in ("summary.html", "cases.html"):
        assert "<table" in (workdir / "results/report" / page).read_text()
    cases_page = (workdir / "results/report/cases.html").read_text()
    for entry in SCORED:
        for case in split["val"]:
            viewer = workdir / f"results/{entry}/viewer/{case}.html"
            assert f'<a href="../{entry}/viewer/{case}.html">view</a>' in cases_page and viewer.is_file()
            assert viewer.read_text().count("data:application/gzip;base64,") == 2, "the scan and the labels in it"
    assert "<pre>experiment: tiny" in (workdir / "results/report/config.html").read_text()
    assert "liverseg: workflow finished in" in result.stdout + result.stderr


def plt_image(path):
    import matplotlib.image

    return matplotlib.image.imread(path)


def test_predictions_have_their_volume_geometry(finished_run):
    workdir, _, _ = finished_run
    cases = pd.read_csv(workdir / "data/cases.tsv", sep="\t").set_index("case")
    predictions = sorted(workdir.glob("results/*/*/case_*.nii.gz"))
    assert len(predictions) == 2 * len(SCORED)
    for path in predictions:
        volume = nib.load(workdir / cases.loc[path.name.removesuffix(".nii.gz"), "volume"])
        out = nib.load(path)
        assert out.shape == volume.shape and np.allclose(out.affine, volume.affine)
        assert nib.aff2axcodes(out.affine) == nib.aff2axcodes(volume.affine)
        assert set(np.unique(np.asarray(out.dataobj))) <= {0, 1, 2}


def test_summary_table_matches_case_scores(finished_run):
    workdir, _, _ = finished_run
    summary = pd.read_csv(workdir / "results/summary.csv").set_index("model")
    assert list(summary.index) == SCORED
    for model in summary.index:
        scores = [json.loads(p.read_text()) for p in workdir.glob(f"results/{model}/metrics/*.json")]
        expected = np.mean([s["post"]["liver"]["dice"] for s in scores])
        assert summary.loc[model, "liver_dice"] == pytest.approx(expected, abs=1e-5)
        assert summary.loc[model, "liver_hd95"] == pytest.approx(
            np.mean([s["post"]["liver"]["hd95"] for s in scores]), rel=1e-5
        )
        found = sum(s["post"]["lesions"]["true_positives"] for s in scores)
        lesions = sum(s["post"]["lesions"]["ref_lesions"] for s in scores)
        assert summary.loc[model, "ref_lesions"] == lesions > 0
        assert summary.loc[model, "lesion_recall"] == pytest.approx(found / lesions)
        first = model.removesuffix("_cascade")
        history = pd.read_csv(workdir / f"models/{first}/history.csv")
        assert len(history) == 2
        assert summary.loc[model, "seconds_per_epoch"] == pytest.approx(history["epoch_seconds"].mean(), rel=1e-4)
        assert 0 <= summary.loc[model, "accuracy"] <= 1
        # the prediction jobs' benchmarks: a cascade's cases took its stage-1 model's job and its own
        jobs = [pd.read_csv(p, sep="\t") for p in workdir.glob(f"benchmarks/predict/{first}/*.tsv")]
        if model.endswith("_cascade"):
            jobs += [pd.read_csv(p, sep="\t") for p in workdir.glob(f"benchmarks/cascade/{model}/*.tsv")]
        assert summary.loc[model, "inference_seconds_per_case"] == pytest.approx(
            sum(job["s"].sum() for job in jobs) / summary.loc[model, "scored_cases"], rel=1e-4
        )
        assert summary.loc[model, "inference_peak_rss_mb"] == max(job["max_rss"].max() for job in jobs) > 0
    stage = pd.read_csv(workdir / "models/tumour_unet/history.csv")
    assert len(stage) == 3 and "val_dice_tumour" in stage and "val_dice_liver" not in stage
    assert (
        summary.loc["unet_cascade", "epochs"]
        == f"{summary.loc['unet', 'epochs']} + {stage['val_dice'].fillna(-1).idxmax() + 1}/3"
    )
    assert np.isnan(summary.loc["unet", "tumour_stage_seconds_per_epoch"])
    metrics = json.loads((workdir / "results/metrics.json").read_text())
    assert metrics["unet"]["liver_dice"] == pytest.approx(summary.loc["unet", "liver_dice"], abs=1e-6)
    assert "| Liver Dice (per case) |" in (workdir / "results/summary.md").read_text()
    assert metrics["unet_cascade"]["lesion_recall"] == pytest.approx(summary.loc["unet_cascade", "lesion_recall"])


def test_cascade_keeps_the_stage1_liver_and_its_tumours_stay_inside(finished_run):
    workdir, _, _ = finished_run
    for path in workdir.glob("results/unet_cascade/pred/*.nii.gz"):
        cascade = np.asarray(nib.load(path).dataobj)
        liver = np.asarray(nib.load(workdir / "results/unet/post" / path.name).dataobj) >= 1
        assert np.array_equal(cascade >= 1, liver)
    log = next(workdir.glob("logs/cascade/unet_cascade/*.log")).read_text()
    assert "tumour voxels inside the stage-1 liver" in log


def test_best_checkpoint_is_the_best_epoch(finished_run):
    workdir, _, _ = finished_run
    for model in MODELS:
        state = torch.load(workdir / f"models/{model}/best.pt", weights_only=True)
        history = pd.read_csv(workdir / f"models/{model}/history.csv")
        assert state["epoch"] == int(history.loc[history["val_dice"].fillna(-1).idxmax(), "epoch"])
        regions = ["tumour"] if model == "tumour_unet" else ["liver", "tumour"]
        assert state["targets"] == regions and state["image_size"] == 32


def test_mlflow_holds_one_finished_run_per_model(finished_run):
    workdir, _, _ = finished_run
    client = MlflowClient(tracking_uri=f"sqlite:///{workdir}/mlflow.db")
    experiment = client.get_experiment_by_name("liverseg-tiny")
    every_run = client.search_runs([experiment.experiment_id])
    runs = [r for r in every_run if r.data.tags.get("kind") != "segmenter"]
    assert sorted(r.info.run_name for r in runs) == sorted(MODELS)
    segmenters = [r for r in every_run if r.data.tags.get("kind") == "segmenter"]
    assert sorted(r.info.run_name for r in segmenters) == sorted(f"{entry}-segmenter" for entry in SCORED)
    for run in segmenters:
        version = client.get_model_version_by_alias(run.info.run_name, "champion")
        assert run.info.status == "FINISHED" and version.run_id == run.info.run_id
    summary = pd.read_csv(workdir / "results/summary.csv").set_index("model")
    stage = next(r for r in runs if r.info.run_name == "tumour_unet")
    assert stage.data.metrics["eval_unet_cascade_tumour_dice_cases_with_tumour"] == pytest.approx(
        summary.loc["unet_cascade", "tumour_dice_cases_with_tumour"], abs=1e-6
    )
    assert stage.data.params["recipe.tumour_oversample"] == "2.0" and stage.data.params["recipe.input_slices"] == "3"
    for run in [r for r in runs if r != stage]:
        assert run.info.status == "FINISHED"
        assert json.loads((workdir / f"models/{run.info.run_name}/run.json").read_text())["run_id"] == run.info.run_id
        for key in ("train_loss", "val_loss", "val_dice", "lr", "epoch_seconds"):
            assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [1, 2]
        assert run.data.params["train.lr"] == "0.001" and run.data.params["recipe.loss.tversky.alpha"] == "0.7"
        assert run.data.metrics["eval_liver_dice"] == pytest.approx(
            summary.loc[run.info.run_name, "liver_dice"], abs=1e-6
        )
        artifacts = [a.path for a in client.list_artifacts(run.info.run_id, "checkpoint")]
        assert artifacts == ["checkpoint/best.pt"]
        figures = {a.path: a.file_size for a in client.list_artifacts(run.info.run_id) if a.path.endswith(".png")}
        assert sorted(figures) == ["augmentation_preview.png", "learning_curves.png"] and min(figures.values()) > 10_000
        system = client.get_metric_history(run.info.run_id, "system/cpu_utilization_percentage")
        assert system and all(0 <= m.value <= 100 for m in system)
        assert "system/system_memory_usage_megabytes" in run.data.metrics


def test_a_second_run_has_nothing_to_do(finished_run):
    workdir, env, _ = finished_run
    result = snakemake(workdir.parents[1], "-n", "--cores", "2", "--configfile", str(TINY), env=env)
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_mirroring_a_model_predicts_again_and_trains_nothing(finished_run, tmp_path):
    """`flip_tta` is read by prediction alone: turned on for the U-Net, its predictions (with --flip-tta) and what
    follows them are planned again, no training."""
    workdir, env, _ = finished_run
    config = yaml.safe_load(TINY.read_text())
    config["models"]["unet"]["flip_tta"] = True
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))  # the params' JSON keeps the config's order
    result = snakemake(workdir.parents[1], "-n", "-p", "--cores", "2", "--configfile", str(path), env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    predictions = re.findall(r"liverseg predict .*", output)
    assert predictions and all("--checkpoint models/unet/" not in p or "--flip-tta" in p for p in predictions)
    assert any("--checkpoint models/unet/" in p for p in predictions)
    assert not any("--checkpoint models/resnet50_unet/" in p for p in predictions), "its entry did not change"
    assert "rule train:" not in output and re.search(r"liverseg segmenter --name unet .*--flip-tta liver", output)


def test_a_lowest_lesion_peak_predicts_the_cascades_again_and_trains_nothing(finished_run, tmp_path):
    """`min_lesion_peak` is read by prediction alone: set on the tumour stage in place of the one chosen on the
    validation cases, its cascades are predicted again with --min-lesion-peak and their segmenters describe it; no
    training, no stage-1 prediction."""
    workdir, env, _ = finished_run
    config = yaml.safe_load(TINY.read_text())
    config["models"]["tumour_unet"]["min_lesion_peak"] = 0.999
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    result = snakemake(workdir.parents[1], "-n", "-p", "--cores", "2", "--configfile", str(path), env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    cascades = re.findall(r"liverseg cascade .*", output)
    assert cascades and all("--min-lesion-peak 0.999" in c for c in cascades)
    assert "rule choose_lesion_peak:" not in output, "a fixed cut needs no choice"
    segmenters = re.findall(r"liverseg segmenter --name (\S+) .*", output)
    assert sorted(segmenters) == sorted(config["cascades"]), "the cascades' descriptions only"
    assert all("--min-lesion-peak 0.999" in line for line in re.findall(r"liverseg segmenter .*", output))
    assert "rule train:" not in output and "liverseg predict " not in output


def test_network_jobs_hold_the_gpu_only_where_they_run_on_one(finished_run, tmp_path):
    """On the CPU, training and prediction jobs share the cores by their threads instead of queueing for the `gpu`
    resource one at a time; on a GPU each holds it. `device: auto` looks for a GPU driver's tool on the PATH."""
    workdir, env, _ = finished_run
    driver = tmp_path / "driver"
    driver.mkdir()
    (driver / "nvidia-smi").write_text("#!/bin/sh\n")
    (driver / "nvidia-smi").chmod(0o755)
    with_driver = {**env, "PATH": f"{driver}:{env['PATH']}"}
    config = yaml.safe_load(TINY.read_text())
    cases = (
        ("cpu", with_driver, False),
        ("cuda", env, True),
        ("auto", {**with_driver, "CUDA_VISIBLE_DEVICES": ""}, False),
        ("auto", with_driver, True),
    )
    for device, environment, holds in cases:
        config["train"]["device"] = device
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        forced = ("--forcerun", "train", "predict", "cascade")
        result = snakemake(
            workdir.parents[1], "-n", *forced, "--cores", "2", "--configfile", str(path), env=environment
        )
        assert result.returncode == 0, result.stderr[-3000:]
        jobs = [block for block in (result.stdout + result.stderr).split("\n\n") if "\nrule " in f"\n{block}"]
        network = {rule: [job for job in jobs if f"rule {rule}:" in job] for rule in ("train", "predict", "cascade")}
        assert all(network.values()), network
        assert {"gpu=1" in job for job in sum(network.values(), [])} == {holds}, (device, network)


def test_network_jobs_hold_a_cpu_of_the_cores_and_their_share_of_the_machine_as_threads(finished_run):
    """`--cores` beyond the machine's CPUs (the README's 8 on a laptop): a job that runs a network counts for at least
    one CPU's share of them, so that no more of them run at once than there are CPUs (none takes CPU from a training
    beside it), and gets its share of the CPUs as torch threads, not the cores Snakemake counts for it; the short jobs
    keep one core each. Within the CPUs, every job has the threads its rule asks for."""
    workdir, env, _ = finished_run
    cpus = len(os.sched_getaffinity(0))
    forced = ("--forcerun", "train", "predict", "cascade", "score")
    for cores, share, torch_threads in ((4 * cpus, 4, 1), (cpus, 1, min(2, cpus))):  # tiny.yaml's jobs ask for 2
        result = snakemake(
            workdir.parents[1], "-n", "-p", *forced, "--cores", str(cores), "--configfile", str(TINY), env=env
        )
        assert result.returncode == 0, result.stderr[-3000:]
        log = result.stdout + result.stderr
        threads = re.findall(r"liverseg (train|predict|cascade) .*--threads (\d+)", log)
        assert {rule for rule, _ in threads} == {"train", "predict", "cascade"}
        assert {int(n) for _, n in threads} == {torch_threads}, (cores, threads)
        counted = {}
        for job in log.split("\n\n"):
            rule = re.search(r"^(?:local)?rule (\w+):", job, re.MULTILINE)
            if rule:
                cores_held = re.search(r"^\s+threads: (\d+)", job, re.MULTILINE)
                counted.setdefault(rule[1], set()).add(int(cores_held[1]) if cores_held else 1)
        network = min(max(2, share), cores)
        assert counted["predict"] == counted["cascade"] == {network}, (cores, counted)
        assert counted["score"] == {1}, (cores, counted)


def test_a_replaced_scan_is_preprocessed_again_alone(finished_run, tmp_path):
    """One scan of the raw folder replaced (a voxel changed): ingest checks the folder again and rewrites the case
    table, and of the cases' slices and crops only that case's are made again."""
    workdir, env, _ = finished_run
    project = tmp_path / "project"
    heavy = shutil.ignore_patterns("*.pt", "mlartifacts", "viewer", "figures")  # not what this run goes on to
    shutil.copytree(workdir.parents[1], project, ignore=heavy)
    copy = project / workdir.relative_to(workdir.parents[1])
    cases = pd.read_csv(copy / "data/cases.tsv", sep="\t").set_index("case")
    assert not Path(cases.loc["case_001", "volume"]).is_absolute(), "the copy's scan, not the finished run's"
    volume = copy / cases.loc["case_001", "volume"]
    image = nib.load(volume)
    data = np.asarray(image.dataobj).copy()
    data[0, 0, 0] += 1
    nib.save(nib.Nifti1Image(data, image.affine, image.header), volume)
    made = sorted((copy / "data").glob("slices/*.npz")) + sorted((copy / "data").glob("crops/*/*.npz"))
    before = {path: path.stat().st_mtime_ns for path in made}
    # the checkpoints first: jobs past them are planned once they have run
    for options in (("--forcerun", "ingest", "--until", "split"), ("--until", "preprocess", "crop")):
        result = snakemake(project, "--cores", "2", "--configfile", str(TINY), *options, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
    again = {path.relative_to(copy / "data").as_posix() for path in made if path.stat().st_mtime_ns != before[path]}
    assert again == {"slices/case_001.npz", *(f"crops/{stage}/case_001.npz" for stage in TUMOUR_STAGES)}


def test_the_html_report_holds_the_tables_figures_and_config(finished_run, tmp_path):
    """`snakemake --report` as the README says, then the page opened in headless Chromium (Debian's package)."""
    import base64
    import re

    workdir, env, _ = finished_run
    project = workdir.parents[1]
    (project / "config.yaml").write_text(TINY.read_text())  # the README's command, with the project's config.yaml
    try:
        result = snakemake(project, "--report", "report.html", env=env)
    finally:
        (project / "config.yaml").unlink()
    assert result.returncode == 0, result.stderr[-3000:]
    report = workdir / "report.html"  # in the experiment's folder, as the README says
    page = report.read_text()
    split = json.loads((workdir / "data/split.json").read_text())
    for name in [
        "summary.html",
        "cases.html",
        "config.html",
        "case_dice.png",
        "learning_curves.png",
        "preview.png",
        *(f"overlay_{case}.png" for case in split["val"]),
    ]:
        assert name in page, name

    def embedded(name):
        data = re.search(rf"data:text/html;charset=utf8;filename={re.escape(name)};base64,([A-Za-z0-9+/=]+)", page)
        return base64.b64decode(data.group(1)).decode("utf-8")

    summary = embedded("summary.html")
    assert "<table>" in summary and all(f"<th>{entry}</th>" in summary for entry in SCORED)
    assert all(f"<td>{case}</td>" in embedded("cases.html") for case in split["val"])
    assert "experiment: tiny" in embedded("config.html") and "image_size: 32" in embedded("config.html")
    chromium = program("chromium", "chromium")
    shot = tmp_path / "report.png"
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--screenshot={shot}",
        "--window-size=1280,900",
        "--virtual-time-budget=5000",
        report.as_uri(),
    ]
    subprocess.run(command, capture_output=True, timeout=120, check=True)
    dom = subprocess.run(
        [*command[:4], "--virtual-time-budget=5000", "--dump-dom", report.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    for category in ("1. Results", "2. Training", "3. Overlays", "4. Configuration"):
        assert category in dom, category
    image = plt_image(shot)
    assert image.shape[:2] == (900, 1280) and image.std() > 0.05, "the first screen is not blank"


def test_the_mlflow_ui_serves_the_runs_of_a_moved_project_and_opens_on_them(finished_run, tmp_path):
    """The README's `liverseg ui` on a copy of the tiny experiment in another folder: every model's run with its
    params, metrics and artifacts (read from the new folder) through the REST API, the registered models, and the
    experiment page in headless Chromium."""
    import os
    import shutil
    import signal
    import time
    import urllib.request

    workdir, env, _ = finished_run
    moved = tmp_path / "moved-project" / "experiments" / "tiny"
    shutil.copytree(workdir, moved)
    port = free_port()
    server = subprocess.Popen(
        ["liverseg", "ui", "tiny", "--port", str(port)],
        cwd=moved.parents[1],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"

    def api(path: str, body: dict | None = None, **query) -> dict:
        """GET with a query, or POST `body` as JSON (runs/search is POST only)."""
        from urllib.parse import urlencode

        request = urllib.request.Request(f"{base}/api/2.0/mlflow/{path}?{urlencode(query)}")
        if body is not None:
            request.data, request.method = json.dumps(body).encode(), "POST"
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read())

    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                experiment = api("experiments/get-by-name", experiment_name="liverseg-tiny")["experiment"]
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "mlflow ui did not answer"
                time.sleep(1)
        tags = {tag["key"]: tag["value"] for tag in experiment.get("tags", [])}
        assert tags["mlflow.experimentKind"] == "custom_model_development"
        runs = api("runs/search", {"experiment_ids": [experiment["experiment_id"]], "max_results": 100})["runs"]
        by_name = {run["info"]["run_name"]: run for run in runs}
        assert set(MODELS) <= set(by_name)
        for model in MODELS:
            run = by_name[model]
            params = {p["key"] for p in run["data"]["params"]}
            metrics = {m["key"] for m in run["data"]["metrics"]}
            assert {"train.lr", "recipe.input_slices"} <= params and {"val_loss", "val_dice"} <= metrics
            assert run["info"]["artifact_uri"].startswith((moved / "mlartifacts").as_uri())
            files = {f["path"] for f in api("artifacts/list", run_id=run["info"]["run_id"]).get("files", [])}
            assert {"history.csv", "learning_curves.png", "augmentation_preview.png", "checkpoint"} <= files
            query = f"path=history.csv&run_uuid={run['info']['run_id']}"
            with urllib.request.urlopen(f"{base}/get-artifact?{query}", timeout=30) as answer:
                assert answer.read() == (moved / "models" / model / "history.csv").read_bytes()
        registered = {m["name"] for m in api("registered-models/search", max_results=100)["registered_models"]}
        assert set(MODELS) | {f"{entry}-segmenter" for entry in SCORED} <= registered

        chromium = program("chromium", "chromium")
        # the README's address: MLflow 3.17's UI starts in its GenAI mode whatever the experiment's kind
        page = f"{base}/#/experiments/{experiment['experiment_id']}?workflowType=machine_learning"
        browser = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1440,900"]
        browser += ["--virtual-time-budget=20000", f"--user-data-dir={tmp_path / 'profile'}"]
        shot = tmp_path / "mlflow.png"
        subprocess.run([*browser, f"--screenshot={shot}", page], capture_output=True, timeout=180, check=True)
        dom = subprocess.run([*browser, "--dump-dom", page], capture_output=True, text=True, timeout=180).stdout
        assert "liverseg-tiny" in dom and "matching runs" in dom, dom[-3000:]
        assert all(f">{name}<" in dom for name in [*MODELS, *(f"{entry}-segmenter" for entry in SCORED)]), dom[-3000:]
        assert plt_image(shot).std() > 0.05, "the experiment page is blank"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
