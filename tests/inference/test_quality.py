"""The quality checks of a segmented scan, each tripped by a scan made to trip it, and passed by a plausible one."""

import dataclasses
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from liverseg.inference.quality import QualityLimits, Uncertainty, liver_components, quality_report

SPACING = (2.0, 2.0, 2.0)  # 0.008 ml a voxel
WINDOW = (-150.0, 250.0)


def _scan(folder: Path, hu: np.ndarray) -> nib.Nifti1Image:
    """A file of int16 storage with a slope and intercept, as scanners write it; RAS, so canonical is as stored."""
    image = nib.Nifti1Image(np.rint((hu + 1024) / 2).astype(np.int16), np.diag([*SPACING, 1.0]))
    image.header.set_slope_inter(2.0, -1024.0)
    path = folder / "scan.nii"
    nib.save(image, path)
    return nib.load(path)


def _case(folder, liver_side=60, tumour_side=0, liver_hu=100.0):
    """A cube of liver (liver_side**3 voxels) holding a cube of tumour, in air; labels and the scan."""
    shape = (liver_side + 10,) * 3
    labels = np.zeros(shape, np.uint8)
    labels[5 : 5 + liver_side, 5 : 5 + liver_side, 5 : 5 + liver_side] = 1
    labels[5 : 5 + tumour_side, 5 : 5 + tumour_side, 5 : 5 + tumour_side] = 2
    hu = np.full(shape, -1000.0)
    hu[labels >= 1] = liver_hu
    return labels, _scan(folder, hu)


def _report(labels, scan, uncertain_share=0.05, **limits):
    return quality_report(labels, scan, dataclasses.replace(QualityLimits(), **limits), WINDOW, uncertain_share)


def test_a_plausible_liver_passes_every_check_with_its_values(tmp_path):
    labels, scan = _case(tmp_path, liver_side=60, tumour_side=20)  # 1728 ml, tumour 64 ml
    report = _report(labels, scan)
    assert report["warnings"] == []
    assert report["tumour_share"] == pytest.approx(20**3 / 60**3)
    assert report["liver_components"] == 1
    assert report["liver_mean_hu"] == pytest.approx(100.0)
    assert report["limits"] == QualityLimits().to_dict()


@pytest.mark.parametrize(
    "made, phrase",
    [
        ({"liver_side": 30}, "outside the adult range 700 to 4000 ml: the scan may not hold the whole liver"),
        ({"liver_side": 90}, "liver volume 5832 ml is outside the adult range"),
        ({"tumour_side": 50}, "tumours fill 58% of the liver"),
        ({"liver_hu": -400.0}, "mean of -400 HU, outside 0 to 200 HU"),
    ],
    ids=["small", "huge", "tumour_share", "mean_hu"],
)
def test_each_check_is_tripped_by_a_scan_made_to_trip_it(tmp_path, made, phrase):
    labels, scan = _case(tmp_path, **made)
    warnings = _report(labels, scan)["warnings"]
    assert len(warnings) == 1 and phrase in warnings[0], warnings


def test_a_liver_in_pieces_and_an_unsure_model_are_flagged(tmp_path):
    labels, scan = _case(tmp_path)
    labels[:, 30, :] = 0  # cut in two
    report = _report(labels, scan, uncertain_share=0.35)
    assert report["liver_components"] == 2
    assert any("the liver is in 2 pieces" in w for w in report["warnings"])
    assert any("unsure" in w and "35%" in w for w in report["warnings"])


def test_no_liver_is_flagged_and_its_undefined_values_are_none(tmp_path):
    labels, scan = _case(tmp_path)
    report = _report(np.zeros_like(labels), scan, uncertain_share=None)
    assert report["tumour_share"] is None and report["liver_mean_hu"] is None
    assert report["liver_components"] == 0 and len(report["warnings"]) == 1


def test_uncertainty_counts_the_band_and_the_liver_over_batches():
    uncertainty = Uncertainty()
    assert uncertainty.share is None
    uncertainty(torch.tensor([[0.1, 0.3, 0.5, 0.6]]))
    uncertainty(torch.tensor([[0.9, 0.74, 0.76, 0.8]]))
    assert (uncertainty.uncertain, uncertainty.liver) == (
        4,
        5,
    )  # 0.3 0.5 0.6 0.74 unsure; above 0.5: 0.6 0.9 0.74 0.76 0.8
    assert uncertainty.share == pytest.approx(4 / 5)


def test_components_are_26_connected():
    mask = np.zeros((4, 4, 4), bool)
    mask[0, 0, 0] = mask[1, 1, 1] = mask[3, 3, 3] = True
    assert liver_components(mask) == 2


def test_limits_round_trip_through_their_json_form():
    limits = QualityLimits(liver_ml=(500.0, 3000.0), max_liver_components=2)
    assert QualityLimits.from_dict(limits.to_dict()) == limits
