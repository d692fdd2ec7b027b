"""Any geometry in, the same geometry out: orientations, non-square slices, storage types, scaling, compression."""

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch
from scipy import ndimage

from liverseg.data import nifti
from liverseg.data.cases import describe_case
from liverseg.data.slices import slice_case
from liverseg.inference.predict import resized
from liverseg.models.heads import probabilities_to_classes

WINDOW = (-150.0, 250.0)


def scan(shape=(512, 480, 4)):
    """HU and labels: a body, a liver ellipse with a tumour, in the voxel order they are stored in."""
    x, y = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    hu = np.full(shape, -1000.0, np.float32)
    body = ((x - 256) / 230) ** 2 + ((y - 240) / 200) ** 2 < 1
    liver = ((x - 200) / 110) ** 2 + ((y - 220) / 80) ** 2 < 1
    tumour = ((x - 220) / 30) ** 2 + ((y - 230) / 25) ** 2 < 1
    hu[body] = 30.0
    hu[liver] = 90.0
    hu[tumour] = 20.0
    labels = np.zeros(shape, np.uint8)
    labels[liver] = 1
    labels[tumour] = 2
    labels[..., 0] = 0  # a slice without liver
    return hu, labels


def axes_affine(codes, spacing=(0.7, 0.75, 2.5), angle_degrees=0.0):
    ornt = nib.orientations.axcodes2ornt(codes)
    affine = np.eye(4)
    affine[:3, :3] = 0
    for axis, (target, flip) in enumerate(ornt):
        affine[int(target), axis] = flip * spacing[axis]
    t = np.radians(angle_degrees)
    rotation = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    affine[:3, :3] = rotation @ affine[:3, :3]
    affine[:3, 3] = [-180.0, 150.0, -400.0]
    return affine


def stored(path, hu, affine, dtype, slope=1.0, inter=0.0, qform_code=1, sform_code=2):
    header = nib.Nifti1Header()
    header.set_data_dtype(dtype)
    image = nib.Nifti1Image(((hu - inter) / slope).astype(dtype), affine, header)
    image.header.set_slope_inter(slope, inter)
    image.set_qform(affine, code=qform_code)
    image.set_sform(affine, code=sform_code)
    nib.save(image, str(path))
    return path


VARIANTS = {
    "LPS int16": dict(codes=("L", "P", "S"), dtype=np.int16),
    "flipped slice axis, float32 with slope": dict(codes=("R", "A", "I"), dtype=np.float32, slope=0.5),
    "uint16 with intercept -1024, uncompressed": dict(
        codes=("R", "A", "S"), dtype=np.uint16, inter=-1024.0, suffix=".nii"
    ),
    "oblique by 10 degrees, sform code 0": dict(codes=("L", "P", "S"), dtype=np.int16, angle=10.0, sform_code=0),
}


@pytest.mark.parametrize("name", VARIANTS)
def test_a_label_map_comes_back_in_the_scans_exact_geometry(tmp_path, name, capsys):
    v = VARIANTS[name]
    hu, labels = scan()
    affine = axes_affine(v["codes"], angle_degrees=v.get("angle", 0.0))
    suffix = v.get("suffix", ".nii.gz")
    volume = stored(
        tmp_path / f"volume-0{suffix}",
        hu,
        affine,
        v["dtype"],
        v.get("slope", 1.0),
        v.get("inter", 0.0),
        sform_code=v.get("sform_code", 2),
    )
    label = stored(tmp_path / f"segmentation-0{suffix}", labels, affine, np.uint8, sform_code=v.get("sform_code", 2))

    row = describe_case("case_000", volume, label)
    assert row["shape"] == "512x480x4" and row["dtype"] == np.dtype(v["dtype"]).name
    slices = slice_case(volume, label, WINDOW, 128)
    if "oblique" in name:
        assert "oblique by 10.0 degrees, read along its nearest axes" in capsys.readouterr().out
    assert slices["image"].shape == (4, 128, 128)
    # intensities were read in HU whatever the storage: the liver sits at (90 + 150) / 400 of the window
    liver = slices["label"] == 1
    assert np.median(slices["image"][liver]) == pytest.approx(0.6, abs=0.01)

    # back without a model: the 128 px labels as region probabilities, resized to the scan and written like it
    small = torch.from_numpy(np.stack([slices["label"] >= 1, slices["label"] == 2], 1).astype(np.float32))
    back = probabilities_to_classes(resized(small, tuple(int(n) for n in slices["shape"])), "sigmoid").numpy()
    back = back.transpose(1, 2, 0)
    out = tmp_path / f"pred{suffix}"
    nifti.save_label_like(back, nib.load(volume), out)

    source, written = nib.load(volume), nib.load(out)
    assert written.shape == source.shape and written.get_data_dtype() == np.uint8
    assert np.array_equal(written.affine, source.affine)
    for key in (
        "qform_code",
        "sform_code",
        "quatern_b",
        "quatern_c",
        "quatern_d",
        "qoffset_x",
        "srow_x",
        "srow_z",
        "pixdim",
    ):
        assert np.array_equal(written.header[key], source.header[key]), key
    itk_in, itk_out = sitk.ReadImage(str(volume)), sitk.ReadImage(str(out))
    assert itk_out.GetSize() == itk_in.GetSize()
    for getter in ("GetSpacing", "GetOrigin", "GetDirection"):
        assert np.allclose(getattr(itk_out, getter)(), getattr(itk_in, getter)(), atol=1e-6), getter

    # the round trip differs from the original only near outlines, within the 4 px of one 128 px pixel
    result = np.asarray(written.dataobj)
    wrong = result != labels
    assert wrong.mean() < 0.01
    in_plane = np.ones((3, 3, 1), bool)
    outlines = np.zeros(labels.shape, bool)
    for target in (labels >= 1, labels == 2):
        outlines |= target ^ ndimage.binary_erosion(target, in_plane)
    distance = ndimage.distance_transform_edt(~outlines, sampling=(1, 1, 1000))  # in-plane pixels
    assert distance[wrong].max() <= 4.5
