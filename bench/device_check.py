"""A short training and a prediction of each kind of network on this run's device, as the workflow runs them there
(CUDA: mixed precision, channels-last), set against the same weights predicting in float32 on the CPU, same run.

Each model of config.yaml, and the 3D (MONAI DynUNet) and transformer (MiT-B0) tumour stages of config/ablation.yaml,
trains `--epochs` epochs through liverseg's epoch loop (`liverseg.training.loop.fit`: its batches, augmentation on the
device, loss, Adam, validation) on synthetic data of the model's input size (a liver holding a lesion on a textured
background, 2D slices or 3D boxes); its best checkpoint then segments a held-out case through prediction's own
functions (`segment_slices`; `segment_volume`, MONAI's sliding window, for the 3D stage) on the device and on the CPU in
float32. The labels of the two must agree: what mixed precision changes is a few voxels at the edges. Writes
bench/results/device_check.md.

    python bench/device_check.py [--epochs 3] [--slices 512] [--device auto]
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from input_pipeline import slice_set
from measure import write_result
from train_flops import model_inputs

from liverseg.devices import machine_description, precision_name, select_device, training_memory_format
from liverseg.inference.predict import segment_slices, segment_volume
from liverseg.labels import tumour_mask
from liverseg.models.checkpoint import load_models
from liverseg.models.networks import build_model
from liverseg.models.recipe import Recipe
from liverseg.training.augment import AugmentSettings
from liverseg.training.dataset import Batches
from liverseg.training.loop import fit
from liverseg.training.patches import PatchBatches, VolumeSet
from liverseg.training.settings import TrainSettings

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")
# the networks beside config.yaml's: the ablation's 3D and transformer tumour stages
OTHER_KINDS = ("tumour_3d", "tumour_mit")


def networks(config: dict, ablation: dict):
    """(name, spec, input size, batch size) of config.yaml's models and the ablation's other kinds."""
    chosen = {"models": {**config["models"], **{n: ablation["models"][n] for n in OTHER_KINDS}}}
    for name, spec, size in model_inputs({**config, **chosen}):
        yield name, spec, size, chosen["models"][name].get("train", {}).get("batch_size", config["train"]["batch_size"])


def volume(slices: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A liver box: an ellipsoid holding a spherical lesion on a textured background, (slices, size, size)."""
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[:slices, :size, :size] / np.array([slices, size, size])[:, None, None, None]
    liver = (z - 0.5) ** 2 + (y - 0.5) ** 2 + (x - 0.45) ** 2 < 0.16
    centre = rng.uniform(0.35, 0.6, 3)
    lesion = ((z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 < rng.uniform(0.004, 0.015)) & liver
    label = np.where(lesion, 2, np.where(liver, 1, 0)).astype(np.uint8)
    image = 0.4 + 0.2 * liver - 0.15 * lesion + 0.05 * rng.standard_normal(label.shape)
    return torch.from_numpy(image.astype(np.float16)), torch.from_numpy(label)


def volume_set(cases: int, slices: int, size: int, seed: int) -> VolumeSet:
    images, labels = zip(*(volume(slices, size, seed + case) for case in range(cases)))
    return VolumeSet(list(images), list(labels), [torch.nonzero(tumour_mask(label)) for label in labels])


def batches(spec: dict, size: int, batch: int, augment: AugmentSettings, device: torch.device, slices: int):
    """Training and validation batches of the model's kind, and a held-out case (images, labels) to segment."""
    recipe = Recipe.from_spec(spec)
    if recipe.volumetric:
        depth = 2 * recipe.patch[0]
        train, val = volume_set(slices // depth, depth, size, 0), volume_set(2, depth, size, 100)
        held_out = volume(depth, size, 200)
        return PatchBatches(train, recipe, batch, device, augment), PatchBatches(val, recipe, batch, device), held_out
    layout = training_memory_format(device)
    train = slice_set(slices, size, recipe.input_slices, recipe.crop is not None)
    val = slice_set(slices // 4, size, recipe.input_slices, recipe.crop is not None, seed=1)
    held_out = slice_set(64, size, 1, False, seed=2)
    return (
        Batches(train, recipe.regions, batch, device, augment, layout),
        Batches(val, recipe.regions, batch, device, memory_format=layout),
        (held_out.images, held_out.labels),
    )


def segment(checkpoint: Path, images: np.ndarray, device: torch.device) -> tuple[np.ndarray, float]:
    """The checkpoint's labels of one case on `device`, and the seconds they took (after a warm-up)."""
    models, recipe, _ = load_models([checkpoint], device)
    work = segment_volume if recipe.volumetric else segment_slices
    work(models, recipe, images, images.shape[-2:], device)
    started = time.perf_counter()
    labels = work(models, recipe, images, images.shape[-2:], device)
    return labels, time.perf_counter() - started


def dice(x: np.ndarray, y: np.ndarray) -> str:
    """Dice of two masks; 'none' where both are empty."""
    total = x.sum() + y.sum()
    return f"{2 * (x & y).sum() / total:.4f}" if total else "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the short training")
    parser.add_argument("--slices", type=int, default=512, help="training slices per model (3D: in boxes)")
    parser.add_argument("--device", default="auto", help="auto, cuda, mps or cpu")
    args = parser.parse_args()
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    ablation = yaml.safe_load((ROOT / "config" / "ablation.yaml").read_text())
    device = select_device(args.device)
    settings = TrainSettings(epochs=args.epochs, lr=1e-3, device=str(device))
    rows = []
    for name, spec, size, batch in networks(config, ablation):
        augment = AugmentSettings.from_config(config["augment"])
        torch.manual_seed(0)
        model = build_model(spec).to(device)
        if not Recipe.from_spec(spec).volumetric:
            model = model.to(memory_format=training_memory_format(device))
        train, val, (images, truth) = batches(spec, size, batch, augment, device, args.slices)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        with tempfile.TemporaryDirectory() as folder:
            history = fit(name, spec, settings, model, train, val, Path(folder), lambda row: None)
            peak = f"{torch.cuda.max_memory_allocated(device) / 2**20:,.0f}" if device.type == "cuda" else "-"
            images = images.float().numpy()
            on_device, device_seconds = segment(Path(folder) / "best.pt", images, device)
            on_cpu, cpu_seconds = segment(Path(folder) / "best.pt", images, CPU)
        last = history.iloc[-1]
        regions = Recipe.from_spec(spec).regions
        tumour = len(regions)  # the tumour's class: 2 in stage 1's labels, 1 in a tumour stage's
        rows.append(
            f"| {name} | {spec['kind']}{'/' + spec['encoder'] if 'encoder' in spec else ''} | {batch} "
            f"| {last['train_samples'] / last['epoch_seconds']:,.0f} | {last['data_seconds'] / last['epoch_seconds']:.2f} "
            f"| {history['train_loss'].iloc[0]:.3f} -> {last['train_loss']:.3f} | {last['val_dice']:.3f} | {peak} "
            f"| {device_seconds:.2f} | {cpu_seconds:.2f} | {cpu_seconds / device_seconds:.1f} "
            f"| {dice(on_device >= 1, on_cpu >= 1) if len(regions) > 1 else '-'} "
            f"| {dice(on_device == tumour, on_cpu == tumour)} | {dice(on_device == tumour, truth.numpy() == 2)} |"
        )
    table = "\n".join(
        [
            f"# A short training and prediction on {device.type}, against float32 prediction on the CPU",
            "",
            f"{machine_description()}, torch {torch.__version__}, training in {precision_name(device)} "
            f"({'channels-last' if training_memory_format(device) == torch.channels_last else 'default layout'} "
            f"for 2D networks), {args.epochs} epochs of {args.slices} synthetic slices per model (3D: in boxes of twice "
            "the patch's depth), Adam at 1e-3; prediction of one held-out case after a warm-up.",
            "",
            "| model | kind | batch | training (slices or patches/s) | data share of the epoch | train loss | "
            f"val Dice | peak {device.type} memory (MiB) | prediction on {device.type} (s) | on the CPU, float32 (s) "
            f"| speed-up | liver Dice {device.type} vs CPU | tumour Dice {device.type} vs CPU | tumour Dice vs truth |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            "The last epoch's rates; 'data share': the time the loop waited for batches (gathering, moving, augmenting). "
            f"The Dice of {device.type} against the CPU compares the same weights' labels: 1 is identical, 'none' "
            "where neither predicts the class. The truth column shows only that the short training learnt something.",
            "",
        ]
    )
    write_result("device_check", table)


if __name__ == "__main__":
    main()
