import itertools

import nibabel as nib
import numpy as np
import pytest

from liverseg.data import nifti
from tests.helpers import ORIENTATIONS, axis_affine, write_nifti


@pytest.mark.parametrize("codes", ORIENTATIONS)
def test_canonical_round_trip(codes):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 3, size=(5, 6, 7)).astype(np.uint8)
    image = nib.Nifti1Image(data, axis_affine(tuple(codes)))
    canonical = nifti.to_canonical(image, dtype=np.uint8)
    assert nib.aff2axcodes(nib.as_closest_canonical(image).affine) == ("R", "A", "S")
    assert np.array_equal(canonical, np.asanyarray(nib.as_closest_canonical(image).dataobj))
    assert np.array_equal(nifti.from_canonical(canonical, image.affine), data)


def test_canonical_spacing_follows_axes():
    image = nib.Nifti1Image(np.zeros((4, 5, 6), np.int16), axis_affine(("S", "L", "P"), spacing=(3.0, 0.7, 0.8)))
    assert nifti.canonical_spacing(image) == pytest.approx((0.7, 0.8, 3.0))


@pytest.mark.parametrize("codes", ["LPS", "ASR"])
def test_saved_labels_carry_the_reference_geometry(tmp_path, codes):
    reference = write_nifti(tmp_path / "volume.nii.gz", np.zeros((6, 7, 8), np.int16), axis_affine(tuple(codes)))
    ref = nib.load(reference)
    canonical = np.zeros(nifti.to_canonical(ref).shape, np.uint8)
    canonical[1, 2, 3] = 2  # one voxel, placed in canonical space
    nifti.save_label_like(canonical, ref, tmp_path / "pred.nii.gz")
    out = nib.load(tmp_path / "pred.nii.gz")
    assert out.shape == ref.shape and np.allclose(out.affine, ref.affine)
    assert nib.aff2axcodes(out.affine) == tuple(codes) and out.get_data_dtype() == np.uint8
    # the voxel lands at the same world position
    world = nib.as_closest_canonical(ref).affine @ [1, 2, 3, 1]
    voxel = np.rint(np.linalg.inv(out.affine) @ world).astype(int)[:3]
    assert np.asarray(out.dataobj)[tuple(voxel)] == 2 and np.asarray(out.dataobj).sum() == 2


def test_wrong_shape_leaves_no_file(tmp_path):
    ref = nib.load(write_nifti(tmp_path / "v.nii.gz", np.zeros((6, 7, 8), np.int16), axis_affine(("R", "A", "S"))))
    with pytest.raises(nifti.VolumeError, match="pred.nii.gz"):
        nifti.save_label_like(np.zeros((6, 7, 9), np.uint8), ref, tmp_path / "pred.nii.gz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.nii.gz"]


def test_unreadable_and_non_3d_files_are_named(tmp_path):
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"not a nifti")
    with pytest.raises(nifti.VolumeError, match="broken.nii.gz"):
        nifti.load(bad)
    four_d = write_nifti(tmp_path / "4d.nii.gz", np.zeros((2, 2, 2, 2), np.int16), np.eye(4))
    with pytest.raises(nifti.VolumeError, match="4d.nii.gz.*3D"):
        nifti.load(four_d)


def test_all_orientation_permutations_round_trip():
    data = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    for axes in itertools.permutations(["R", "A", "S"]):
        image = nib.Nifti1Image(data.astype(np.int16), axis_affine(axes))
        assert np.array_equal(nifti.from_canonical(nifti.to_canonical(image, np.int16), image.affine), data)
