"""Surface distances between two binary masks, in millimetres, as the LiTS challenge reports them.

A mask's surface is its voxels that touch the outside: the mask minus its erosion by the 3D cross (6-neighbourhood),
with everything beyond the volume counted as outside (MONAI's and medpy's definition). Each surface voxel's distance to
the other surface comes from scipy's exact Euclidean distance transform with the voxel spacing, so distances are
between voxel centres. The work is done inside the box that holds both masks, padded by one voxel: the cost follows
the organ, not the scan (a 512x512x900 volume costs what its liver's box costs).

- ASSD: mean over the distances of both surfaces to each other, taken together.
- MSSD: the largest of them (the symmetric Hausdorff distance).
- HD95: the larger of the two directed 95th percentiles (MONAI's `compute_hausdorff_distance(percentile=95)`).

When either mask is empty the distances are undefined: NaN, left out of means and counted apart.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

NAMES = ("assd", "mssd", "hd95")


def _boxed(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both masks cut to the box that holds them, with one voxel of outside around it."""
    box = ndimage.find_objects((pred | ref).astype(np.uint8))[0]
    return np.pad(pred[box], 1), np.pad(ref[box], 1)


def surface(mask: np.ndarray) -> np.ndarray:
    cross = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure=cross, border_value=0)


def surface_distances(pred: np.ndarray, ref: np.ndarray, spacing) -> dict[str, float]:
    """ASSD, MSSD and HD95 in the unit of `spacing` (mm) between two boolean masks of the same shape."""
    pred, ref = pred.astype(bool), ref.astype(bool)
    if not pred.any() or not ref.any():
        return dict.fromkeys(NAMES, float("nan"))
    pred, ref = _boxed(pred, ref)
    pred_surface, ref_surface = surface(pred), surface(ref)
    to_ref = ndimage.distance_transform_edt(~ref_surface, sampling=spacing)[pred_surface]
    to_pred = ndimage.distance_transform_edt(~pred_surface, sampling=spacing)[ref_surface]
    return {
        "assd": float(np.concatenate([to_ref, to_pred]).mean()),
        "mssd": float(max(to_ref.max(), to_pred.max())),
        "hd95": float(max(np.percentile(to_ref, 95), np.percentile(to_pred, 95))),
    }
