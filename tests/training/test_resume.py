"""Kill-and-resume through the real workflow: the training job is SIGKILLed mid-run, the workflow is run again, and
training goes on from its last finished epoch to the same weights and history as a run never stopped."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

from tests.helpers import RESUME, ROOT, snakemake, tool_environment

pytestmark = pytest.mark.workflow
TARGET = ("models/unet/best.pt", "--cores", "2", "--resources", "gpu=1", "--configfile", str(RESUME))
TIMES = ["epoch_seconds", "data_seconds", "compute_seconds", "val_seconds"]


def training_processes(workdir: Path) -> list[int]:
    """Pids of `python -m liverseg train` processes running in `workdir`."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            if b"train" in command and b"liverseg" in command[:3] and Path(os.readlink(entry / "cwd")) == workdir:
                pids.append(int(entry.name))
        except (OSError, ValueError):
            continue
    return pids


def test_a_killed_training_job_resumes_to_the_uninterrupted_result(tmp_path):
    env = tool_environment()
    whole = tmp_path / "whole"
    whole.mkdir()
    assert snakemake(whole, *TARGET, env=env).returncode == 0

    killed = tmp_path / "killed"
    killed.mkdir()
    workdir = killed / "experiments" / "resume"
    command = ["snakemake", "-s", str(ROOT / "Snakefile"), *TARGET]
    run = subprocess.Popen(
        command, cwd=killed, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        state, deadline = workdir / "models" / "unet" / "resume.pt", time.monotonic() + 600
        while not (state.exists() and torch.load(state, weights_only=False)["epoch"] >= 3):
            assert time.monotonic() < deadline and run.poll() is None, "training ended before it could be killed"
            time.sleep(0.1)
        for pid in training_processes(workdir.resolve()):
            os.kill(pid, signal.SIGKILL)
        assert run.wait(timeout=120) != 0, "the workflow fails with its training job"
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    killed_at = torch.load(state, weights_only=False)["epoch"]
    assert 3 <= killed_at < 8 and not (workdir / "models" / "unet" / "history.csv").exists()

    again = snakemake(killed, *TARGET, env=env)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    log = (workdir / "logs" / "train" / "unet.log").read_text()
    assert f"resuming after epoch {killed_at}" in log
    resumed = pd.read_csv(workdir / "models" / "unet" / "history.csv")
    plain = pd.read_csv(whole / "experiments" / "resume" / "models" / "unet" / "history.csv")
    pd.testing.assert_frame_equal(resumed.drop(columns=TIMES), plain.drop(columns=TIMES), check_exact=True)
    weights = [
        torch.load(root / "experiments" / "resume" / "models" / "unet" / "best.pt", weights_only=False)["state_dict"]
        for root in (killed, whole)
    ]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not (workdir / "models" / "unet" / "resume.pt").exists()

    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("liverseg-resume").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED", "one MLflow run, continued"
    assert [m.step for m in client.get_metric_history(runs[0].info.run_id, "val_loss")] == list(range(1, 9))
