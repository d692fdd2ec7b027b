"""The config's train section as the epoch loop reads it; apart from the training step's MLflow run, so that code
that only trains (a benchmark, a device check) imports no MLflow."""

from __future__ import annotations

from dataclasses import dataclass


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
    # from this epoch on, validate and keep the mean of the weights after each epoch (stochastic weight averaging), its
    # batch-norm statistics computed again over the training set; None: the weights
    swa_start: int | None = None
    plateau_factor: float = 0.5
    plateau_patience: int = 2
    plateau_threshold: float = 1e-4  # relative improvement of the validation loss that counts
    plateau_cooldown: int = 0
    plateau_min_lr: float = 0.0
    seed: int = 0
    device: str = "auto"
    cpu_bf16: bool = False  # on a CPU with native bfloat16 (AMX, AVX-512 BF16), train in bfloat16 mixed precision

    def __post_init__(self):
        if self.swa_start is not None and self.ema_decay is not None:
            raise ValueError("train: swa_start and ema_decay are two ways to average the weights; set one")
        if self.swa_start is not None and not 1 <= self.swa_start <= self.epochs:
            raise ValueError(f"train: swa_start {self.swa_start} lies outside the epochs 1 to {self.epochs}")

    @classmethod
    def from_config(cls, section: dict) -> TrainSettings:
        """From the config's train section (plateau settings nested), without `threads`."""
        plateau = {f"plateau_{key}": value for key, value in section.get("plateau", {}).items()}
        return cls(**{k: v for k, v in section.items() if k not in ("plateau", "threads")}, **plateau)
