"""A trained model's file (`best.pt`): plain tensors and values, read back with `torch.load(weights_only=True)`.

Its keys: `name`; `spec`, the model's config entry, which builds the network and its recipe; `targets`, the regions its
head predicts, outermost first; `epoch` and `val_dice`, of the epoch kept; `image_size`, the in-plane side it was
trained at; `state_dict`, the weights.
"""

from __future__ import annotations

from pathlib import Path

import torch

from liverseg.atomic import atomic_path
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
    return model.to(device).eval(), Recipe.from_spec(state["spec"]), int(state["image_size"])
