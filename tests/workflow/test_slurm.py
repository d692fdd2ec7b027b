"""profiles/slurm on a real SLURM: a single-node cluster on 127.0.0.1 (tests/slurm_cluster.py) runs a small
experiment through snakemake-executor-plugin-slurm, its jobs logging to an MLflow tracking server as on a cluster;
training and prediction ask for a GPU, and the results equal a local run's. Skipped, with the reason, where SLURM
cannot be started (it needs root and Debian's packages); in CI, which installs them, that fails instead."""

import os
import re
import signal
import subprocess
from contextlib import contextmanager

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import CONFIGS, ROOT, free_port, snakemake, tool_environment, unavailable, wait_until_answers
from tests.slurm_cluster import missing, slurm_cluster

pytestmark = pytest.mark.workflow
CONFIG = CONFIGS / "slurm.yaml"
GPU_RULES = {"train", "predict", "cascade", "choose_lesion_peak"}
# the test node has 2 CPUs and some GiB: the profile's sizes for real data would never be scheduled on it
SMALL = [
    "--set-threads", "synthesise=2", "ingest=2", "train=2", "predict=2", "cascade=2", "choose_lesion_peak=2",
    "--set-resources", "train:mem_mb=3000", "predict:mem_mb=3000", "cascade:mem_mb=3000", "preprocess:mem_mb=2000",
    "crop:mem_mb=2000", "ingest:mem_mb=2000", "choose_lesion_peak:mem_mb=3000",
    "--default-resources", "mem_mb=1000", "runtime=20",
    "--slurm-init-seconds-before-status-checks", "2", "--seconds-between-status-checks", "2",
]  # fmt: skip


def scontrol_jobs(env) -> list[dict]:
    """Every job the controller still knows (finished ones are kept an hour: MinJobAge), as key=value fields."""
    shown = subprocess.run(["scontrol", "show", "job", "-o"], env=env, capture_output=True, text=True, check=True)
    return [dict(re.findall(r"(\w+)=(\S*)", line)) for line in shown.stdout.splitlines() if line.strip()]


@contextmanager
def mlflow_server(folder, env):
    """The README's shared tracking server (here on 127.0.0.1), stopped with its whole process group."""
    port = free_port()
    command = ["mlflow", "server", "--backend-store-uri", f"sqlite:///{folder}/mlflow.db"]
    command += ["--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answers(f"{url}/health", server, "mlflow server")
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


@pytest.fixture(autouse=True)
def slurm_here():
    if (reason := missing()) is not None:
        unavailable(f"no SLURM here: {reason}")


def test_the_slurm_profile_asks_gpus_for_training_and_prediction_and_gives_the_local_results(tmp_path):
    for folder in ("local", "cluster"):
        (tmp_path / folder).mkdir()
    local = snakemake(tmp_path / "local", "--cores", "2", "--resources", "gpu=1", "--configfile", str(CONFIG),
                      env=tool_environment())  # fmt: skip
    assert local.returncode == 0, local.stderr[-4000:]
    (tmp_path / "tracking").mkdir()
    with slurm_cluster(tmp_path / "slurm-daemons") as env, mlflow_server(tmp_path / "tracking", env) as tracking:
        env = {**tool_environment(), "SLURM_CONF": env["SLURM_CONF"]}
        cluster = snakemake(tmp_path / "cluster", "--profile", str(ROOT / "profiles" / "slurm"),
                            "--configfile", str(CONFIG), "--config", f'mlflow={{tracking_uri: "{tracking}"}}',
                            *SMALL, env=env, timeout=1500)  # fmt: skip
        jobs = scontrol_jobs(env)
        client = MlflowClient(tracking)
        experiment = client.get_experiment_by_name("liverseg-slurm")
        runs = {run.info.run_name: run for run in client.search_runs([experiment.experiment_id])}
        history = [a.path for a in client.list_artifacts(runs["unet"].info.run_id)]
        champion = client.get_model_version_by_alias("unet_cascade-segmenter", "champion")
    assert cluster.returncode == 0, cluster.stdout[-4000:] + cluster.stderr[-4000:]
    assert jobs and all(job["JobState"] == "COMPLETED" for job in jobs), jobs
    by_rule = {}
    for job in jobs:
        rule = re.match(r"rule_(\w+?)_wildcards|rule_(\w+)", job["Comment"])
        by_rule.setdefault(next(g for g in rule.groups() if g), []).append(job)
    assert GPU_RULES <= set(by_rule), sorted(by_rule)
    for rule, submitted in by_rule.items():
        asks_gpu = {job.get("TresPerJob") == "gres:gpu:1" for job in submitted}
        assert asks_gpu == {rule in GPU_RULES}, (rule, submitted)
    assert not {"register", "aggregate", "segmenter"} & set(by_rule), "light rules run where snakemake runs"
    # the jobs logged to the tracking server, whose artifact proxy holds the files
    assert experiment.artifact_location.startswith("mlflow-artifacts:")
    assert {"unet", "tumour_unet", "unet-segmenter", "unet_cascade-segmenter"} <= set(runs)
    assert all(run.info.status == "FINISHED" for run in runs.values())
    assert "history.csv" in history and any((tmp_path / "tracking" / "artifacts").rglob("history.csv"))
    assert champion.run_id == runs["unet_cascade-segmenter"].info.run_id

    local_out, cluster_out = (path / "experiments" / "slurm" for path in (tmp_path / "local", tmp_path / "cluster"))
    scores = [  # times and memory differ between machines, scores do not
        pd.read_csv(out / "results" / "summary.csv").filter(regex="^(?!.*(seconds|minutes|rss))")
        for out in (local_out, cluster_out)
    ]
    pd.testing.assert_frame_equal(*scores)
    for prediction in sorted((local_out / "results").glob("*/post/*.nii.gz")):
        theirs = cluster_out / prediction.relative_to(local_out)
        assert np.array_equal(nib.load(prediction).get_fdata(), nib.load(theirs).get_fdata()), prediction
