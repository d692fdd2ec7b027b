"""The epoch loop: sample, train, validate, step the scheduler, keep the best epoch by validation Dice, save the whole
state (`liverseg.training.resume`); a run restored from that state goes on after the epoch it was saved at.

With `ema_decay`, what is validated and kept is an exponential moving average of the weights and of the batch-norm
statistics, updated after every step: a model trained at a high learning rate on few patients can swing from one
epoch to the next (in eval mode above all, when its running statistics lag its weights), and the average does not.
With `swa_start`, from that epoch on it is the mean of the weights after each epoch (stochastic weight averaging,
Izmailov et al. 2018), whose batch-norm statistics are computed again over the training set after each epoch, as
torch's `swa_utils.update_bn` does: the mean of weights has no running statistics of its own.

Nothing here logs to MLflow or draws: each epoch's row goes to the caller's `on_epoch`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from liverseg.atomic import atomic_path
from liverseg.devices import autocast, grad_scaler
from liverseg.models.checkpoint import make_checkpoint, save_checkpoint
from liverseg.models.heads import region_probabilities
from liverseg.models.recipe import Recipe
from liverseg.training import resume
from liverseg.training.losses import CombinedLoss
from liverseg.training.prefetch import prefetch

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


@dataclass
class Progress:
    """The epochs done: their rows, and the best epoch by validation Dice with its checkpoint."""

    history: list[dict] = field(default_factory=list)
    best: float = -np.inf
    best_epoch: int = 0
    best_checkpoint: dict | None = None

    @property
    def epoch(self) -> int:
        return len(self.history)


@dataclass
class Optimisation:
    """What the training steps change besides the weights, built from the train settings."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau
    scaler: torch.amp.GradScaler
    ema: torch.optim.swa_utils.AveragedModel | None
    swa: torch.optim.swa_utils.AveragedModel | None  # the mean of the weights after each epoch from swa_start on
    generator: torch.Generator  # sampling, order and augmentation, all seeded

    @classmethod
    def create(cls, model: torch.nn.Module, settings, device: torch.device) -> Optimisation:
        optimizer = OPTIMIZERS[settings.optimizer](
            model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
        )
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer,
            mode="min",
            factor=settings.plateau_factor,
            patience=settings.plateau_patience,
            threshold=settings.plateau_threshold,
            cooldown=settings.plateau_cooldown,
            min_lr=settings.plateau_min_lr,
        )
        ema = None
        if settings.ema_decay is not None:
            ema = torch.optim.swa_utils.AveragedModel(
                model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(settings.ema_decay), use_buffers=True
            )
        swa = None if settings.swa_start is None else torch.optim.swa_utils.AveragedModel(model)
        return cls(optimizer, scheduler, grad_scaler(device), ema, swa, torch.Generator().manual_seed(settings.seed))

    def kept(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model that is validated and saved."""
        if self.swa is not None and self.swa.n_averaged > 0:
            return self.swa.module
        return model if self.ema is None else self.ema.module


def restore(saved: dict, model: torch.nn.Module, opt: Optimisation) -> Progress:
    """Load a saved state into the model and its optimisation; the progress it had reached."""
    model.load_state_dict(saved["model"])
    opt.optimizer.load_state_dict(saved["optimizer"])
    opt.scheduler.load_state_dict(saved["scheduler"])
    opt.scaler.load_state_dict(saved["scaler"])
    if opt.ema is not None:
        opt.ema.load_state_dict(saved["ema"])
    if opt.swa is not None:
        opt.swa.load_state_dict(saved["swa"])
    opt.generator.set_state(saved["generator"])
    torch.set_rng_state(saved["torch_rng"])
    return Progress(saved["history"], saved["best"], saved["best_epoch"], saved["best_checkpoint"])


def saved_state(model: torch.nn.Module, opt: Optimisation, progress: Progress) -> dict:
    """Everything the next epoch depends on (the caller adds what ties it to its run)."""
    return {
        "epoch": progress.epoch,
        "history": progress.history,
        "best": progress.best,
        "best_epoch": progress.best_epoch,
        "best_checkpoint": progress.best_checkpoint,
        "model": model.state_dict(),
        "ema": None if opt.ema is None else opt.ema.state_dict(),
        "swa": None if opt.swa is None else opt.swa.state_dict(),
        "optimizer": opt.optimizer.state_dict(),
        "scheduler": opt.scheduler.state_dict(),
        "scaler": opt.scaler.state_dict(),
        "generator": opt.generator.get_state(),
        "torch_rng": torch.get_rng_state(),
    }


def train_epoch(
    model, opt: Optimisation, batches, order: torch.Tensor, settings, loss_fn: CombinedLoss, desc: str
) -> dict:
    """One epoch of steps over the slices of `order`: the mean loss, the samples and where the time went."""
    model.train()
    started, losses = time.perf_counter(), []
    if len(order) % settings.batch_size == 1:
        order = order[:-1]  # a last batch of one sample breaks batch normalisation
    data_seconds, fetched = 0.0, time.perf_counter()  # waiting for batches (assembly, augmentation) apart
    served = batches(order, opt.generator)
    if batches.device.type == "cuda":
        served = prefetch(served)
    for x, y in tqdm(served, total=batches.steps(len(order)), desc=desc, mininterval=10):
        data_seconds += time.perf_counter() - fetched
        opt.optimizer.zero_grad(set_to_none=True)
        with autocast(batches.device, settings.cpu_bf16):
            loss = loss_fn(model(x).float(), y)  # the loss in float32 whatever the network computed in
        opt.scaler.scale(loss).backward()
        if settings.grad_clip_norm is not None:
            opt.scaler.unscale_(opt.optimizer)  # clip the true gradients, not the loss-scaled ones
            torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip_norm)
        opt.scaler.step(opt.optimizer)
        opt.scaler.update()
        if opt.ema is not None:
            opt.ema.update_parameters(model)
        losses.append(loss.item())  # also waits for the device, so compute time is whole
        fetched = time.perf_counter()
    epoch_seconds = time.perf_counter() - started
    return {
        "train_loss": float(np.mean(losses)),
        "train_samples": len(order),
        "epoch_seconds": epoch_seconds,
        "data_seconds": data_seconds,
        "compute_seconds": epoch_seconds - data_seconds,
    }


def validate(model, batches, loss_fn: CombinedLoss, cpu_bf16: bool = False) -> tuple[float, list[float]]:
    """Validation loss (mean over batches) and Dice per region over all validation slices or volumes (global
    counts)."""
    model.eval()
    regions = len(batches.regions)
    losses, inter, total = [], torch.zeros(regions), torch.zeros(regions)
    with torch.no_grad(), autocast(batches.device, cpu_bf16):
        for x, y in batches(batches.validation_order()):
            logits = batches.logits(model, x).float()
            losses.append(loss_fn(logits, y).item())
            pred = (region_probabilities(logits, loss_fn.head) > 0.5).float()
            dims = (0, *range(2, pred.ndim))
            inter += (pred * y).sum(dims).cpu()
            total += (pred.sum(dims) + y.sum(dims)).cpu()
    dice = torch.where(total > 0, 2 * inter / total.clamp(min=1), torch.nan)
    return float(np.mean(losses)), dice.tolist()


def recompute_batch_norm(model, batches, cpu_bf16: bool = False) -> None:
    """The batch-norm statistics of `model` computed again over the plain view of `batches` (no augmentation), each
    batch counting alike, as `torch.optim.swa_utils.update_bn` does, through the set's own forward (sliding windows for
    volumes). The batches are drawn in a fixed shuffled order, as in training: a batch of one case's neighbouring
    slices would understate the variance."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative mean
    model.train()
    with torch.no_grad(), autocast(batches.device, cpu_bf16):
        order = batches.validation_order()
        for x, _ in batches(order[torch.randperm(len(order), generator=torch.Generator().manual_seed(0))]):
            batches.logits(model, x)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum


def _epoch_row(epoch: int, trained: dict, val_loss: float, val_dice: dict, opt: Optimisation, validated: float) -> dict:
    """The history's row of an epoch: its losses, validation Dice per region and their mean, learning rate, samples
    and where the time went."""
    dice = list(val_dice.values())
    return {
        "epoch": epoch,
        "train_loss": trained["train_loss"],
        "val_loss": val_loss,
        **{f"val_dice_{region}": d for region, d in val_dice.items()},
        "val_dice": float(np.nanmean(dice)) if not np.all(np.isnan(dice)) else float("nan"),
        "lr": opt.optimizer.param_groups[0]["lr"],
        **{k: v for k, v in trained.items() if k != "train_loss"},
        "val_seconds": time.perf_counter() - validated,
    }


def fit(
    name: str,
    spec: dict,
    settings,
    model,
    train_batches,
    val_batches,
    out_dir: Path,
    on_epoch,
    saved: dict | None = None,
    run_state: dict | None = None,
) -> pd.DataFrame:
    """Train `model` for the settings' epochs (after those of `saved`, if given) and write `best.pt`, `history.csv`
    and the resume state (with `run_state` in it) into `out_dir`; `on_epoch(row)` sees each epoch's row."""
    recipe = Recipe.from_spec(spec)
    loss_fn = CombinedLoss(recipe.loss, recipe.head)
    opt = Optimisation.create(model, settings, train_batches.device)
    progress = Progress()
    if saved is not None:
        progress = restore(saved, model, opt)
        save_checkpoint(progress.best_checkpoint, out_dir / "best.pt")  # Snakemake deleted it before the job ran again
    for epoch in range(progress.epoch + 1, settings.epochs + 1):
        order = train_batches.epoch_order(recipe, opt.generator)
        trained = train_epoch(model, opt, train_batches, order, settings, loss_fn, f"{name} epoch {epoch}")
        validated = time.perf_counter()  # the validation's time includes the mean's batch-norm statistics
        if opt.swa is not None and epoch >= settings.swa_start:
            opt.swa.update_parameters(model)
            recompute_batch_norm(opt.swa.module, train_batches, settings.cpu_bf16)
        val_loss, val_dice = validate(opt.kept(model), val_batches, loss_fn, settings.cpu_bf16)
        row = _epoch_row(epoch, trained, val_loss, dict(zip(recipe.regions, val_dice)), opt, validated)
        opt.scheduler.step(val_loss)
        progress.history.append(row)
        on_epoch(row)
        print(" ".join(f"{k}={v:.4g}" for k, v in row.items()), flush=True)
        if np.nan_to_num(row["val_dice"], nan=-1.0) > progress.best:
            progress.best, progress.best_epoch = np.nan_to_num(row["val_dice"], nan=-1.0), epoch
            progress.best_checkpoint = make_checkpoint(
                spec, opt.kept(model).state_dict(), train_batches.image_size, name, epoch, row["val_dice"]
            )
            save_checkpoint(progress.best_checkpoint, out_dir / "best.pt")
        resume.save_state(out_dir, (run_state or {}) | saved_state(model, opt, progress))
        if settings.early_stopping is not None and epoch - progress.best_epoch >= settings.early_stopping:
            print(
                f"early stop after epoch {epoch}: no better validation Dice since epoch {progress.best_epoch}",
                flush=True,
            )
            break
    table = pd.DataFrame(progress.history)
    with atomic_path(out_dir / "history.csv") as partial:
        table.to_csv(partial, index=False)
    return table
