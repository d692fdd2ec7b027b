"""A trained model's file (`best.pt`): plain tensors and values, read back with `torch.load(weights_only=True)`.

A model's folder (`models/<model>/`) holds its `best.pt`, or, trained by cross-validation, one `fold_<k>/` folder per
fold, each holding one.

Its keys: `name`; `spec`, the model's config entry, which builds the network and its recipe; `targets`, the regions its
head predicts, outermost first; `epoch` and `val_dice`, of the epoch kept; `image_size`, the in-plane side it was
trained at; `state_dict`, the weights.
"""

from __future__ import annotations

from pathlib import Path

import torch

from liverseg.atomic import atomic_path
from liverseg.devices import memory_format
from liverseg.models.networks import build_model
from liverseg.models.recipe import Recipe


def make_checkpoint(
    spec: dict, state_dict: dict, image_size: int, name: str = "", epoch: int = 0, val_dice: float = float("nan")
) -> dict:
    """The checkpoint of a model entry's weights; the tensors are copied to the CPU (on the CPU, `.cpu()` is the live
    tensor, which later training steps change in place)."""
    return {
        "name": name,
        "spec": spec,
        "targets": list(Recipe.from_spec(spec).regions),
        "epoch": epoch,
        "val_dice": val_dice,
        "image_size": int(image_size),
        "state_dict": {k: v.detach().cpu().clone() for k, v in state_dict.items()},
    }


def save_checkpoint(checkpoint: dict, path: Path) -> None:
    with atomic_path(path) as partial:
        torch.save(checkpoint, partial)


def load_model(path: Path, device: torch.device) -> tuple[torch.nn.Module, Recipe, int]:
    """The trained model, its recipe, and the image size it was trained at (in-plane pixels)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = build_model(state["spec"], pretrained=False)
    model.load_state_dict(state["state_dict"])
    recipe = Recipe.from_spec(state["spec"])
    if not recipe.volumetric:  # channels-last is a 2D layout
        model = model.to(memory_format=memory_format(device))
    return model.to(device).eval(), recipe, int(state["image_size"])


def recipe_of(path: Path) -> tuple[Recipe, int]:
    """A trained model's recipe and image size, without building its network."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    return Recipe.from_spec(state["spec"]), int(state["image_size"])


def load_models(paths: list[Path], device: torch.device) -> tuple[list[torch.nn.Module], Recipe, int]:
    """Several trainings of one model entry (the folds of an ensemble), which must share their recipe and image size;
    one path: that model alone."""
    loaded = [load_model(path, device) for path in paths]
    check_one_entry(paths, [(recipe, size) for _, recipe, size in loaded])
    return [model for model, _, _ in loaded], loaded[0][1], loaded[0][2]


def check_one_entry(paths: list[Path], recipes: list[tuple[Recipe, int]]) -> None:
    """Refuse an ensemble of trainings whose recipes or image sizes differ, naming the first that differs."""
    for path, recipe in zip(paths[1:], recipes[1:]):
        if recipe != recipes[0]:
            raise ValueError(
                f"{path}: not the same model as {paths[0]} (recipe or image size differ); an ensemble "
                "averages trainings of one model entry"
            )


def training_folders(folder: Path) -> list[Path]:
    """The folders a model was trained into: its own, or its `fold_<k>` folders in order."""
    folds = sorted(Path(folder).glob("fold_*"), key=lambda path: int(path.name.split("_")[1]))
    return folds or [Path(folder)]
