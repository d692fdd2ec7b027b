"""The liver's box: cut and pasted back in every storage orientation; crops for the tumour stage."""

import nibabel as nib
import numpy as np
import pytest

from liverseg.data import nifti
from liverseg.data.crops import crop_case
from liverseg.roi import Box, bounding_slices, cut_box, largest_component, liver_box, paste_box
from tests.helpers import ORIENTATIONS, axis_affine


def _labels(shape=(40, 36, 12)):
    labels = np.zeros(shape, np.uint8)
    labels[5:30, 8:28, 2:9] = 1
    labels[10:14, 12:15, 4:6] = 2
    labels[0:3, 0:2, 0] = 1  # liver at the volume's corner, so the box reaches past the edge
    return labels


def test_box_is_square_in_mm_with_margin():
    mask = np.zeros((50, 50, 20), bool)
    mask[10:30, 20:25, 5:8] = True  # 20 x 5 voxels of 2 x 1 mm: 40 x 5 mm
    box = liver_box(mask, (2.0, 1.0, 3.0), margin_mm=6.0)
    assert box.shape[0] * 2.0 == pytest.approx(52.0, abs=2.0) and box.shape[1] * 1.0 == pytest.approx(52.0, abs=1.0)
    assert box.start[2] == 3 and box.stop[2] == 10  # 3 slices + 2 x 6 mm at 3 mm
    centre = [(a + b) / 2 for a, b in zip(box.start, box.stop)]
    assert centre[0] == pytest.approx(20, abs=0.5) and centre[1] == pytest.approx(22.5, abs=0.5)
    assert liver_box(np.zeros((4, 4, 4), bool), (1, 1, 1), 5.0) is None


def test_cut_pads_outside_the_volume():
    volume = np.arange(24).reshape(2, 3, 4)
    crop = cut_box(volume, Box((-1, 1, 0), (3, 4, 4)), fill=-7)
    assert crop.shape == (4, 3, 4)
    assert (crop[0] == -7).all() and (crop[3] == -7).all() and (crop[1:3, 2] == -7).all()
    assert np.array_equal(crop[1:3, :2], volume[:, 1:3])


@pytest.mark.parametrize("codes", ORIENTATIONS)
def test_cut_and_paste_round_trip_in_every_storage_orientation(tmp_path, codes):
    canonical = _labels()
    affine = axis_affine(tuple(codes), spacing=(0.8, 0.9, 2.5))
    stored = nifti.from_canonical(canonical, affine)  # as the file holds it
    # the canonical array is R, A, S; the storage affine is built so that reorienting it gives `canonical` back
    image = nib.Nifti1Image(stored, affine)
    path = tmp_path / "labels.nii.gz"
    nib.save(image, path)
    loaded = nib.load(path)
    labels = nifti.to_canonical(loaded, dtype=np.uint8)
    box = liver_box(labels >= 1, nifti.canonical_spacing(loaded), margin_mm=3.0)
    assert min(box.start) < 0, "the corner voxel puts the box past the volume's edge"
    pasted = paste_box(cut_box(labels, box), box, labels.shape)
    out = tmp_path / "pasted.nii.gz"
    nifti.save_label_like(pasted, loaded, out)
    written = np.asarray(nib.load(out).dataobj)
    inside = nifti.from_canonical(paste_box(np.ones(box.shape, bool), box, labels.shape), affine)
    assert np.array_equal(written[inside], stored[inside])
    assert not written[~inside].any()


def test_paste_refuses_a_crop_of_another_shape():
    with pytest.raises(ValueError, match="does not fit"):
        paste_box(np.zeros((2, 2, 2)), Box((0, 0, 0), (3, 2, 2)), (5, 5, 5))


def test_largest_component():
    mask = np.zeros((10, 10, 10), bool)
    mask[0:2, 0:2, 0:2] = True
    mask[5:9, 5:9, 5:9] = True
    assert np.array_equal(largest_component(mask), np.pad(np.ones((4, 4, 4), bool), ((5, 1), (5, 1), (5, 1))))


def test_crop_case_keeps_tumour_and_stores_the_box(phantom_files):
    volume, label = phantom_files / "volume-0.nii.gz", phantom_files / "segmentation-0.nii.gz"
    crops = crop_case(volume, label, (-150, 250), 64, margin_mm=10.0, jitter_mm=8.0)
    reference = nifti.to_canonical(nib.load(label), dtype=np.uint8)
    n_slices = crops["box_stop"][2] - crops["box_start"][2]
    assert crops["image"].shape == (n_slices, 64, 64) and crops["label"].shape == (n_slices, 64, 64)
    assert crops["image"].dtype == np.float16 and 0 <= crops["image"].min() and crops["image"].max() <= 1
    assert (crops["label"] >= 1).any() and set(np.unique(crops["label"])) <= {0, 1, 2}
    assert (reference == 2).any() == (crops["label"] == 2).any()
    outer = (crops["box_stop"][0] - crops["box_start"][0]) * crops["spacing"][0]
    assert crops["box_half"] == pytest.approx((outer - 16.0) / outer, rel=1e-5)
    assert crops["box_jitter"] == pytest.approx(16.0 / outer, rel=1e-5)


def test_crop_case_without_liver_names_the_file(tmp_path):
    volume = tmp_path / "volume-0.nii.gz"
    label = tmp_path / "segmentation-0.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 4), np.int16), np.eye(4)), volume)
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 4), np.uint8), np.eye(4)), label)
    with pytest.raises(nifti.VolumeError, match="segmentation-0.nii.gz: no liver"):
        crop_case(volume, label, (-150, 250), 32, 10.0, 5.0)


def test_components_labelled_in_the_masks_box_match_the_whole_volume():
    from scipy import ndimage

    rng = np.random.default_rng(5)
    for _ in range(5):
        mask = np.zeros((30, 25, 20), bool)
        mask[3:20, 5:22, 2:15] = rng.random((17, 17, 13)) > 0.6
        components, _ = ndimage.label(mask, structure=np.ones((3, 3, 3)))
        sizes = np.bincount(components.ravel())[1:]
        assert np.array_equal(largest_component(mask), components == 1 + np.argmax(sizes))
    assert bounding_slices(np.zeros((4, 4, 4), bool)) is None
    one = np.zeros((6, 6, 6), bool)
    one[0, 3, 5] = True
    assert bounding_slices(one, pad=1) == (slice(0, 2), slice(2, 5), slice(4, 6))
    assert not largest_component(np.zeros((4, 4, 4), bool)).any()
