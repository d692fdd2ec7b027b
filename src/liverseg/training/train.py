"""Training: the loss, sampling and input of the model's recipe, Adam, ReduceLROnPlateau on the validation loss,
the best epoch kept by validation Dice.

With `ema_decay`, what is validated and kept is an exponential moving average of the weights and of the batch-norm
statistics, updated after every step: a model trained at a high learning rate on few patients can swing from one
epoch to the next (in eval mode above all, when its running statistics lag its weights), and the average does not.
"""

from __future__ import annotations

import json
import socket
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from mlflow.tracking import MlflowClient
from tqdm import tqdm

from liverseg.atomic import atomic_path, write_json
from liverseg.devices import autocast, device_name, grad_scaler, select_device
from liverseg.models.checkpoint import make_checkpoint, save_checkpoint
from liverseg.models.heads import region_probabilities
from liverseg.models.networks import build_model, input_divisor
from liverseg.models.recipe import Recipe
from liverseg.reporting.figures import learning_curves
from liverseg.tracking import runs
from liverseg.tracking.registry import register_best
from liverseg.training import resume
from liverseg.training.augment import AugmentSettings, draw_preview
from liverseg.training.dataset import Batches, load_slice_set
from liverseg.training.losses import CombinedLoss
from liverseg.training.sampling import epoch_indices


@dataclass(frozen=True)
class TrainSettings:
    """The config's train section; the defaults are the study's (Adam at 1e-4, no decay, no clipping, no early stop)."""

    epochs: int = 20
    batch_size: int = 16
    lr: float = 1e-4
    optimizer: str = "adam"  # adam: weight decay as an L2 term (the study's); adamw: decoupled weight decay
    weight_decay: float = 0.0
    grad_clip_norm: float | None = None  # largest global gradient norm; None: no clipping
    early_stopping: int | None = None  # stop after this many epochs without a better validation Dice; None: never
    ema_decay: float | None = None  # validate and keep an exponential moving average of the weights; None: the weights
    plateau_factor: float = 0.5
    plateau_patience: int = 2
    plateau_threshold: float = 1e-4  # relative improvement of the validation loss that counts
    plateau_cooldown: int = 0
    plateau_min_lr: float = 0.0
    seed: int = 0
    device: str = "auto"

    @classmethod
    def from_config(cls, section: dict) -> TrainSettings:
        """From the config's train section (plateau settings nested), without `threads`."""
        plateau = {f"plateau_{key}": value for key, value in section.get("plateau", {}).items()}
        return cls(**{k: v for k, v in section.items() if k not in ("plateau", "threads")}, **plateau)


OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


def _validate(model, batches: Batches, n: int, loss_fn: CombinedLoss) -> tuple[float, list[float]]:
    """Validation loss (mean over batches) and Dice per region over all validation slices (global counts)."""
    model.eval()
    regions = len(batches.regions)
    losses, inter, total = [], torch.zeros(regions), torch.zeros(regions)
    with torch.no_grad(), autocast(batches.device):
        for x, y in batches(torch.arange(n)):
            logits = model(x).float()
            losses.append(loss_fn(logits, y).item())
            pred = (region_probabilities(logits, loss_fn.head) > 0.5).float()
            inter += (pred * y).sum((0, 2, 3)).cpu()
            total += (pred.sum((0, 2, 3)) + y.sum((0, 2, 3))).cpu()
    dice = torch.where(total > 0, 2 * inter / total.clamp(min=1), torch.nan)
    return float(np.mean(losses)), dice.tolist()


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
    train_set = load_slice_set(train_files, recipe.input_slices)
    val_set = load_slice_set(val_files, recipe.input_slices)
    model = build_model(spec, weights_path=weights_path).to(device)
    side = train_set.images.shape[-1]
    if side % input_divisor(model):
        raise ValueError(f"image size {side} is not a multiple of {input_divisor(model)}, which model {name} needs")
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    train_batches = Batches(train_set, recipe.regions, settings.batch_size, device, augment)
    val_batches = Batches(val_set, recipe.regions, settings.batch_size, device)
    data = {
        "train_slices": len(train_set),
        "train_tumour_slices": int(train_set.has_tumour.sum()),
        "val_slices": len(val_set),
        "image_size": side,
    }
    params = {
        "model": spec,
        "recipe": asdict(recipe),
        "train": asdict(settings),
        "augment": asdict(augment),
        "data": data,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    digests = {"training": resume.data_digest(train_files), "validation": resume.data_digest(val_files)}
    key = resume.fingerprint({"name": name, **params}, json.dumps(digests))
    state = resume.load_state(out_dir, key)
    if state is None:
        tags = {"host": socket.gethostname(), "device": device_name(device), "dataset_digest": digests["training"]}
        client, run_id = runs.start_run(
            tracking_uri, experiment, name, {**params, "config": config or {}}, Path("mlartifacts"), tags
        )
        runs.log_data(client, run_id, train_files, len(train_set), "training", digests["training"])
        runs.log_data(client, run_id, val_files, len(val_set), "validation", digests["validation"])
    else:  # the same MLflow run goes on
        client, run_id = MlflowClient(tracking_uri=tracking_uri), state["run_id"]
        client.update_run(run_id, status="RUNNING")
    write_json(
        {"run_id": run_id, "model": name, "tracking_uri": tracking_uri, "experiment": experiment}, out_dir / "run.json"
    )

    try:
        with runs.system_metrics(tracking_uri, run_id, resumed=state is not None):
            table = _fit(
                name, spec, recipe, settings, model, train_batches, val_batches, out_dir, client, run_id, key, state
            )
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    best_row = table.loc[table["val_dice"].fillna(-1).idxmax()]
    runs.log_metrics(client, run_id, {"best_epoch": best_row["epoch"], "best_val_dice": best_row["val_dice"]})
    client.log_artifact(run_id, str(out_dir / "best.pt"), artifact_path="checkpoint")
    client.log_artifact(run_id, str(out_dir / "history.csv"))
    with tempfile.TemporaryDirectory() as folder:
        learning_curves({name: out_dir / "history.csv"}, Path(folder) / "learning_curves.png")
        draw_preview(train_files, Path(folder) / "augmentation_preview.png", augment, settings.seed)
        for figure in ("learning_curves.png", "augmentation_preview.png"):
            client.log_artifact(run_id, str(Path(folder) / figure))
    register_best(tracking_uri, run_id, name, out_dir / "best.pt", recipe.input_slices, len(recipe.regions))
    client.set_terminated(run_id, "FINISHED")
    resume.discard(out_dir)
    return table


def _fit(
    name,
    spec,
    recipe: Recipe,
    settings,
    model,
    train_batches: Batches,
    val_batches: Batches,
    out_dir,
    client,
    run_id,
    key,
    state,
):
    """The epoch loop: sample, train, validate, step the scheduler, log, keep the best epoch by validation Dice, and save
    the whole state (`liverseg.training.resume`); from `state`, it goes on after the epoch it was saved at."""
    device = train_batches.device
    loss_fn = CombinedLoss(recipe.loss, recipe.head)
    optimizer = OPTIMIZERS[settings.optimizer](model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer,
        mode="min",
        factor=settings.plateau_factor,
        patience=settings.plateau_patience,
        threshold=settings.plateau_threshold,
        cooldown=settings.plateau_cooldown,
        min_lr=settings.plateau_min_lr,
    )
    scaler = grad_scaler(device)
    ema = None
    if settings.ema_decay is not None:
        ema = torch.optim.swa_utils.AveragedModel(
            model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(settings.ema_decay), use_buffers=True
        )
    kept = model if ema is None else ema.module  # the model that is validated and saved
    generator = torch.Generator().manual_seed(settings.seed)  # sampling, order and augmentation, all seeded
    train_set = train_batches.data
    has_tumour, has_liver = train_set.has_tumour, train_set.has_liver  # fixed for the run: scanned once
    history, best, best_epoch, best_checkpoint, first = [], -np.inf, 0, None, 1
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        history, best, best_epoch, best_checkpoint = (
            state["history"],
            state["best"],
            state["best_epoch"],
            state["best_checkpoint"],
        )
        first = state["epoch"] + 1
        save_checkpoint(best_checkpoint, out_dir / "best.pt")  # Snakemake deleted it before running the job again
    for epoch in range(first, settings.epochs + 1):
        model.train()
        started, losses = time.perf_counter(), []
        order = epoch_indices(has_tumour, has_liver, recipe.tumour_oversample, recipe.background_fraction, generator)
        if len(order) % settings.batch_size == 1:
            order = order[:-1]  # a last batch of one sample breaks batch normalisation
        batches = train_batches(order, generator)
        data_seconds, fetched = 0.0, time.perf_counter()  # waiting for batches (assembly, augmentation) apart
        for x, y in tqdm(batches, total=train_batches.steps(len(order)), desc=f"{name} epoch {epoch}", mininterval=10):
            data_seconds += time.perf_counter() - fetched
            optimizer.zero_grad(set_to_none=True)
            with autocast(device):
                loss = loss_fn(model(x), y)
            scaler.scale(loss).backward()
            if settings.grad_clip_norm is not None:
                scaler.unscale_(optimizer)  # clip the true gradients, not the loss-scaled ones
                torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip_norm)
            scaler.step(optimizer)
            scaler.update()
            if ema is not None:
                ema.update_parameters(model)
            losses.append(loss.item())  # also waits for the device, so compute time is whole
            fetched = time.perf_counter()
        epoch_seconds = time.perf_counter() - started
        val_loss, val_dice = _validate(kept, val_batches, len(val_batches.data), loss_fn)
        row = {
            "epoch": epoch,
            "train_loss": float(np.mean(losses)),
            "val_loss": val_loss,
            **{f"val_dice_{region}": d for region, d in zip(recipe.regions, val_dice)},
            "val_dice": float(np.nanmean(val_dice)) if not np.all(np.isnan(val_dice)) else float("nan"),
            "lr": optimizer.param_groups[0]["lr"],
            "train_samples": len(order),
            "epoch_seconds": epoch_seconds,
            "data_seconds": data_seconds,
            "compute_seconds": epoch_seconds - data_seconds,
            "val_seconds": time.perf_counter() - started - epoch_seconds,
        }
        scheduler.step(val_loss)
        history.append(row)
        runs.log_metrics(client, run_id, {k: v for k, v in row.items() if k != "epoch"}, step=epoch)
        print(" ".join(f"{k}={v:.4g}" for k, v in row.items()), flush=True)
        if np.nan_to_num(row["val_dice"], nan=-1.0) > best:
            best, best_epoch = np.nan_to_num(row["val_dice"], nan=-1.0), epoch
            checkpoint = make_checkpoint(
                spec, kept.state_dict(), train_set.images.shape[-1], name, epoch, row["val_dice"]
            )
            save_checkpoint(checkpoint, out_dir / "best.pt")
            best_checkpoint = checkpoint
        resume.save_state(
            out_dir,
            {
                "fingerprint": key,
                "run_id": run_id,
                "epoch": epoch,
                "history": history,
                "best": best,
                "best_epoch": best_epoch,
                "best_checkpoint": best_checkpoint,
                "model": model.state_dict(),
                "ema": None if ema is None else ema.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "generator": generator.get_state(),
                "torch_rng": torch.get_rng_state(),
            },
        )
        if settings.early_stopping is not None and epoch - best_epoch >= settings.early_stopping:
            print(f"early stop after epoch {epoch}: no better validation Dice since epoch {best_epoch}", flush=True)
            break
    table = pd.DataFrame(history)
    with atomic_path(out_dir / "history.csv") as partial:
        table.to_csv(partial, index=False)
    return table
