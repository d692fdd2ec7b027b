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
import torch
from mlflow.tracking import MlflowClient

from liverseg.atomic import write_json
from liverseg.devices import device_name, precision_name, select_device, training_memory_format
from liverseg.models.networks import build_model, input_divisor
from liverseg.models.recipe import Recipe
from liverseg.tracking import runs
from liverseg.training import resume
from liverseg.training.augment import AugmentSettings, draw_preview
from liverseg.training.dataset import Batches, load_slice_set
from liverseg.training.loop import fit
from liverseg.training.patches import PatchBatches, load_volume_set
from liverseg.training.settings import TrainSettings


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
    torch.manual_seed(settings.seed)
    device = select_device(settings.device)
    recipe = Recipe.from_spec(spec)
    model = build_model(spec, weights_path=weights_path).to(device)
    layout = training_memory_format(device, settings.cpu_bf16)
    train_batches, val_batches, data = _batches(recipe, settings, augment, train_files, val_files, device, layout)
    if train_batches.image_size % input_divisor(model):
        raise ValueError(
            f"image size {train_batches.image_size} is not a multiple of {input_divisor(model)}, which model {name} needs"
        )
    if not recipe.volumetric:
        model = model.to(memory_format=layout)
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
            table = fit(name, spec, settings, model, train_batches, val_batches, out_dir, log_epoch, state, run_state)
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    _finish_run(tracking_uri, client, run_id, name, table, out_dir, train_files, augment, settings.seed, recipe)
    resume.discard(out_dir)
    return table


def _batches(recipe: Recipe, settings: TrainSettings, augment: AugmentSettings, train_files, val_files, device, layout):
    """Training and validation batches, of slices (in the model's layout) or, for a 3D model, of patches and whole
    boxes; what they hold."""
    if recipe.volumetric:
        train_set = load_volume_set(train_files, recipe.crop["size"])
        val_set = load_volume_set(val_files, recipe.crop["size"], box_only=True)
        data = {"train_cases": len(train_set), "train_tumour_cases": int(train_set.has_tumour.sum())}
        data |= {"train_slices": train_set.slices, "val_slices": val_set.slices}
        return (
            PatchBatches(train_set, recipe, settings.batch_size, device, augment),
            PatchBatches(val_set, recipe, settings.batch_size, device),
            data | {"image_size": recipe.crop["size"]},
        )
    train_set = load_slice_set(train_files, recipe.input_slices)
    val_set = load_slice_set(val_files, recipe.input_slices)
    data = {
        "train_slices": len(train_set),
        "train_tumour_slices": int(train_set.has_tumour.sum()),
        "val_slices": len(val_set),
        "image_size": train_set.images.shape[-1],
    }
    return (
        Batches(train_set, recipe.regions, settings.batch_size, device, augment, layout),
        Batches(val_set, recipe.regions, settings.batch_size, device, memory_format=layout),
        data,
    )


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
