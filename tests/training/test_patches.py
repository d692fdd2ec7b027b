"""A 3D stage's data: crops at the scale of prediction, patches drawn inside them, in-plane augmentation shared by a
patch's slices, and a short training whose model the cascade applies by sliding window."""

import nibabel as nib
import numpy as np
import pytest
import torch

from liverseg.data.crops import crop_case
from liverseg.data.slices import save_slices
from liverseg.inference.predict import predict_cascade, segment_volume
from liverseg.labels import VALID
from liverseg.models.checkpoint import load_model
from liverseg.models.recipe import Recipe
from liverseg.training.augment import AugmentSettings, augment_volumes
from liverseg.training.patches import PatchBatches, load_volume_set
from liverseg.training.settings import TrainSettings
from liverseg.training.train import train_model
from tests.helpers import ct_volume, write_case, write_nifti

CROP = {"size": 32, "margin_mm": 4.0, "jitter_mm": 4.0}
SPEC = {"kind": "monai", "filters": [4, 4, 8], "patch": [4, 16, 16], "crop": CROP, "sampling": {"patches_per_case": 4}}


def _crop_file(path, depth=6, half=0.5, tumour=True):
    labels = np.zeros((depth, 16, 16), np.uint8)
    labels[:, 4:12, 4:12] = 1
    if tumour:
        labels[depth // 2, 7:9, 7:9] = 2
    image = np.linspace(0, 1, depth, dtype=np.float16)[:, None, None] * np.ones((depth, 16, 16), np.float16)
    save_slices({"image": image, "label": labels, "box_half": np.float32(half), "box_jitter": np.float32(0.2)}, path)
    return path


def test_crops_are_resized_so_that_their_box_spans_the_crop_size(tmp_path):
    path = _crop_file(tmp_path / "a.npz", half=0.5)
    whole = load_volume_set([path], 16)
    assert whole.images[0].shape == (6, 32, 32), "the box is half the crop: the crop doubles"
    box = load_volume_set([path], 16, box_only=True)
    assert box.images[0].shape == (6, 16, 16) and box.labels[0].dtype == torch.uint8
    assert set(np.unique(box.labels[0].numpy())) <= VALID
    assert box.tumour_voxels[0].tolist() and whole.has_tumour.tolist() == [True]


def test_patches_have_the_patch_size_hold_tumour_when_asked_and_repeat_with_the_seed(tmp_path):
    files = [_crop_file(tmp_path / "a.npz", depth=2), _crop_file(tmp_path / "b.npz", depth=9, tumour=False)]
    recipe = Recipe.from_spec({**SPEC, "sampling": {"patches_per_case": 4, "tumour_fraction": 1.0}})
    batches = PatchBatches(load_volume_set(files, 16), recipe, 4, torch.device("cpu"))
    order = batches.epoch_order(recipe, torch.Generator().manual_seed(0))
    assert sorted(order.tolist()) == [0] * 4 + [1] * 4

    def draw(seed):
        return list(batches(order, torch.Generator().manual_seed(seed)))

    for x, y in draw(1):
        assert x.shape == (4, 1, 4, 16, 16) and y.shape == (4, 1, 4, 16, 16)
    # a case of 2 slices is padded to the patch's 4; its patches are all centred on its tumour
    for case in range(2):
        image, label = batches.patch(case, torch.Generator().manual_seed(case))
        assert image.shape == (4, 16, 16) and label.shape == (4, 16, 16)
    assert (batches.patch(0, torch.Generator().manual_seed(2))[1] == 2).any()
    assert all(torch.equal(a[0], b[0]) for a, b in zip(draw(3), draw(3)))
    x, y = next(batches(batches.validation_order()))
    assert x.shape == (1, 1, 2, 32, 32), "validation sees a whole volume"


def test_volume_augmentation_moves_every_slice_of_a_patch_alike():
    images = torch.rand(1, 1, 1, 24, 24).expand(3, 1, 5, 24, 24).clone()
    labels = (images[:, 0] > 0.5).to(torch.uint8)
    settings = AugmentSettings(rotation_degrees=30, flip_lr=0.5, zoom=(0.8, 1.2), intensity_scale=(0.8, 1.2))
    out, out_labels = augment_volumes(images, labels, settings, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out_labels.shape == labels.shape
    assert torch.allclose(out, out[:, :, :1].expand_as(out)), "the same transform and intensity on every slice"
    assert torch.equal(out_labels, out_labels[:, :1].expand_as(out_labels))
    assert not torch.allclose(out[0], out[1]), "each patch draws its own"


@pytest.fixture(scope="module")
def crop_files(tmp_path_factory):
    folder, files = tmp_path_factory.mktemp("crops"), []
    for number in (1, 2):
        volume, label = write_case(folder, number)
        crops = crop_case(volume, label, (-150, 250), CROP["size"], CROP["margin_mm"], CROP["jitter_mm"])
        save_slices(crops, folder / f"case_{number}.npz")
        files.append(folder / f"case_{number}.npz")
    return files


def test_a_3d_stage_trains_and_its_cascade_predicts_by_sliding_window(tmp_path, crop_files, monkeypatch):
    monkeypatch.chdir(tmp_path)
    history = train_model(
        "tumour_3d",
        SPEC,
        TrainSettings(epochs=2, batch_size=2, device="cpu", lr=1e-2),
        AugmentSettings(),
        [crop_files[0]],
        [crop_files[1]],
        tmp_path / "tumour_3d",
        f"sqlite:///{tmp_path / 'mlflow.db'}",
        "volumes",
    )
    assert history["train_samples"].tolist() == [4, 4] and history["val_dice_tumour"].notna().all()
    hu, labels = ct_volume(shape=(30, 26, 7), seed=5)
    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    volume = write_nifti(tmp_path / "scan.nii.gz", hu.astype(np.int16), affine)
    stage1 = write_nifti(tmp_path / "stage1.nii.gz", (labels > 0).astype(np.uint8), affine)
    out = tmp_path / "cascade.nii.gz"
    tumour_voxels = predict_cascade([tmp_path / "tumour_3d" / "best.pt"], stage1, volume, (-150, 250), out, "cpu")
    result = np.asarray(nib.load(out).dataobj)
    assert result.shape == hu.shape and set(np.unique(result)) <= VALID
    assert int((result == 2).sum()) == tumour_voxels and not ((result == 2) & (labels == 0)).any()
    # a box of 3 slices, under the patch's 4, with the mirror averaged in: classes at the box's own size
    model, recipe, _ = load_model(tmp_path / "tumour_3d" / "best.pt", torch.device("cpu"))
    crops = np.random.default_rng(0).random((3, 32, 32), dtype=np.float32)
    for flip in (False, True):
        probability = np.zeros((3, 40, 36), dtype=np.float32)
        classes = segment_volume([model], recipe, crops, (40, 36), torch.device("cpu"), flip, probability)
        assert classes.shape == (3, 40, 36) and set(np.unique(classes)) <= {0, 1}
        assert np.array_equal(classes == 1, probability > 0.5), "the tumour's probability, from the same pass"
