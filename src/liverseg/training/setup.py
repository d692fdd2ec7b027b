"""A model and its batches, ready for the epoch loop: what every training does before `fit`, apart from the train
step's MLflow run, so that code which only trains (a benchmark) builds them as the workflow does."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from liverseg.devices import select_device, training_memory_format
from liverseg.models.networks import build_model, input_divisor
from liverseg.models.recipe import Recipe
from liverseg.training.augment import AugmentSettings
from liverseg.training.dataset import Batches, load_slice_set
from liverseg.training.loop import fit
from liverseg.training.patches import PatchBatches, load_volume_set
from liverseg.training.settings import TrainSettings


@dataclass
class Prepared:
    name: str
    spec: dict
    settings: TrainSettings
    model: torch.nn.Module
    recipe: Recipe
    device: torch.device
    train_batches: Batches | PatchBatches
    val_batches: Batches | PatchBatches
    data: dict  # what the sets hold: slices (or cases) and tumour slices, the image size

    def fit(self, out_dir: Path, on_epoch, saved: dict | None = None, run_state: dict | None = None):
        """The epoch loop (`liverseg.training.loop.fit`) on this model and its batches."""
        args = (self.name, self.spec, self.settings, self.model, self.train_batches, self.val_batches)
        return fit(*args, out_dir, on_epoch, saved, run_state)


def prepare_training(
    name: str,
    spec: dict,
    settings: TrainSettings,
    augment: AugmentSettings,
    train_files: list[Path],
    val_files: list[Path],
    weights_path: Path | None = None,
) -> Prepared:
    """The seeded model of `spec` on the settings' device (in its training layout) and its training and validation
    batches, of slices or, for a 3D model, of patches and whole boxes."""
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
    return Prepared(name, spec, settings, model, recipe, device, train_batches, val_batches, data)


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
    small_lesions = recipe.small_lesion_oversample is not None
    train_set = load_slice_set(train_files, recipe.input_slices, recipe.neighbour_mm, small_lesions)
    val_set = load_slice_set(val_files, recipe.input_slices, recipe.neighbour_mm)
    data = {
        "train_slices": len(train_set),
        "train_tumour_slices": int(train_set.has_tumour.sum()),
        "val_slices": len(val_set),
        "image_size": train_set.images.shape[-1],
    }
    if small_lesions:
        data["train_small_lesion_slices"] = int(train_set.small_lesion.sum())
    return (
        Batches(train_set, recipe.regions, settings.batch_size, device, augment, layout),
        Batches(val_set, recipe.regions, settings.batch_size, device, memory_format=layout),
        data,
    )
