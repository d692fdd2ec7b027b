"""Training one model, the train rule's step: its data, its MLflow run (parameters, data sets, each epoch's metrics,
system metrics), the epoch loop (`liverseg.training.loop`: the loss, sampling and input of the model's recipe, Adam,
ReduceLROnPlateau on the validation loss, the best epoch kept by validation Dice), then the run's figures and the best
model registered. A killed run resumes in the same MLflow run (`liverseg.training.resume`).
"""

from __future__ import annotations

import json
import socket
import tempfile
from dataclasses import asdict
from pathlib import Path

import pandas as pd
from mlflow.tracking import MlflowClient

from liverseg.atomic import write_json
from liverseg.devices import device_name, precision_name
from liverseg.tracking import runs
from liverseg.training import resume
from liverseg.training.augment import AugmentSettings, draw_preview
from liverseg.training.settings import TrainSettings
from liverseg.training.setup import prepare_training


def train_model(
    name: str,
    spec: dict,
    settings: TrainSettings,
    augment: AugmentSettings,
    train_files: list[Path],
    val_files: list[Path],
    out_dir: Path,
    tracking_uri: str,
    experiment: str,
    weights_path: Path | None = None,
    config: dict | None = None,
) -> pd.DataFrame:
    """Train one model; writes best.pt, history.csv and run.json (the MLflow run) into `out_dir`.

    `weights_path`: the cached pretrained encoder weights, for an smp model with encoder_weights; `config`: the
    config sections the data come from (experiment, data, preprocess, split), recorded with the run beside the model's
    own resolved settings. Sections that do not change this model's training (post-processing, other models) are
    left out, so that changing them does not make Snakemake train it again.
    """
    prepared = prepare_training(name, spec, settings, augment, train_files, val_files, weights_path)
    recipe, device, data = prepared.recipe, prepared.device, prepared.data
    params = {
        "model": spec,
        "recipe": asdict(recipe),
        "train": asdict(settings),
        "augment": asdict(augment),
        "data": data,
        # what the steps computed in here (cpu_bf16 falls back to float32 on a CPU without native bfloat16); part of
        # the resume fingerprint, so a run is not continued in another precision
        "precision": precision_name(device, settings.cpu_bf16),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    sets = {"training": (train_files, data["train_slices"]), "validation": (val_files, data["val_slices"])}
    client, run_id, key, state = _open_run(name, params, config, sets, device, out_dir, tracking_uri, experiment)

    def log_epoch(row: dict) -> None:
        runs.log_metrics(client, run_id, {k: v for k, v in row.items() if k != "epoch"}, step=row["epoch"])

    try:
        with runs.system_metrics(tracking_uri, run_id, resumed=state is not None):
            run_state = {"fingerprint": key, "run_id": run_id}
            table = prepared.fit(out_dir, log_epoch, state, run_state)
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    _finish_run(tracking_uri, client, run_id, name, table, out_dir, train_files, augment, settings.seed, recipe)
    resume.discard(out_dir)
    return table


def _open_run(name, params, config, sets, device, out_dir, tracking_uri, experiment):
    """The MLflow run of this training, with its parameters, data sets and tags, or the run that a saved state goes on
    with; recorded in `run.json`. Also the state's fingerprint, and the state (None for a new run)."""
    digests = {role: resume.data_digest(files) for role, (files, _) in sets.items()}
    key = resume.fingerprint({"name": name, **params}, json.dumps(digests))
    state = resume.load_state(out_dir, key)
    if state is None:
        tags = {"host": socket.gethostname(), "device": device_name(device), "dataset_digest": digests["training"]}
        client, run_id = runs.start_run(
            tracking_uri, experiment, name, {**params, "config": config or {}}, Path("mlartifacts"), tags
        )
        for role, (files, slices) in sets.items():
            runs.log_data(client, run_id, files, slices, role, digests[role])
    else:  # the same MLflow run goes on
        client, run_id = MlflowClient(tracking_uri=tracking_uri), state["run_id"]
        client.update_run(run_id, status="RUNNING")
    write_json(
        {"run_id": run_id, "model": name, "tracking_uri": tracking_uri, "experiment": experiment}, out_dir / "run.json"
    )
    return client, run_id, key, state


def _finish_run(
    tracking_uri: str, client, run_id: str, name: str, table, out_dir: Path, train_files, augment, seed: int, recipe
) -> None:
    """The finished run's best epoch, checkpoint, history and figures in MLflow, and its model registered."""
    from liverseg.reporting.figures import learning_curves  # matplotlib and the pyfunc code, only when a run ends
    from liverseg.tracking.registry import register_best

    best_row = table.loc[table["val_dice"].fillna(-1).idxmax()]
    runs.log_metrics(client, run_id, {"best_epoch": best_row["epoch"], "best_val_dice": best_row["val_dice"]})
    client.log_artifact(run_id, str(out_dir / "best.pt"), artifact_path="checkpoint")
    client.log_artifact(run_id, str(out_dir / "history.csv"))
    with tempfile.TemporaryDirectory() as folder:
        learning_curves({name: out_dir / "history.csv"}, Path(folder) / "learning_curves.png")
        draw_preview(train_files, Path(folder) / "augmentation_preview.png", augment, seed)
        for figure in ("learning_curves.png", "augmentation_preview.png"):
            client.log_artifact(run_id, str(Path(folder) / figure))
    register_best(tracking_uri, run_id, name, out_dir / "best.pt", recipe)
    client.set_terminated(run_id, "FINISHED")
