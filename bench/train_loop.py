"""Images per second of liverseg's training loop against a bare loop over the same model and batches, same run.

liverseg's loop (`liverseg.training.train.train_model`) draws each epoch's slices, assembles 2.5D batches, augments them on the
device, steps Adam, validates and logs to MLflow. The bare loop only steps the same model over batches prepared
beforehand (the same augmented batches), which is the most a loop could reach. Target: at least 0.95 of it. Each
runs three epochs and the fastest of the last two counts (the first warms up; one epoch's time varies by a few percent
on a shared CPU). Writes bench/results/train_loop.md.

    python bench/train_loop.py [--slices 512] [--model unet|resnet50_unet]
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from measure import write_result

from liverseg.data.slices import save_slices
from liverseg.devices import autocast, precision_name, training_memory_format
from liverseg.models.networks import build_model
from liverseg.models.recipe import Recipe
from liverseg.training.augment import AugmentSettings
from liverseg.training.dataset import Batches, load_slice_set
from liverseg.training.losses import CombinedLoss
from liverseg.training.sampling import epoch_indices
from liverseg.training.settings import TrainSettings
from liverseg.training.train import train_model

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 3


def write_cases(folder: Path, slices: int, cases: int = 4, size: int = 128) -> list[Path]:
    rng, files = np.random.default_rng(0), []
    y, x = np.mgrid[:size, :size]
    for case in range(cases):
        labels = np.zeros((slices // cases, size, size), np.uint8)
        labels[:, (y - 60) ** 2 + (x - 56) ** 2 < 40**2] = 1
        labels[::3, (y - 50) ** 2 + (x - 60) ** 2 < 8**2] = 2
        image = np.where(labels == 1, 0.6, np.where(labels == 2, 0.4, 0.2)) + rng.normal(0, 0.05, labels.shape)
        save_slices({"image": image.astype(np.float16), "label": labels}, folder / f"case_{case}.npz")
        files.append(folder / f"case_{case}.npz")
    return files


def bare_rate(spec: dict, settings: TrainSettings, augment: AugmentSettings, files: list[Path]) -> float:
    """The same model stepped over one epoch of the same kind of batches, assembled and augmented beforehand."""
    torch.manual_seed(settings.seed)
    recipe, device = Recipe.from_spec(spec), torch.device("cpu")
    data = load_slice_set(files, recipe.input_slices, recipe.neighbour_mm)
    generator = torch.Generator().manual_seed(settings.seed)
    order = epoch_indices(
        data.has_tumour, data.has_liver, recipe.tumour_oversample, recipe.background_fraction, generator
    )
    layout = training_memory_format(device, settings.cpu_bf16)
    prepared = Batches(data, recipe.regions, settings.batch_size, device, augment, layout)
    batches = list(prepared(order, generator))
    model, loss_fn = build_model(spec), CombinedLoss(recipe.loss, recipe.head)
    model = model.to(memory_format=layout)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    model.train()
    seconds = []
    for _ in range(EPOCHS):
        started = time.perf_counter()
        for x, y in batches:
            optimizer.zero_grad(set_to_none=True)
            with autocast(device, settings.cpu_bf16):
                loss = loss_fn(model(x).float(), y)
            loss.backward()
            optimizer.step()
        seconds.append(time.perf_counter() - started)
    return sum(len(x) for x, _ in batches) / min(seconds[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=512)
    parser.add_argument("--model", default="unet", help="a model of config.yaml")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    torch.set_num_threads(cores)
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    spec = {k: v for k, v in config["models"][args.model].items() if k not in ("train", "augment")}
    augment = AugmentSettings(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in config["augment"].items() if k != "seed"}
    )
    train = config["train"]
    settings = TrainSettings(
        epochs=EPOCHS,
        batch_size=train["batch_size"],
        lr=train["lr"],
        device="cpu",
        cpu_bf16=train.get("cpu_bf16", False),
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.chdir(tmp)  # the run's MLflow artifacts land under the working folder
        files = write_cases(tmp, args.slices)
        history = train_model(
            args.model,
            spec,
            settings,
            augment,
            files[:3],
            files[3:],
            tmp / "model",
            f"sqlite:///{tmp / 'mlflow.db'}",
            "bench",
        )
        ours = (history["train_samples"] / history["epoch_seconds"]).iloc[1:].max()
        bare = bare_rate(spec, settings, augment, files[:3])
    ratio = ours / bare
    table = "\n".join(
        [
            "# Training loop speed: liverseg's loop against a bare loop over the same model and batches",
            "",
            f"Model `{args.model}` of config.yaml, {args.slices * 3 // 4} training slices of 128x128, batches of "
            f"{settings.batch_size}, {cores} CPU cores, torch {torch.__version__}, no GPU, "
            f"{precision_name(torch.device('cpu'), settings.cpu_bf16)} "
            "(train.cpu_bf16); the faster of epochs 2 and 3.",
            "",
            "| loop | images per second |",
            "|---|---|",
            f"| bare: forward, loss, backward, Adam step over prepared batches | {bare:,.1f} |",
            f"| liverseg: sampling, 2.5D batches, augmentation on the device, the same steps | {ours:,.1f} |",
            "",
            f"liverseg / bare: {ratio:.3f} ({'meets' if ratio >= 0.95 else 'MISSES'} the target of 0.95).",
            "",
        ]
    )
    write_result("train_loop", table)


if __name__ == "__main__":
    main()
