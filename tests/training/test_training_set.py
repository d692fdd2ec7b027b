import numpy as np
import pytest
import torch

from liverseg.data.slices import save_slices
from liverseg.training.augment import AugmentSettings
from liverseg.training.dataset import Batches, load_slice_set, region_targets


def _case(path, n, value, crop=False, slice_mm=2.5, tumour=np.s_[0, 6:8, 6:8], **stored):
    """A slices file of n 16x16 slices: liver in the middle, a little tumour in the first slice; `stored`: more keys."""
    labels = np.zeros((n, 16, 16), np.uint8)
    labels[:, 4:12, 4:12] = 1
    labels[tumour] = 2
    slices = {
        "image": (np.arange(n, dtype=np.float16)[:, None, None] + value) * np.ones((n, 16, 16), np.float16),
        "label": labels,
        "spacing": np.array([0.8, 0.8, slice_mm]),
    }
    if crop:
        slices.update(box_half=np.float32(0.5), box_jitter=np.float32(0.25))
    save_slices(slices | stored, path)
    return path


def test_stacks_stay_within_each_case(tmp_path):
    files = [_case(tmp_path / "a.npz", 3, 0.0), _case(tmp_path / "b.npz", 2, 10.0)]
    data = load_slice_set(files, 3)
    assert len(data) == 5 and data.box_half is None
    assert data.has_tumour.tolist() == [True, False, False, True, False]
    batches = Batches(data, ("liver", "tumour"), 8, torch.device("cpu"))
    x, y = next(batches(torch.arange(5)))
    assert x.shape == (5, 3, 16, 16) and y.shape == (5, 2, 16, 16)
    assert x[:, :, 0, 0].tolist() == [[0, 0, 1], [0, 1, 2], [1, 2, 2], [10, 10, 11], [10, 11, 11]]


def test_each_case_takes_its_neighbours_as_far_apart_as_asked(tmp_path):
    """`neighbour_mm` 3: a case of 1 mm slices takes every third slice, one of 5 mm slices the adjacent ones."""
    files = [_case(tmp_path / "thin.npz", 7, 0.0, slice_mm=1.0), _case(tmp_path / "thick.npz", 3, 10.0, slice_mm=5.0)]
    data = load_slice_set(files, 3, neighbour_mm=3.0)
    first = data.images[data.stacks][:, :, 0, 0].tolist()
    assert first[:7] == [[0, 0, 3], [0, 1, 4], [0, 2, 5], [0, 3, 6], [1, 4, 6], [2, 5, 6], [3, 6, 6]]
    assert first[7:] == [[10, 10, 11], [10, 11, 12], [11, 12, 12]]


def test_region_targets_nest():
    labels = torch.tensor([[[0, 1, 2]]], dtype=torch.uint8)
    assert region_targets(labels, ("liver", "tumour"))[0, :, 0].tolist() == [[0, 1, 1], [0, 0, 1]]
    assert region_targets(labels, ("tumour",))[0, :, 0].tolist() == [[0, 0, 1]]


def test_crop_sets_show_the_box_in_validation_and_jitter_it_in_training(tmp_path):
    data = load_slice_set([_case(tmp_path / "c.npz", 4, 0.0, crop=True)], 1)
    assert data.box_half.tolist() == [0.5] * 4
    batches = Batches(
        data,
        ("tumour",),
        4,
        torch.device("cpu"),
        AugmentSettings(rotation_degrees=0, flip_lr=0, intensity_scale=(1, 1)),
    )
    _, y_val = next(batches(torch.arange(4)))
    # the liver box is the middle half of the crop: validation zooms it to the whole view
    _, y_liver = next(Batches(data, ("liver",), 4, torch.device("cpu"))(torch.arange(4)))
    assert y_liver.mean() > 0.9
    y_train = [
        next(Batches(data, ("liver",), 4, torch.device("cpu"))(torch.arange(4), torch.Generator().manual_seed(s)))[1]
        for s in range(3)
    ]
    assert len({round(float(y.mean()), 4) for y in y_train}) > 1, "jittered boxes differ between draws"
    assert y_val.shape == (4, 1, 16, 16)


def test_the_set_holds_each_case_as_stored(tmp_path):
    """Cases are read straight into their place in the set, in pieces: a case larger than a piece comes whole, and a
    file stored in float32 (not as save_slices writes) is converted."""
    rng = np.random.default_rng(0)
    large = {"image": rng.random((40, 64, 64)).astype(np.float16), "label": rng.integers(0, 3, (40, 64, 64), np.uint8)}
    as_float32 = {"image": rng.random((3, 64, 64)).astype(np.float32), "label": np.ones((3, 64, 64), np.uint8)}
    save_slices(large, tmp_path / "large.npz")
    np.savez(tmp_path / "float32.npz", **as_float32)
    data = load_slice_set([tmp_path / "large.npz", tmp_path / "float32.npz"], 1)
    assert np.array_equal(data.images.numpy(), np.concatenate([large["image"], as_float32["image"].astype(np.float16)]))
    assert np.array_equal(data.labels.numpy(), np.concatenate([large["label"], as_float32["label"]]))


def test_a_case_of_another_size_is_named(tmp_path):
    files = [_case(tmp_path / "a.npz", 3, 0.0), tmp_path / "b.npz"]
    save_slices({"image": np.zeros((2, 8, 8), np.float16), "label": np.zeros((2, 8, 8), np.uint8)}, files[1])
    with pytest.raises(ValueError, match=r"b\.npz: array label has shape \(2, 8, 8\), not \(2, 16, 16\)"):
        load_slice_set(files, 1)


def test_a_file_that_is_no_slices_file_is_named(tmp_path):
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not a zip archive")
    with pytest.raises(ValueError, match=r"broken\.npz: not a slices file holding array label"):
        load_slice_set([_case(tmp_path / "a.npz", 3, 0.0), broken], 1)


def test_small_lesion_slices_are_measured_at_each_cases_stored_scale(tmp_path):
    """The same 2x2 pixels of tumour: under 10 mm where a stored pixel is 1 or 3.2 mm; a tumour filling 8x8 pixels of
    three slices of 3.2 mm pixels is 21 mm across."""
    scan = np.array([64, 64])  # stored at 16x16: 3.2 mm pixels
    whole = _case(tmp_path / "whole.npz", 3, 0.0, shape=scan)
    large = _case(tmp_path / "large.npz", 3, 0.0, tumour=np.s_[:, 4:12, 4:12], shape=scan)
    crop = _case(tmp_path / "crop.npz", 2, 0.0, crop=True, box_start=np.zeros(3), box_stop=np.array([20, 20, 2]))
    data = load_slice_set([whole, large, crop], 1, small_lesions=True)
    assert data.small_lesion.tolist() == [True, False, False, False, False, False, True, False]
    assert load_slice_set([whole], 1).small_lesion is None
