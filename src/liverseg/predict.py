"""Label maps for whole cases, written back in each scan's own geometry and header."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from liverseg.data import nifti
from liverseg.data.slices import load_slices, resize_images
from liverseg.models import build_model
from liverseg.train import select_device


def load_model(checkpoint: Path, device: torch.device) -> tuple[torch.nn.Module, dict]:
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model = build_model(state["spec"], classes=len(state["targets"]), pretrained=False)
    model.load_state_dict(state["state_dict"])
    return model.to(device).eval(), state


def probabilities_to_labels(probabilities: torch.Tensor) -> torch.Tensor:
    """(N, 2, H, W) liver and tumour probabilities -> (N, H, W) labels; tumour is only kept inside the liver."""
    liver, tumour = probabilities[:, 0] > 0.5, probabilities[:, 1] > 0.5
    return liver.to(torch.uint8) + (liver & tumour).to(torch.uint8)


def predict_case(checkpoint: Path, slices_file: Path, volume: Path, out: Path, device: str = "auto", batch_size: int = 16) -> None:
    """Segment every slice of a case and write `out` with the volume's shape, affine and orientation."""
    dev = select_device(device)
    model, _ = load_model(checkpoint, dev)
    slices = load_slices(slices_file)
    reference = nifti.load(volume)
    in_plane = tuple(int(n) for n in slices["shape"])
    n = len(slices["image"])
    expected = nifti.from_canonical(np.zeros((*in_plane, n), dtype=np.uint8), reference.affine).shape
    if expected != reference.shape:
        raise nifti.VolumeError(f"{slices_file}: slices of shape {in_plane}x{n} do not belong to {volume} {reference.shape}")
    labels = np.zeros((*in_plane, n), dtype=np.uint8)  # canonical order
    images = torch.from_numpy(slices["image"].astype(np.float32))[:, None]
    with torch.no_grad(), torch.autocast(dev.type, enabled=dev.type == "cuda"):
        for start in tqdm(range(0, n, batch_size), desc=out.name, mininterval=10):
            logits = model(images[start : start + batch_size].to(dev)).float()
            # resize probabilities, not labels, back to the scan's size: smoother outlines than nearest-neighbour
            probabilities = resize_images(torch.sigmoid(logits).cpu(), in_plane)
            labels[:, :, start : start + batch_size] = probabilities_to_labels(probabilities).numpy().transpose(1, 2, 0)
    nifti.save_label_like(labels, reference, out)
