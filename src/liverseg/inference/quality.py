"""Checks that flag an implausible segmentation of a scan instead of reporting it silently: the liver's volume against
the adult range, the tumours' share of the liver, the liver's pieces, the mean HU of what was called liver, and how
much of the liver the model was unsure of. The limits are defaults of the segmenter description and `segment` options.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import nibabel as nib
import numpy as np
import torch
from scipy import ndimage

from liverseg.data import nifti
from liverseg.labels import liver_mask, tumour_mask
from liverseg.roi import bounding_slices

UNCERTAIN_BAND = (0.25, 0.75)  # a liver probability in here is a guess


@dataclass(frozen=True)
class QualityLimits:
    liver_ml: tuple[float, float] = (700.0, 4000.0)  # adult livers with their tumours, wholly in the field of view
    max_tumour_share: float = 0.5  # of the liver's volume
    max_liver_components: int = 1  # 26-connected pieces of liver (label >= 1)
    liver_hu: tuple[float, float] = (0.0, 200.0)  # mean HU: fatty liver without contrast to arterial enhancement
    max_uncertain_share: float = 0.2  # voxels of liver probability in UNCERTAIN_BAND, per voxel called liver

    @classmethod
    def from_dict(cls, values: dict) -> QualityLimits:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


class Uncertainty:
    """Counts, over the batches of a stage-1 model, the voxels whose liver probability lies in UNCERTAIN_BAND and
    those called liver (probability above 0.5), at the model's resolution."""

    def __init__(self):
        self.uncertain = self.liver = 0

    def __call__(self, liver_probability: torch.Tensor) -> None:
        low, high = UNCERTAIN_BAND
        self.uncertain += int(((liver_probability > low) & (liver_probability < high)).sum())
        self.liver += int((liver_probability > 0.5).sum())

    @property
    def share(self) -> float | None:
        return self.uncertain / self.liver if self.liver else None


def liver_components(liver: np.ndarray) -> int:
    box = bounding_slices(liver)
    return 0 if box is None else int(ndimage.label(liver[box], structure=np.ones((3, 3, 3), bool))[1])


def mean_hu(scan: nib.Nifti1Image, mask: np.ndarray) -> float | None:
    """Mean HU of a scan under a canonical mask, from the stored voxels (only the mask's voxels become floats)."""
    if not mask.any():
        return None
    stored, slope, inter = nifti.stored_voxels(scan)
    return float(nifti.canonical(stored, scan)[mask].astype(np.float64).mean() * slope + inter)


def quality_report(
    labels: np.ndarray, scan: nib.Nifti1Image, limits: QualityLimits, window, uncertain_share: float | None
) -> dict:
    """The checks' values for canonical labels of a scan, and one warning per check that fails."""
    voxel_ml = float(np.prod(nifti.voxel_spacing(scan))) / 1000
    liver = liver_mask(labels)
    liver_ml = float(np.count_nonzero(liver)) * voxel_ml
    tumour_share = float(np.count_nonzero(tumour_mask(labels)) / np.count_nonzero(liver)) if liver.any() else None
    values = {  # the liver's volume is the report's own liver_ml
        "tumour_share": tumour_share,
        "liver_components": liver_components(liver),
        "liver_mean_hu": mean_hu(scan, liver),
        "uncertain_share": uncertain_share,
    }
    low, high = limits.liver_ml
    warnings = []
    if not low <= liver_ml <= high:
        warnings.append(
            f"liver volume {liver_ml:.0f} ml is outside the adult range {low:g} to {high:g} ml"
            + (": the scan may not hold the whole liver, or the liver was missed" if liver_ml < low else "")
        )
    if tumour_share is not None and tumour_share > limits.max_tumour_share:
        warnings.append(f"tumours fill {tumour_share:.0%} of the liver (more than {limits.max_tumour_share:.0%})")
    if values["liver_components"] > limits.max_liver_components:
        warnings.append(
            f"the liver is in {values['liver_components']} pieces (at most {limits.max_liver_components} expected)"
        )
    low, high = limits.liver_hu
    if values["liver_mean_hu"] is not None and not low <= values["liver_mean_hu"] <= high:
        warnings.append(
            f"what was called liver has a mean of {values['liver_mean_hu']:.0f} HU, outside {low:g} to {high:g} HU "
            f"(the segmenter saw the window {window[0]:g} to {window[1]:g} HU): is this contrast-enhanced CT?"
        )
    if uncertain_share is not None and uncertain_share > limits.max_uncertain_share:
        warnings.append(
            f"the model was unsure (liver probability {UNCERTAIN_BAND[0]:g} to {UNCERTAIN_BAND[1]:g}) of "
            f"{uncertain_share:.0%} as many voxels as it called liver (more than {limits.max_uncertain_share:.0%})"
        )
    return values | {"limits": limits.to_dict(), "warnings": warnings}
