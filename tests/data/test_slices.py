import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from liverseg.data import nifti
from liverseg.data.slices import load_slices, normalise_hu, resize_images, resize_labels, save_slices, slice_case
from liverseg.evaluation.metrics import overlap_metrics


def test_normalise_hu_clips_and_scales():
    hu = np.array([-1000.0, -150.0, 50.0, 250.0, 3000.0])
    assert np.allclose(normalise_hu(hu, (-150, 250)), [0.0, 0.0, 0.5, 1.0, 1.0])


def test_label_resize_keeps_values_and_there_and_back_keeps_the_shape():
    x, y = np.ogrid[:237, :201]
    labels = ((x - 110) ** 2 + (y - 90) ** 2 < 60**2).astype(np.uint8)
    labels[(x - 110) ** 2 + (y - 90) ** 2 < 15**2] = 2
    small = resize_labels(labels[None], (128, 128))
    assert small.shape == (1, 128, 128) and set(np.unique(small)) == {0, 1, 2}
    back = resize_labels(small, labels.shape)[0]
    assert back.shape == labels.shape
    assert overlap_metrics(back >= 1, labels >= 1)["dice"] > 0.98
    assert overlap_metrics(back == 2, labels == 2)["dice"] > 0.9


def test_image_resize_of_probabilities_back_to_size():
    x, y = np.ogrid[:128, :128]
    prob = ((x - 64) ** 2 + (y - 64) ** 2 < 40**2).astype(np.float32)[None, None]
    up = resize_images(prob, (256, 230))
    assert tuple(up.shape) == (1, 1, 256, 230)
    assert float(up.min()) >= 0 and float(up.max()) <= 1
    # the disk keeps its area fraction
    assert (up > 0.5).mean() == pytest.approx((prob > 0.5).mean(), rel=0.03)


# shrinking and growing, both axes or one (antialiasing then applies to both), odd factors, a single row
SIZES = [((512, 512), (128, 128)), ((237, 201), (128, 128)), ((96, 40), (128, 128)), ((128, 128), (512, 390)),
         ((200, 60), (96, 96)), ((1, 7), (5, 3)), ((300, 301), (299, 302))]  # fmt: skip


@pytest.mark.parametrize(("shape", "size"), SIZES)
def test_resizing_without_torch_gives_torch_interpolates_result(shape, size):
    rng = np.random.default_rng(sum(shape))
    images = rng.random((3, *shape), dtype=np.float32)
    shrinking = size[0] < shape[0] or size[1] < shape[1]
    expected = F.interpolate(torch.from_numpy(images)[:, None], size, mode="bilinear", antialias=shrinking)[:, 0]
    assert np.abs(resize_images(images, size) - expected.numpy()).max() < 1e-6
    labels = rng.integers(0, 3, (2, *shape), dtype=np.uint8)
    expected = F.interpolate(torch.from_numpy(labels)[:, None].float(), size, mode="nearest-exact")[:, 0]
    assert np.array_equal(resize_labels(labels, size), expected.to(torch.uint8).numpy())


def test_slice_case_from_a_written_phantom(phantom_files, tmp_path):
    volume, label = phantom_files / "volume-0.nii.gz", phantom_files / "segmentation-0.nii.gz"
    slices = slice_case(volume, label, (-150, 250), 64)
    canonical = nifti.to_canonical(nib.load(volume))
    assert slices["image"].shape == (canonical.shape[2], 64, 64)
    assert slices["label"].shape == slices["image"].shape
    assert tuple(slices["shape"]) == canonical.shape[:2]
    assert 0 <= slices["image"].min() and slices["image"].max() <= 1
    assert set(np.unique(slices["label"])) <= {0, 1, 2} and (slices["label"] >= 1).any()
    save_slices(slices, tmp_path / "case.npz")
    again = load_slices(tmp_path / "case.npz")
    assert all(np.array_equal(again[k], slices[k]) for k in slices)


def test_mismatched_label_is_named(tmp_path):
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 4), np.int16), np.eye(4)), tmp_path / "volume-0.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 5), np.uint8), np.eye(4)), tmp_path / "segmentation-0.nii.gz")
    with pytest.raises(nifti.VolumeError, match="segmentation-0.nii.gz"):
        slice_case(tmp_path / "volume-0.nii.gz", tmp_path / "segmentation-0.nii.gz", (-150, 250), 32)


@pytest.mark.parametrize(
    "command",
    [
        ["preprocess", "--size", "64"],
        ["crop", "--size", "48", "--margin-mm", "10", "--jitter-mm", "5", "--liver-hu", "100"],
    ],
)
def test_data_jobs_do_not_load_pytorch(phantom_files, tmp_path, command):
    """Preprocessing and cropping resize without torch, so that each of their many jobs skips its second of import."""
    out = tmp_path / "out.npz"
    volume, label = phantom_files / "volume-0.nii.gz", phantom_files / "segmentation-0.nii.gz"
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "liverseg", command[0], "--volume", volume, "--label", label]
        + ["--window", "-150", "250", *command[1:], "--out", out],
        capture_output=True,
        text=True,
        check=True,
    )
    imported = {
        line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time")
    }
    assert out.exists() and "nibabel" in imported
    assert not {name for name in imported if name.split(".")[0] == "torch"}
