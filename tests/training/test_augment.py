import numpy as np
import pytest
import torch

from liverseg.data.slices import save_slices
from liverseg.training.augment import (
    AugmentSettings,
    augment_batch,
    draw_preview,
    draw_small_lesions,
    jitter_intensity,
    paste_lesions,
    tissue_contrast,
    warp,
)
from liverseg.training.dataset import box_view

STILL = dict(rotation_degrees=0, flip_lr=0.0, flip_ap=0.0, intensity_scale=(1.0, 1.0))


def _batch(n=2):
    image = torch.zeros(32, 32)
    label = torch.zeros(32, 32, dtype=torch.uint8)
    image[4:12, 4:20] = 0.5
    label[4:12, 4:20] = 1
    label[6:8, 6:8] = 2
    return image.expand(n, 1, 32, 32).clone(), label.expand(n, 32, 32).clone()


def test_nothing_asked_changes_nothing():
    images, labels = _batch()
    out_images, out_labels = augment_batch(images, labels, AugmentSettings(**STILL), torch.Generator().manual_seed(0))
    assert torch.allclose(out_images, images, atol=1e-6) and torch.equal(out_labels, labels)


def test_flip_and_intensity_scale():
    images, labels = _batch()
    settings = AugmentSettings(**{**STILL, "flip_lr": 1.0, "intensity_scale": (2.0, 2.0)})
    out_images, out_labels = augment_batch(images, labels, settings, torch.Generator().manual_seed(0))
    assert torch.equal(out_labels, labels.flip(1)), "left-right is the first array axis"
    assert torch.allclose(out_images, 2.0 * images.flip(2), atol=1e-6)
    ap = augment_batch(images, labels, AugmentSettings(**{**STILL, "flip_ap": 1.0}), torch.Generator().manual_seed(0))
    assert torch.equal(ap[1], labels.flip(2))


def test_rotation_per_sample_moves_labels_with_the_image():
    images, labels = _batch(8)
    settings = AugmentSettings(**{**STILL, "rotation_degrees": 30})
    out_images, out_labels = augment_batch(images, labels, settings, torch.Generator().manual_seed(3))
    assert set(torch.unique(out_labels).tolist()) == {0, 1, 2}, "no new label values"
    assert len({tuple(torch.nonzero(m).float().mean(0).tolist()) for m in out_labels}) == 8, "one angle per sample"
    for image, label in zip(out_images, out_labels):
        assert abs(int((label >= 1).sum()) - int((labels[0] >= 1).sum())) < 0.15 * int((labels[0] >= 1).sum())
        assert float(image[0][label == 1].mean()) == pytest.approx(0.5, abs=0.05), "image and labels move together"


def test_seeded():
    images, labels = _batch(4)
    settings = AugmentSettings(
        zoom=(0.8, 1.2), gamma=(0.7, 1.4), blur_sigma=(0, 1), noise_std=0.05, intensity_shift=0.1
    )
    a = augment_batch(images, labels, settings, torch.Generator().manual_seed(5))
    b = augment_batch(images, labels, settings, torch.Generator().manual_seed(5))
    c = augment_batch(images, labels, settings, torch.Generator().manual_seed(6))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and not torch.equal(a[0], c[0])


def test_elastic_deformation_moves_labels_with_the_image():
    images, labels = _batch(8)
    images = labels[:, None].float() * 0.4  # grey 0.4 liver, 0.8 tumour: the image says which label a pixel holds
    settings = AugmentSettings(**{**STILL, "elastic_px": 2.0})
    out_images, out_labels = augment_batch(images, labels, settings, torch.Generator().manual_seed(2))
    assert set(torch.unique(out_labels).tolist()) <= {0, 1, 2}
    assert sum(not torch.equal(label, labels[0]) for label in out_labels) == 8, "every sample deformed its own way"
    inner = torch.nn.functional.avg_pool2d((out_labels == 1)[:, None].float(), 3, stride=1, padding=1)[:, 0] == 1
    assert torch.allclose(out_images[:, 0][inner], torch.tensor(0.4)), (
        "inside the moved liver, the moved image is liver"
    )
    again = augment_batch(images, labels, settings, torch.Generator().manual_seed(2))
    assert torch.equal(again[1], out_labels), "seeded"


def _livers(n=16, liver=0.5, lesion=0.2):
    """Samples with a large liver (grey `liver`) and one lesion (grey `lesion`) in the first half of the samples."""
    images = torch.zeros(n, 3, 48, 48)
    labels = torch.zeros(n, 48, 48, dtype=torch.uint8)
    images[:, :, 4:44, 4:44], labels[:, 4:44, 4:44] = liver, 1
    half = n // 2
    images[:half, :, 20:26, 20:26], labels[:half, 20:26, 20:26] = lesion, 2
    return images, labels


def test_pasted_lesions_keep_their_contrast_and_stay_in_the_liver():
    images, labels = _livers()
    images[8:] += 0.3  # the receiving livers are brighter: the pasted lesion follows its new liver
    out_images, out_labels = paste_lesions(images, labels, 1.0, torch.Generator().manual_seed(1))
    gained = (out_labels == 2) & (labels != 2)
    receivers = [k for k in range(8, 16) if gained[k].any()]
    assert len(receivers) >= 2, "lesion-free samples receive lesions"
    for k in receivers:
        assert not (gained[k] & (labels[k] == 0)).any(), "lesions stay inside the liver"
        inside = out_images[k][:, gained[k]]
        assert torch.allclose(inside, torch.full_like(inside, 0.2 + 0.3)), (
            "donor contrast, receiver's liver level, all channels"
        )
        changed = (out_images[k] != images[k]).any(0)
        rim = torch.nn.functional.max_pool2d(gained[k][None, None].float(), 3, stride=1, padding=1)[0, 0].bool()
        assert changed.any() and not (changed & ~rim).any(), "only the lesion and one ring around it change"
    assert torch.equal(out_labels[labels == 2], labels[labels == 2]), "a sample's own lesions stay"
    nothing = paste_lesions(images, labels, 0.0, torch.Generator().manual_seed(1))
    assert torch.equal(nothing[0], images) and torch.equal(nothing[1], labels)


def test_small_lesions_are_spheres_drawn_into_the_liver_and_labelled_in_the_middle_slice():
    images, labels = _livers(64)
    labels[-1] = 0  # a sample without liver gets nothing
    settings = AugmentSettings(small_lesions=0.5, small_lesion_count=2, small_lesion_radius_px=(1.0, 3.0))
    out_images, out_labels = draw_small_lesions(images, labels, settings, torch.Generator().manual_seed(0))
    gained = (out_labels == 2) & (labels != 2)
    change = out_images - images
    assert torch.equal(out_labels[labels == 2], labels[labels == 2]), "a sample's own lesions stay"
    assert not (gained & (labels != 1)).any(), "drawn into the liver only"
    assert not ((change != 0) & (labels != 1)[:, None]).any(), "nothing outside the liver or over its lesions changes"
    drawn = gained.flatten(1).any(1)
    assert 16 < int(drawn.sum()) < 60 and not drawn[-1], "about three samples in four get one of two lesions"
    for k in torch.nonzero(drawn)[:, 0]:
        middle, beside = change[k, 1].abs(), change[k, [0, 2]].abs()
        assert (beside <= middle + 1e-6).all() and torch.equal(beside[0], beside[1]), "a sphere, not a tube"
        assert (change[k, 1] != 0)[gained[k]].all(), "every labelled pixel is drawn"
        assert 0.04 - 1e-6 <= float(middle.max()) <= 2 * 0.2 + 1e-6, "the contrast drawn, two lesions at most"
    signs = {int(torch.sign(change[k, 1][gained[k]].sum())) for k in torch.nonzero(drawn)[:, 0]}
    assert signs == {-1, 1}, "hypo- and hyperdense"
    assert not (change[~drawn] != 0).any(), "a sample without a drawn lesion keeps its image"


def test_intensity_and_texture_changes():
    flat = torch.full((64, 1, 16, 16), 0.5)
    noisy = jitter_intensity(flat, AugmentSettings(**{**STILL, "noise_std": 0.1}), torch.Generator().manual_seed(0))
    stds = noisy.flatten(1).std(1)
    assert 0 < float(stds.min()) < float(stds.max()) <= 0.12, "each sample its own noise level up to noise_std"
    gamma = jitter_intensity(flat, AugmentSettings(**{**STILL, "gamma": (2.0, 2.0)}), torch.Generator())
    assert torch.allclose(gamma, torch.full_like(flat, 0.25))
    edge = torch.zeros(2, 1, 16, 16)
    edge[:, :, :, 8:] = 1.0
    blurred = jitter_intensity(edge, AugmentSettings(**{**STILL, "blur_sigma": (1.5, 1.5)}), torch.Generator())
    assert 0 < float(blurred[0, 0, 0, 7]) < 0.5 < float(blurred[0, 0, 0, 8]) < 1
    assert torch.allclose(blurred.sum(), edge.sum(), rtol=1e-4), "blur keeps the mass"


def test_a_lean_patient_turns_fat_outside_the_liver_to_soft_tissue_in_the_chosen_samples_only():
    images, labels = _batch(64)
    images[:, 0, 16:30, 2:30] = 0.125  # fat (-100 HU in the default window)
    images[:, 0, 16:30, 12:18] = 0.45  # a muscle across it
    images[:, 0, 0:2, :] = 0.0  # air
    generator = torch.Generator().manual_seed(0)
    lean = tissue_contrast(images, labels, AugmentSettings(**STILL, lean=0.5), generator)
    rise = (lean - images)[:, 0, 22, 6]  # inside the fat, far from its edges
    chosen = rise > 0
    assert 16 < int(chosen.sum()) < 48, "about half the samples"
    assert float(rise[chosen].min()) >= 0.2 - 1e-6 and float(rise.max()) <= 0.45 + 1e-6, "to soft tissue"
    assert float(rise[chosen].std()) > 0.03, "each sample its own rise"
    assert torch.equal(lean[~chosen], images[~chosen]), "the other samples untouched"
    assert torch.equal(lean[:, 0, 4:12, 4:20], images[:, 0, 4:12, 4:20]), "the liver stays"
    assert torch.equal(lean[:, 0, 0:2], images[:, 0, 0:2]), "air stays"
    assert torch.allclose(lean[:, 0, 22, 15], images[:, 0, 22, 15], atol=1e-3), "the muscle stays"
    state = generator.get_state()
    assert torch.equal(tissue_contrast(images, labels, AugmentSettings(**STILL), generator), images)
    assert torch.equal(generator.get_state(), state), "off: no draw, so other settings' draws stay as they were"


def test_tissue_contrast_moves_the_liver_and_scales_lesions_without_inverting_them():
    images, labels = _batch(64)
    labels[:, 5:11, 5:11] = 2
    images[:, 0][labels == 2] = 0.3  # hypodense lesions in a liver of 0.5
    generator = torch.Generator().manual_seed(0)
    shifted = tissue_contrast(images, labels, AugmentSettings(**STILL, liver_shift=0.2), generator)
    far = torch.nn.functional.max_pool2d((labels >= 1)[:, None].float(), 7, stride=1, padding=3)[:, 0] == 0
    assert torch.equal(shifted[:, 0][far], images[:, 0][far]), "nothing far from the liver moves"
    moved = (shifted - images)[:, 0]
    assert float(moved[:, 8, 14].abs().max()) <= 0.2 + 1e-6 and float(moved[:, 8, 14].std()) > 0.05, "per sample"
    inside, outside = moved[:, 4, 14] / moved[:, 8, 14], moved[:, 3, 14] / moved[:, 8, 14]  # the rows by the edge
    assert 0.5 < float(inside.min()) < 1 and torch.allclose(inside + outside, torch.ones(64), atol=1e-3), (
        "partial volume: the edge sits where the label's does"
    )
    assert torch.allclose(moved[:, 7:9, 7:9], moved[:, 8:9, 14:15].expand(64, 2, 2), atol=1e-3), "lesions move too"

    scaled = tissue_contrast(images, labels, AugmentSettings(**STILL, lesion_contrast=(0.25, 2.0)), generator)
    contrast = scaled[:, 0, 7:9, 7:9].mean((1, 2)) - 0.5  # the lesion's core
    assert float(contrast.max()) < 0 and -0.4 - 1e-3 <= float(contrast.min()), "fainter or stronger, still hypodense"
    assert float(contrast.max()) > -0.1 and float(contrast.min()) < -0.3, "the factor's whole range is drawn"
    assert torch.equal(scaled[:, 0][far], images[:, 0][far])
    grain = torch.zeros_like(images)
    grain[:, 0, 5:11, 5:11] = 0.05 * torch.tensor([[1.0, -1.0] * 3, [-1.0, 1.0] * 3] * 3)  # a checkerboard of noise
    faint = tissue_contrast(images + grain, labels, AugmentSettings(**STILL, lesion_contrast=(0.25, 0.25)), generator)
    core = faint[:, 0, 7:9, 7:9]
    assert float((core.mean((1, 2)) - 0.5).max()) > -0.1, "fainter"
    assert float((core - core.mean((1, 2), keepdim=True)).abs().min()) > 0.035, "the noise on it kept"

    bias = tissue_contrast(images, labels, AugmentSettings(**STILL, bias=0.1), generator) - images
    assert 0 < float(bias.abs().amax((1, 2, 3)).max()) <= 0.1 + 1e-6
    assert float((bias[..., 1:] - bias[..., :-1]).abs().max()) < 0.02, "smooth: no step between neighbours"
    same = tissue_contrast(images, labels, AugmentSettings(**STILL), generator)
    assert torch.equal(same, images), "off by default"


def test_box_view_shows_the_box_and_jitters_it():
    half, jitter = torch.full((2,), 0.5), torch.full((2,), 0.25)
    image = torch.zeros(2, 1, 32, 32)
    image[:, :, 8:24, 8:24] = 1.0  # the box: the middle half of the crop
    labels = (image[:, 0] > 0).to(torch.uint8)
    plain = box_view(half, jitter, None)
    out_images, out_labels = warp(image, labels, plain)
    assert (out_labels == 1).all(), "the box fills the view"
    assert torch.allclose(out_images[..., 1:-1, 1:-1], torch.ones(2, 1, 30, 30)), "only the rim blends with outside"
    jittered = box_view(torch.full((64,), 0.5), torch.full((64,), 0.25), torch.Generator().manual_seed(0))
    scales = jittered[:, 0, 0]
    assert float(scales.min()) >= 0.25 - 1e-6 and float(scales.max()) <= 0.75 + 1e-6 and float(scales.std()) > 0.05
    assert float(jittered[:, :, 2].abs().max()) <= 0.25 + 1e-6


def test_preview(tmp_path):
    images, labels = _batch(2)
    for n in range(3):
        save_slices({"image": images[:, 0].numpy().astype(np.float16), "label": labels.numpy()}, tmp_path / f"{n}.npz")
    draw_preview([tmp_path / f"{n}.npz" for n in range(3)], tmp_path / "preview.png", AugmentSettings(), seed=0)
    assert (tmp_path / "preview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
