"""A 3D stage's training data: each case's liver crop held as a volume, served as batches of patches with their
region targets; validation sees each case's box whole, through the sliding window that prediction uses.

Crops are stored with room for box jitter around the liver's box (`liverseg.data.crops`). Patches move freely inside
a crop, so the jitter is not drawn again: each crop is resized in-plane once, at load, so that its box spans the
crop size, as the box around a stage-1 liver does at prediction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from liverseg.data.slices import resize_images, resize_labels
from liverseg.devices import to_device
from liverseg.labels import tumour_mask
from liverseg.models.recipe import Recipe
from liverseg.models.volumetric import window_logits
from liverseg.training.augment import AugmentSettings, augment_volumes
from liverseg.training.dataset import region_targets


@dataclass
class VolumeSet:
    images: list[torch.Tensor]  # per case, (slices, H, W) float16
    labels: list[torch.Tensor]  # per case, (slices, H, W) uint8
    tumour_voxels: list[torch.Tensor]  # per case, (k, 3) indices of its tumour voxels

    def __len__(self) -> int:
        return len(self.images)

    @property
    def slices(self) -> int:
        return sum(len(image) for image in self.images)

    @property
    def has_tumour(self) -> torch.Tensor:
        return torch.tensor([len(voxels) > 0 for voxels in self.tumour_voxels])


def load_volume_set(paths, size: int, box_only: bool = False) -> VolumeSet:
    """The cases' crops at the scale of prediction: their box `size` pixels across; with `box_only`, the box alone."""
    images, labels = [], []
    for path in paths:
        with np.load(path) as case:
            image, label, half = case["image"], case["label"], float(case["box_half"])
        side = max(round(size / half), size)
        image = torch.from_numpy(resize_images(image, (side, side))).half()
        label = torch.from_numpy(resize_labels(label, (side, side)))
        if box_only:
            lo = (side - size) // 2
            image, label = image[:, lo : lo + size, lo : lo + size], label[:, lo : lo + size, lo : lo + size]
        images.append(image.contiguous())
        labels.append(label.contiguous())
    return VolumeSet(images, labels, [torch.nonzero(tumour_mask(label)) for label in labels])


class PatchBatches:
    """Training batches of patches, drawn and augmented afresh each epoch; validation volumes one at a time."""

    def __init__(
        self,
        data: VolumeSet,
        recipe: Recipe,
        batch_size: int,
        device: torch.device,
        augment: AugmentSettings | None = None,
    ):
        self.data, self.recipe, self.batch_size, self.device, self.augment = data, recipe, batch_size, device, augment
        self.regions = recipe.regions
        self.image_size = recipe.crop["size"]

    def steps(self, n: int) -> int:
        return -(-n // self.batch_size)

    def epoch_order(self, recipe: Recipe, generator: torch.Generator) -> torch.Tensor:
        """The cases of one epoch's patches: each case `patches_per_case` times, shuffled (as `Batches.epoch_order`)."""
        cases = torch.arange(len(self.data)).repeat_interleave(recipe.patches_per_case)
        return cases[torch.randperm(len(cases), generator=generator)]

    def validation_order(self) -> torch.Tensor:
        return torch.arange(len(self.data))

    def logits(self, model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        return window_logits(model, x, self.recipe)

    def patch(self, case: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """One patch of a case: centred on a random tumour voxel with probability `tumour_fraction` (where the case
        has tumour), else on a random voxel; kept inside the crop where it is large enough, else padded."""
        image, label, voxels = self.data.images[case], self.data.labels[case], self.data.tumour_voxels[case]
        shape, size = torch.tensor(image.shape), torch.tensor(self.recipe.patch)
        on_tumour = torch.rand(1, generator=generator).item() < self.recipe.tumour_fraction
        if on_tumour and len(voxels):
            centre = voxels[torch.randint(len(voxels), (1,), generator=generator).item()]
        else:
            centre = (torch.rand(3, generator=generator) * shape).long()
        start = torch.minimum((centre - size // 2).clamp(min=0), (shape - size).clamp(min=0))
        index = tuple(slice(int(a), int(a + b)) for a, b in zip(start, size))
        missing = (size - torch.tensor(image[index].shape)).tolist()
        pad = [p for m in reversed(missing) for p in (0, m)]  # F.pad lists the last axis first
        return F.pad(image[index].float(), pad), F.pad(label[index], pad)

    def __call__(self, order: torch.Tensor, generator: torch.Generator | None = None):
        """With a generator, augmented training patches of these cases; else each case's whole volume."""
        if generator is None:
            for case in order.tolist():
                x = to_device(self.data.images[case][None, None], self.device).float()
                yield x, region_targets(to_device(self.data.labels[case][None], self.device), self.regions)
            return
        for start in range(0, len(order), self.batch_size):
            patches = [self.patch(case, generator) for case in order[start : start + self.batch_size].tolist()]
            x = to_device(torch.stack([image for image, _ in patches])[:, None], self.device)
            labels = to_device(torch.stack([label for _, label in patches]), self.device)
            if self.augment is not None:
                x, labels = augment_volumes(x, labels, self.augment, generator)
            yield x, region_targets(labels, self.regions)
