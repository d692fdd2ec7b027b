"""A 3D model applied to a whole volume: MONAI's sliding window over patches of the model's patch size, blended as the
recipe says; shared by validation in training and by prediction."""

from __future__ import annotations

import torch

from liverseg.models.recipe import Recipe


def window_logits(model: torch.nn.Module, volumes: torch.Tensor, recipe: Recipe) -> torch.Tensor:
    """(N, C, D, H, W) volumes of any size -> the model's logits of the same size; a volume smaller than the patch is
    padded for the windows and cut back."""
    from monai.inferers import sliding_window_inference  # MONAI takes seconds to import; only 3D stages need it

    window = recipe.sliding_window
    return sliding_window_inference(
        volumes,
        roi_size=recipe.patch,
        sw_batch_size=window["batch_size"],
        predictor=model,
        overlap=window["overlap"],
        mode=window["mode"],
    )
