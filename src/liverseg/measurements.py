"""Lesions measured: 26-connected components of a tumour mask, their volumes and diameters; shared by the volume
report of `liverseg segment` and by lesion scoring (`liverseg.evaluation.lesions`)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from liverseg.roi import bounding_slices

CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)  # 26-neighbourhood


def equivalent_diameter_mm(voxels: np.ndarray, spacing) -> np.ndarray:
    volume = voxels * float(np.prod(spacing))
    return np.cbrt(6 * volume / np.pi)


def largest_diameter_mm(mask: np.ndarray, spacing) -> float:
    """The largest distance between two voxel centres of a lesion, in mm (its 3D maximum Feret diameter)."""
    from scipy.spatial import ConvexHull, QhullError
    from scipy.spatial.distance import pdist

    boundary = mask & ~ndimage.binary_erosion(mask)
    points = np.argwhere(boundary) * np.asarray(spacing, dtype=float)
    if len(points) > 3:
        try:
            points = points[ConvexHull(points).vertices]  # the farthest pair are hull vertices
        except QhullError:  # a flat or straight lesion: every boundary point is a candidate
            pass
    return float(pdist(points).max()) if len(points) > 1 else 0.0


def lesion_sizes(tumour: np.ndarray, spacing) -> list[dict]:
    """Each lesion (26-connected component) of a tumour mask: volume in ml and largest diameter in mm, largest first."""
    box = bounding_slices(tumour)
    if box is None:
        return []
    components, n = ndimage.label(tumour[box], structure=CONNECTIVITY)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    lesions = [
        {"volume_ml": float(box.sum()) * voxel_ml, "largest_diameter_mm": largest_diameter_mm(box, spacing)}
        for box in (components[where] == label for label, where in enumerate(ndimage.find_objects(components), 1))
    ]
    return sorted(lesions, key=lambda lesion: -lesion["volume_ml"])
