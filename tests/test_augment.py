import numpy as np
import pytest

from liverseg.augment import AugmentSettings, augment_set, augment_slice, build_training_set
from liverseg.data.slices import load_slices, save_slices


def _slice():
    image = np.zeros((32, 32), np.float32)
    label = np.zeros((32, 32), np.uint8)
    image[4:12, 4:20] = 0.5
    label[4:12, 4:20] = 1
    label[6:8, 6:8] = 2
    return image, label


def test_flip_only_and_intensity_scale():
    image, label = _slice()
    settings = AugmentSettings(rotation_degrees=0, flip_lr=1.0, flip_ap=0.0, intensity_scale=(2.0, 2.0))
    out_image, out_label = augment_slice(image, label, np.random.default_rng(0), settings)
    assert np.array_equal(out_label, label[::-1])
    assert np.allclose(out_image, 2.0 * image[::-1])


def test_rotation_moves_labels_without_new_values():
    image, label = _slice()
    settings = AugmentSettings(rotation_degrees=30, flip_lr=0.0, intensity_scale=(1.0, 1.0))
    seed = next(s for s in range(100) if abs(np.random.default_rng(s).uniform(-30, 30)) > 15)  # a clear rotation
    out_image, out_label = augment_slice(image, label, np.random.default_rng(seed), settings)
    assert set(np.unique(out_label)) == {0, 1, 2}
    assert not np.array_equal(out_label, label)
    assert abs(int((out_label >= 1).sum()) - int((label >= 1).sum())) < 0.15 * (label >= 1).sum()
    assert np.allclose(out_image[out_label == 1].mean(), 0.5, atol=0.05), "image and labels move together"


def test_augmented_set_is_seeded_and_keeps_originals():
    image, label = _slice()
    images, labels = np.stack([image, image.T]), np.stack([label, label.T])
    settings = AugmentSettings(copies=2)
    a = augment_set(images, labels, settings, seed=5)
    b = augment_set(images, labels, settings, seed=5)
    c = augment_set(images, labels, settings, seed=6)
    assert a[0].shape == (6, 32, 32) and a[1].shape == (6, 32, 32)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    assert np.array_equal(a[1][:2], labels)


def test_training_set_file_and_preview(tmp_path):
    image, label = _slice()
    for n in range(3):
        save_slices({"image": np.stack([image] * 2).astype(np.float16), "label": np.stack([label] * 2)}, tmp_path / f"{n}.npz")
    count = build_training_set([tmp_path / f"{n}.npz" for n in range(3)], tmp_path / "train.npz", tmp_path / "preview.png", AugmentSettings(), seed=0)
    assert count == 12 and load_slices(tmp_path / "train.npz")["image"].shape == (12, 32, 32)
    assert (tmp_path / "preview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
