"""Training and validation slices in memory, served as batches of 2.5D stacks with their region targets.

A set is either whole slices (`data/slices`) or liver crops (`data/crops`). Crops are stored with room around the
liver's box; each training sample then sees a box whose edges are jittered by up to the stored jitter, as the boxes
drawn around a stage-1 prediction will be, while validation sees the box itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from liverseg.data.slices import read_into, stored_shape
from liverseg.devices import to_device
from liverseg.labels import REGIONS, liver_mask, tumour_mask
from liverseg.models.neighbours import neighbour_index, neighbour_step
from liverseg.models.recipe import Recipe
from liverseg.training.augment import AugmentSettings, augment_batch, warp
from liverseg.training.sampling import epoch_indices, small_lesion_slices


def region_targets(labels: torch.Tensor, regions: tuple[str, ...]) -> torch.Tensor:
    """(N, H, W) label maps -> (N, len(regions), H, W) binary targets."""
    return torch.stack([REGIONS[name](labels) for name in regions], dim=1).float()


@dataclass
class SliceSet:
    images: torch.Tensor  # (n, H, W) float16: half the memory
    labels: torch.Tensor  # (n, H, W) uint8
    stacks: torch.Tensor  # (n, k) indices of each slice's 2.5D stack
    box_half: torch.Tensor | None  # (n,) crop sets: half side of the liver box, in units of the stored crop
    box_jitter: torch.Tensor | None  # (n,) crop sets: largest edge jitter, same units
    small_lesion: torch.Tensor | None = None  # (n,) bool, when asked: the slice holds part of a lesion under 10 mm

    def __len__(self) -> int:
        return len(self.images)

    @property
    def has_tumour(self) -> torch.Tensor:
        return tumour_mask(self.labels).flatten(1).any(1)

    @property
    def has_liver(self) -> torch.Tensor:
        return liver_mask(self.labels).flatten(1).any(1)


def load_slice_set(
    paths, input_slices: int, neighbour_mm: float | None = None, small_lesions: bool = False
) -> SliceSet:
    """The cases' slices in one set, each case read straight into its place: memory peaks at the set alone. Each
    slice's stack takes its neighbours `neighbour_mm` apart at its case's slice spacing (None: adjacent slices). With
    `small_lesions`, which slices hold part of a lesion under 10 mm (`liverseg.training.sampling`)."""
    shapes, boxes, steps, spacings = [], [], [], []
    for path in paths:  # the shapes (from the headers), box sizes and slice spacings first, to size the set
        shapes.append(stored_shape(path, "label"))
        with np.load(path) as case:
            boxes.append({key: float(case[key]) for key in ("box_half", "box_jitter") if key in case.files})
            steps.append(neighbour_step(float(case["spacing"][2]), neighbour_mm) if neighbour_mm is not None else 1)
            spacings.append(_stored_spacing(case, shapes[-1]) if small_lesions else None)
    lengths = [shape[0] for shape in shapes]
    images = torch.empty((sum(lengths), *shapes[0][1:]), dtype=torch.float16)
    labels = torch.empty(images.shape, dtype=torch.uint8)
    small = []
    for path, start, length, spacing in zip(paths, np.cumsum([0, *lengths[:-1]]), lengths, spacings):
        read_into(path, "label", labels[start : start + length].numpy())
        read_into(path, "image", images[start : start + length].numpy())
        if small_lesions:
            small.append(small_lesion_slices(tumour_mask(labels[start : start + length]).numpy(), spacing))

    def per_slice(key: str) -> torch.Tensor | None:
        """A per-case number of crop sets, repeated for each of the case's slices."""
        if key not in boxes[0]:
            return None
        return torch.tensor(np.repeat([box[key] for box in boxes], lengths), dtype=torch.float32)

    return SliceSet(
        images=images,
        labels=labels,
        stacks=torch.from_numpy(neighbour_index(lengths, input_slices, steps)),
        box_half=per_slice("box_half"),
        box_jitter=per_slice("box_jitter"),
        small_lesion=torch.from_numpy(np.concatenate(small)) if small_lesions else None,
    )


def _stored_spacing(case, shape: tuple[int, int, int]) -> tuple[float, float, float]:
    """The (slice, row, column) spacing in mm of a case's stored slices: a crop spans its liver's box, a whole
    slice its scan's (rows, columns) at the scan's spacing."""
    spacing = case["spacing"]
    across = (case["box_stop"] - case["box_start"])[:2] if "box_start" in case.files else case["shape"]
    return (float(spacing[2]), *(float(v) for v in across * spacing[:2] / np.asarray(shape[1:])))


def box_view(half: torch.Tensor, jitter: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """(n, 2, 3) affine_grid matrices that show each sample's box; edges moved by uniform jitter if a generator is given."""
    n = len(half)
    theta = torch.zeros(n, 2, 3)
    for axis in range(2):
        lo, hi = -half.clone(), half.clone()
        if generator is not None:
            lo -= jitter * (2 * torch.rand(n, generator=generator) - 1)
            hi += jitter * (2 * torch.rand(n, generator=generator) - 1)
        theta[:, axis, axis] = (hi - lo) / 2
        theta[:, axis, 2] = (hi + lo) / 2
    return theta


class Batches:
    """Mini-batches moved to the device (through pinned memory on CUDA), augmented there when training."""

    def __init__(
        self,
        data: SliceSet,
        regions,
        batch_size: int,
        device: torch.device,
        augment: AugmentSettings | None = None,
        memory_format: torch.memory_format = torch.contiguous_format,
    ):
        self.data, self.regions, self.batch_size, self.device, self.augment = (
            data,
            tuple(regions),
            batch_size,
            device,
            augment,
        )
        self.memory_format = memory_format  # the model's (liverseg.devices.training_memory_format)
        self._presence = None

    @property
    def image_size(self) -> int:
        return self.data.images.shape[-1]

    def steps(self, n: int) -> int:
        return -(-n // self.batch_size)

    def epoch_order(self, recipe: Recipe, generator: torch.Generator) -> torch.Tensor:
        """The slices of one epoch, sampled as the recipe says (`liverseg.training.sampling`)."""
        if self._presence is None:  # fixed: scanned once
            self._presence = (self.data.has_tumour, self.data.has_liver)
        has_tumour, has_liver = self._presence
        return epoch_indices(
            has_tumour,
            has_liver,
            recipe.tumour_oversample,
            recipe.background_fraction,
            generator,
            self.data.small_lesion,
            recipe.small_lesion_oversample,
        )

    def validation_order(self) -> torch.Tensor:
        return torch.arange(len(self.data))

    def logits(self, model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        return model(x)

    def __call__(self, order: torch.Tensor, generator: torch.Generator | None = None):
        """Batches in this order; with a generator, augmented (training), else the plain view (validation)."""
        data = self.data
        for start in range(0, len(order), self.batch_size):
            index = order[start : start + self.batch_size]
            x = to_device(data.images[data.stacks[index]], self.device).float()
            labels = to_device(data.labels[index], self.device)
            view = None if data.box_half is None else box_view(data.box_half[index], data.box_jitter[index], generator)
            if generator is not None and self.augment is not None:
                x, labels = augment_batch(x, labels, self.augment, generator, view)
            elif view is not None:
                x, labels = warp(x, labels, view)
            y = region_targets(labels, self.regions)
            yield x.contiguous(memory_format=self.memory_format), y
