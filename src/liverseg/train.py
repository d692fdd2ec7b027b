"""Training as in the study: Tversky loss, Adam, ReduceLROnPlateau on the validation loss, best epoch kept."""

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
from liverseg.data.slices import load_slices
from liverseg.losses import tversky_loss
from liverseg.metrics import TARGETS
from liverseg.models import build_model, input_divisor


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 20
    batch_size: int = 16
    lr: float = 1e-4
    alpha: float = 0.7  # weight of false positives in the Tversky loss
    beta: float = 0.3  # weight of false negatives
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


def target_channels(labels: torch.Tensor) -> torch.Tensor:
    """(N, H, W) label maps -> (N, len(TARGETS), H, W) binary targets, liver first."""
    return torch.stack([select(labels) for select in TARGETS.values()], dim=1).float()


def _load(paths) -> tuple[torch.Tensor, torch.Tensor]:
    cases = [load_slices(path) for path in paths]
    images = torch.from_numpy(np.concatenate([c["image"] for c in cases]))[:, None]  # float16: half the memory
    labels = torch.from_numpy(np.concatenate([c["label"] for c in cases]))
    return images, labels


class _Batches:
    """Mini-batches of in-memory slices moved to the device; pinned memory only where it helps (CUDA)."""

    def __init__(self, images, labels, batch_size: int, device: torch.device):
        pin = device.type == "cuda"
        self.images = images.pin_memory() if pin else images
        self.labels = labels.pin_memory() if pin else labels
        self.batch_size, self.device = batch_size, device
        self.memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format

    def __call__(self, order: torch.Tensor):
        for start in range(0, len(order), self.batch_size):
            index = order[start : start + self.batch_size]
            x = self.images[index].to(self.device, non_blocking=True).float()
            x = x.contiguous(memory_format=self.memory_format)
            y = target_channels(self.labels[index]).to(self.device, non_blocking=True)
            yield x, y


def _validate(model, batches: _Batches, n: int, settings: TrainSettings) -> tuple[float, list[float]]:
    """Validation loss (mean over batches) and Dice per target over all validation slices (global counts)."""
    model.eval()
    losses, inter, total = [], torch.zeros(len(TARGETS)), torch.zeros(len(TARGETS))
    with torch.no_grad(), torch.autocast(batches.device.type, enabled=batches.device.type == "cuda"):
        for x, y in batches(torch.arange(n)):
            logits = model(x).float()
            losses.append(tversky_loss(logits, y, settings.alpha, settings.beta).item())
            pred = (logits > 0).float()
            inter += (pred * y).sum((0, 2, 3)).cpu()
            total += (pred.sum((0, 2, 3)) + y.sum((0, 2, 3))).cpu()
    dice = torch.where(total > 0, 2 * inter / total.clamp(min=1), torch.nan)
    return float(np.mean(losses)), dice.tolist()


def train_model(
    name: str,
    spec: dict,
    settings: TrainSettings,
    train_file: Path,
    val_files: list[Path],
    out_dir: Path,
    tracking_uri: str,
    experiment: str,
) -> pd.DataFrame:
    """Train one model; writes best.pt, history.csv and run.json (the MLflow run) into `out_dir`."""
    torch.manual_seed(settings.seed)
    device = select_device(settings.device)
    train_images, train_labels = _load([train_file])
    val_images, val_labels = _load(val_files)
    model = build_model(spec, classes=len(TARGETS)).to(device)
    side = train_images.shape[-1]
    if side % input_divisor(model):
        raise ValueError(f"image size {side} is not a multiple of {input_divisor(model)}, which model {name} needs")
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    train_batches = _Batches(train_images, train_labels, settings.batch_size, device)
    val_batches = _Batches(val_images, val_labels, settings.batch_size, device)
    data = {"train_slices": len(train_images), "val_slices": len(val_images), "image_size": side}
    params = {"model": spec, "train": asdict(settings), "data": data}
    client, run_id = tracking.start_run(tracking_uri, experiment, name, params, Path("mlartifacts"))
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json({"run_id": run_id, "tracking_uri": tracking_uri, "experiment": experiment}, out_dir / "run.json")

    try:
        table = _fit(name, spec, settings, model, device, train_batches, val_batches, len(val_images), out_dir, client, run_id)
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    best_row = table.loc[table["val_dice"].fillna(-1).idxmax()]
    tracking.log_metrics(client, run_id, {"best_epoch": best_row["epoch"], "best_val_dice": best_row["val_dice"]})
    client.log_artifact(run_id, str(out_dir / "best.pt"), artifact_path="checkpoint")
    client.log_artifact(run_id, str(out_dir / "history.csv"))
    client.set_terminated(run_id, "FINISHED")
    return table


def _fit(name, spec, settings, model, device, train_batches, val_batches, n_val, out_dir, client, run_id) -> pd.DataFrame:
    """The epoch loop: train, validate, step the scheduler, log, keep the best epoch by validation Dice."""
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=settings.plateau_factor, patience=settings.plateau_patience
    )
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")
    shuffle = torch.Generator().manual_seed(settings.seed)
    n_train = len(train_batches.images)
    history, best = [], -np.inf
    for epoch in range(1, settings.epochs + 1):
        model.train()
        started, losses = time.perf_counter(), []
        order = torch.randperm(n_train, generator=shuffle)
        steps = -(-n_train // settings.batch_size)
        for x, y in tqdm(train_batches(order), total=steps, desc=f"{name} epoch {epoch}", mininterval=10):
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, enabled=device.type == "cuda"):
                loss = tversky_loss(model(x), y, settings.alpha, settings.beta)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            losses.append(loss.item())
        epoch_seconds = time.perf_counter() - started
        val_loss, val_dice = _validate(model, val_batches, n_val, settings)
        row = {
            "epoch": epoch,
            "train_loss": float(np.mean(losses)),
            "val_loss": val_loss,
            **{f"val_dice_{target}": d for target, d in zip(TARGETS, val_dice)},
            "val_dice": float(np.nanmean(val_dice)) if not np.all(np.isnan(val_dice)) else float("nan"),
            "lr": optimizer.param_groups[0]["lr"],
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
                "targets": list(TARGETS),
                "epoch": epoch,
                "val_dice": row["val_dice"],
                "image_size": int(train_batches.images.shape[-1]),
                "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
            }
            with atomic_path(out_dir / "best.pt") as partial:
                torch.save(checkpoint, partial)
    table = pd.DataFrame(history)
    with atomic_path(out_dir / "history.csv") as partial:
        table.to_csv(partial, index=False)
    return table
