"""Which training slices an epoch sees: tumour slices oversampled, slices without liver subsampled (seeded).

As nnU-Net forces part of every batch to hold foreground, this keeps the rare tumour pixels from drowning in
background: with `tumour_oversample` r, a tumour slice appears floor(r) times plus once more with probability
r - floor(r); a slice without liver is kept with probability `background_fraction`; every other slice appears once.
With `small_lesion_oversample`, a slice holding part of a lesion under 10 mm is seen that many times instead: such a
lesion lies in one to three slices, a large one in dozens, so tumour slices alone show a model few small lesions.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from liverseg.evaluation.lesions import SIZE_BINS
from liverseg.measurements import CONNECTIVITY, equivalent_diameter_mm


def epoch_indices(
    has_tumour: torch.Tensor,
    has_liver: torch.Tensor,
    tumour_oversample: float,
    background_fraction: float,
    generator: torch.Generator,
    small_lesion: torch.Tensor | None = None,
    small_lesion_oversample: float | None = None,
) -> torch.Tensor:
    """Shuffled slice indices of one epoch."""
    rate = torch.ones(len(has_tumour))
    rate[has_tumour] = tumour_oversample
    if small_lesion_oversample is not None:
        rate[small_lesion] = small_lesion_oversample
    rate[~has_liver & ~has_tumour] = background_fraction
    whole = rate.floor()
    repeats = (whole + (torch.rand(len(rate), generator=generator) < rate - whole)).long()
    chosen = torch.repeat_interleave(torch.arange(len(rate)), repeats)
    return chosen[torch.randperm(len(chosen), generator=generator)]


def small_lesion_slices(tumour: np.ndarray, spacing) -> np.ndarray:
    """Which slices of one case's (slices, rows, columns) tumour mask hold part of a lesion under 10 mm: LiTS's
    smallest size, measured as lesions are scored (the diameter of the sphere of its volume; `spacing` in mm along
    the same axes)."""
    components, n = ndimage.label(tumour, structure=CONNECTIVITY)
    diameters = equivalent_diameter_mm(np.bincount(components.ravel(), minlength=n + 1)[1:], spacing)
    out = np.zeros(len(tumour), dtype=bool)
    for diameter, where in zip(diameters, ndimage.find_objects(components)):
        if diameter < SIZE_BINS["lt10mm"][1]:
            out[where[0]] = True
    return out
