"""Training: the loss, sampling and input of the model's recipe, Adam, ReduceLROnPlateau on the validation loss,
the best epoch kept by validation Dice."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from liverseg import tracking
from liverseg.atomic import atomic_path, write_json
from liverseg.augment import AugmentSettings
from liverseg.losses import CombinedLoss, region_probabilities
from liverseg.models import Recipe, build_model, input_divisor
from liverseg.sampling import epoch_indices
from liverseg.training_set import Batches, load_slice_set


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 20
    batch_size: int = 16
    lr: float = 1e-4
    plateau_factor: float = 0.5
    plateau_patience: int = 2
    seed: int = 0
    device: str = "auto"


def select_device(name: str) -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _validate(model, batches: Batches, n: int, loss_fn: CombinedLoss) -> tuple[float, list[float]]:
    """Validation loss (mean over batches) and Dice per region over all validation slices (global counts)."""
    model.eval()
    regions = len(batches.regions)
    losses, inter, total = [], torch.zeros(regions), torch.zeros(regions)
    with torch.no_grad(), torch.autocast(batches.device.type, enabled=batches.device.type == "cuda"):
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
) -> pd.DataFrame:
    """Train one model; writes best.pt, history.csv and run.json (the MLflow run) into `out_dir`."""
    torch.manual_seed(settings.seed)
    device = select_device(settings.device)
    recipe = Recipe.from_spec(spec)
    train_set = load_slice_set(train_files, recipe.input_slices)
    val_set = load_slice_set(val_files, recipe.input_slices)
    model = build_model(spec).to(device)
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
    params = {"model": spec, "recipe": asdict(recipe), "train": asdict(settings), "augment": asdict(augment), "data": data}
    client, run_id = tracking.start_run(tracking_uri, experiment, name, params, Path("mlartifacts"))
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json({"run_id": run_id, "model": name, "tracking_uri": tracking_uri, "experiment": experiment}, out_dir / "run.json")

    try:
        table = _fit(name, spec, recipe, settings, model, train_batches, val_batches, out_dir, client, run_id)
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    best_row = table.loc[table["val_dice"].fillna(-1).idxmax()]
    tracking.log_metrics(client, run_id, {"best_epoch": best_row["epoch"], "best_val_dice": best_row["val_dice"]})
    client.log_artifact(run_id, str(out_dir / "best.pt"), artifact_path="checkpoint")
    client.log_artifact(run_id, str(out_dir / "history.csv"))
    client.set_terminated(run_id, "FINISHED")
    return table


def _fit(name, spec, recipe: Recipe, settings, model, train_batches: Batches, val_batches: Batches, out_dir, client, run_id):
    """The epoch loop: sample, train, validate, step the scheduler, log, keep the best epoch by validation Dice."""
    device = train_batches.device
    loss_fn = CombinedLoss(recipe.loss, recipe.head)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=settings.plateau_factor, patience=settings.plateau_patience
    )
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")
    generator = torch.Generator().manual_seed(settings.seed)  # sampling, order and augmentation, all seeded
    train_set = train_batches.data
    has_tumour, has_liver = train_set.has_tumour, train_set.has_liver  # fixed for the run: scanned once
    history, best = [], -np.inf
    for epoch in range(1, settings.epochs + 1):
        model.train()
        started, losses = time.perf_counter(), []
        order = epoch_indices(
            has_tumour, has_liver, recipe.tumour_oversample, recipe.background_fraction, generator
        )
        if len(order) % settings.batch_size == 1:
            order = order[:-1]  # a last batch of one sample breaks batch normalisation
        batches = train_batches(order, generator)
        for x, y in tqdm(batches, total=train_batches.steps(len(order)), desc=f"{name} epoch {epoch}", mininterval=10):
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, enabled=device.type == "cuda"):
                loss = loss_fn(model(x), y)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            losses.append(loss.item())
        epoch_seconds = time.perf_counter() - started
        val_loss, val_dice = _validate(model, val_batches, len(val_batches.data), loss_fn)
        row = {
            "epoch": epoch,
            "train_loss": float(np.mean(losses)),
            "val_loss": val_loss,
            **{f"val_dice_{region}": d for region, d in zip(recipe.regions, val_dice)},
            "val_dice": float(np.nanmean(val_dice)) if not np.all(np.isnan(val_dice)) else float("nan"),
            "lr": optimizer.param_groups[0]["lr"],
            "train_samples": len(order),
            "epoch_seconds": epoch_seconds,
            "val_seconds": time.perf_counter() - started - epoch_seconds,
        }
        scheduler.step(val_loss)
        history.append(row)
        tracking.log_metrics(client, run_id, {k: v for k, v in row.items() if k != "epoch"}, step=epoch)
        print(" ".join(f"{k}={v:.4g}" for k, v in row.items()), flush=True)
        if np.nan_to_num(row["val_dice"], nan=-1.0) > best:
            best = np.nan_to_num(row["val_dice"], nan=-1.0)
            checkpoint = {
                "name": name,
                "spec": spec,
                "targets": list(recipe.regions),
                "epoch": epoch,
                "val_dice": row["val_dice"],
                "image_size": int(train_set.images.shape[-1]),
                "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
            }
            with atomic_path(out_dir / "best.pt") as partial:
                torch.save(checkpoint, partial)
    table = pd.DataFrame(history)
    with atomic_path(out_dir / "history.csv") as partial:
        table.to_csv(partial, index=False)
    return table
