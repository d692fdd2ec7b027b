"""Every case metric against independent implementations: MONAI for surface distances, medpy for overlap."""

import math

import numpy as np
import pytest
import torch
from medpy.metric import binary as medpy
from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance
from scipy import ndimage

from liverseg.evaluation.metrics import overlap_metrics
from liverseg.evaluation.surface import surface_distances


def monai_distances(pred, ref, spacing):
    """MONAI's symmetric ASD, Hausdorff and 95th-percentile Hausdorff, on the same surface definition."""
    y_pred, y = (torch.from_numpy(m[None, None].astype(np.float32)) for m in (pred, ref))
    common = dict(include_background=True, spacing=list(spacing))
    return {
        "assd": compute_average_surface_distance(y_pred, y, symmetric=True, **common).item(),
        "mssd": compute_hausdorff_distance(y_pred, y, **common).item(),
        "hd95": compute_hausdorff_distance(y_pred, y, percentile=95, **common).item(),
    }


def blobs(shape, seed, fill=0.03):
    """Random lumpy masks: smoothed noise above a threshold."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.normal(size=shape), 2)
    return field > np.quantile(field, 1 - fill)


CASES = {
    "random, anisotropic": (blobs((40, 36, 20), 0), blobs((40, 36, 20), 1), (0.7, 0.8, 2.5)),
    "random, overlapping": (blobs((40, 36, 20), 2, 0.1), blobs((40, 36, 20), 2, 0.12), (1.0, 1.0, 1.0)),
    "one voxel each": (
        np.pad(np.ones((1, 1, 1), bool), ((3, 6), (2, 5), (1, 1))),
        np.pad(np.ones((1, 1, 1), bool), ((7, 2), (2, 5), (1, 1))),
        (0.5, 0.5, 3.0),
    ),
    "touching the border": (
        np.ones((10, 12, 6), bool),
        np.pad(np.ones((8, 12, 6), bool), ((2, 0), (0, 0), (0, 0))),
        (0.8, 0.8, 2.0),
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_surface_distances_match_monai(name):
    pred, ref, spacing = CASES[name]
    ours, theirs = surface_distances(pred, ref, spacing), monai_distances(pred, ref, spacing)
    for key in ("assd", "mssd", "hd95"):
        assert ours[key] == pytest.approx(theirs[key], abs=1e-6), key
    assert ours["mssd"] == pytest.approx(medpy.hd(pred, ref, voxelspacing=spacing), abs=1e-6)


def test_distances_are_in_millimetres_and_cropping_changes_nothing():
    pred, ref = np.zeros((60, 50, 30), bool), np.zeros((60, 50, 30), bool)
    pred[10:20, 10:20, 5:10] = True
    ref[10:20, 10:20, 7:12] = True  # shifted by two slices of 2.5 mm
    d = surface_distances(pred, ref, (0.7, 0.7, 2.5))
    assert d["mssd"] == pytest.approx(5.0)
    big = np.pad(pred, 40), np.pad(ref, 40)
    assert surface_distances(*big, (0.7, 0.7, 2.5)) == d


@pytest.mark.parametrize("empty", ["pred", "ref", "both"])
def test_an_empty_mask_has_no_distance(empty):
    mask = blobs((20, 20, 10), 3, 0.1)
    none = np.zeros_like(mask)
    pred, ref = (none if empty in ("pred", "both") else mask), (none if empty in ("ref", "both") else mask)
    assert all(math.isnan(v) for v in surface_distances(pred, ref, (1, 1, 1)).values())


@pytest.mark.parametrize("name", CASES)
def test_overlap_metrics_match_medpy(name):
    pred, ref, _ = CASES[name]
    ours = overlap_metrics(pred, ref)
    assert ours["dice"] == pytest.approx(medpy.dc(pred, ref), abs=1e-6)
    assert ours["jaccard"] == pytest.approx(medpy.jc(pred, ref), abs=1e-6)
    assert ours["voe"] == pytest.approx(1 - medpy.jc(pred, ref), abs=1e-6)
    assert ours["rvd"] == pytest.approx(medpy.ravd(pred, ref), abs=1e-6)
