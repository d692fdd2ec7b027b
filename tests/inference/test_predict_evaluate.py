import json

import nibabel as nib
import numpy as np
import pytest
import torch

from liverseg.data import nifti
from liverseg.data.crops import crop_case
from liverseg.data.slices import save_slices, slice_case
from liverseg.evaluation.evaluate import evaluate_case
from liverseg.inference.postprocess import PostSettings
from liverseg.inference.predict import (
    confident_lesions,
    predict_cascade,
    predict_case,
    segment_slices,
    tumour_stage,
)
from liverseg.models.heads import probabilities_to_classes
from liverseg.models.recipe import Recipe
from liverseg.reporting.summary import read_case_scores, step_effects, summarise
from liverseg.reporting.tables import markdown_table, steps_markdown
from tests.helpers import write_checkpoint


def test_tumour_only_inside_liver():
    p = torch.tensor([[[[0.9, 0.9, 0.2]], [[0.8, 0.1, 0.9]]]])  # (1, 2, 1, 3): liver, tumour
    assert probabilities_to_classes(p, "sigmoid").tolist() == [[[2, 1, 0]]]


def test_softmax_head_labels_are_the_most_likely_class():
    p = torch.tensor([[[[0.6, 0.2, 0.3]], [[0.3, 0.5, 0.3]], [[0.1, 0.3, 0.4]]]])  # (1, 3, 1, 3): bg, liver, tumour
    assert probabilities_to_classes(p, "softmax").tolist() == [[[0, 1, 2]]]


def test_prediction_has_the_input_geometry(phantom_files, tmp_path):
    spec = {"kind": "unet", "base_channels": 2, "depth": 2}
    torch.manual_seed(0)
    write_checkpoint(tmp_path / "best.pt", spec)
    for n in range(3):  # the phantom cases come in several storage orientations
        volume = phantom_files / f"volume-{n}.nii.gz"
        save_slices(slice_case(volume, phantom_files / f"segmentation-{n}.nii.gz", (-150, 250), 32), tmp_path / "s.npz")
        predict_case([tmp_path / "best.pt"], tmp_path / "s.npz", volume, tmp_path / f"pred-{n}.nii.gz", device="cpu")
        ref, out = nib.load(volume), nib.load(tmp_path / f"pred-{n}.nii.gz")
        assert out.shape == ref.shape and np.allclose(out.affine, ref.affine)
        assert nifti.orientation_codes(out) == nifti.orientation_codes(ref)
        assert set(np.unique(np.asarray(out.dataobj))) <= {0, 1, 2}


def test_slices_of_another_case_are_refused(phantom_files, tmp_path):
    spec = {"kind": "unet", "base_channels": 2, "depth": 2}
    write_checkpoint(tmp_path / "m.pt", spec)
    save_slices(
        slice_case(phantom_files / "volume-0.nii.gz", phantom_files / "segmentation-0.nii.gz", (-150, 250), 32),
        tmp_path / "s.npz",
    )
    other = tmp_path / "volume-9.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((40, 30, 5), np.int16), np.eye(4)), other)
    with pytest.raises(nifti.VolumeError, match="do not belong to"):
        predict_case([tmp_path / "m.pt"], tmp_path / "s.npz", other, tmp_path / "p.nii.gz", device="cpu")
    assert not (tmp_path / "p.nii.gz").exists()


class _Painter(torch.nn.Module):
    """A stand-in tumour stage that marks pixels above 150 HU of its middle input slice as tumour."""

    def forward(self, x):
        return (x[:, 1:2] - 0.75) * 100  # 0.75 of the window [-150, 250] is 150 HU


def test_cascade_keeps_the_stage1_liver_and_puts_tumour_inside_it(phantom_files, tmp_path, monkeypatch):
    spec = {"kind": "unet", "base_channels": 2, "depth": 2, "input_slices": 3, "crop": {"size": 32, "margin_mm": 5.0}}
    write_checkpoint(tmp_path / "t.pt", spec)
    monkeypatch.setattr("liverseg.models.checkpoint.build_model", lambda spec, pretrained: _Painter())
    monkeypatch.setattr(_Painter, "load_state_dict", lambda self, state: None, raising=False)
    volume, label = phantom_files / "volume-1.nii.gz", phantom_files / "segmentation-1.nii.gz"
    reference = nib.load(label)
    ref = np.asarray(reference.dataobj)
    stage1 = tmp_path / "stage1.nii.gz"
    nib.save(nib.Nifti1Image((ref >= 1).astype(np.uint8), reference.affine, reference.header), stage1)
    voxels = predict_cascade([tmp_path / "t.pt"], stage1, volume, (-150, 250), tmp_path / "c.nii.gz", device="cpu")
    out = nib.load(tmp_path / "c.nii.gz")
    labels = np.asarray(out.dataobj)
    assert out.shape == reference.shape and np.allclose(out.affine, reference.affine)
    assert np.array_equal(labels >= 1, ref >= 1), "the liver is stage 1's"
    hu = np.asarray(nib.load(volume).dataobj)
    assert voxels == int((labels == 2).sum()) > 0
    # painted where the CT is bright, not a shifted copy: the crop is pasted back in place (blurred by the resize)
    assert (hu[labels == 2] > 130).mean() > 0.7 and hu[labels == 2].mean() > hu[ref >= 1].mean() + 40
    assert (labels == 2).sum() < 0.5 * (labels >= 1).sum()
    assert not (labels == 2)[ref == 0].any(), "no tumour outside the liver"


NO_STEPS = PostSettings(closing_radius_mm=0.0, largest_liver_component=False, tumour_in_liver=False)


def _scores(tmp_path, model, case, ref, pred, post):
    affine = np.diag([-0.7, -0.7, 3.0, 1.0])
    paths = {}
    for name, data in (("ref", ref), ("pred", pred), ("post", post)):
        paths[name] = tmp_path / f"{model}-{case}-{name}.nii.gz"
        nib.save(nib.Nifti1Image(np.asarray(data, np.uint8), affine), paths[name])
    out = tmp_path / f"{model}-{case}.json"
    evaluate_case(model, case, paths["ref"], paths["pred"], paths["post"], NO_STEPS, out)
    return out


def test_evaluate_and_summarise_by_hand(tmp_path):
    ref = np.zeros((4, 4, 2), np.uint8)
    ref[:2, :2, 0] = 1  # 4 liver voxels, no tumour
    pred = ref.copy()
    pred[2, 0, 0] = 1  # one false positive: liver Dice 8/9
    a = _scores(tmp_path, "m", "case_000", ref, pred, ref)
    result = json.loads(a.read_text())
    assert result["pred"]["liver"]["dice"] == pytest.approx(8 / 9)
    assert result["post"]["liver"]["dice"] == 1.0
    assert result["post"]["tumour"]["dice"] is None, "no tumour anywhere: undefined, left out of means"
    assert result["pred"]["labels"]["accuracy"] == pytest.approx(31 / 32)
    ref2 = ref.copy()
    ref2[0, 0, 0] = 2
    b = _scores(tmp_path, "m", "case_001", ref2, ref, ref)  # tumour missed, liver perfect
    history = tmp_path / "history.csv"
    history.write_text("epoch,val_dice,epoch_seconds,val_seconds\n1,0.5,10,1\n2,0.7,14,1\n3,0.6,12,1\n")
    stage = tmp_path / "stage.csv"
    stage.write_text("epoch,val_dice,epoch_seconds,val_seconds\n1,0.2,3,1\n2,0.1,5,1\n")
    summary = summarise(*read_case_scores([a, b]), {"m": [[history], [stage]]})
    row = summary.iloc[0]
    assert row["liver_dice"] == 1.0 and row["liver_dice_before_post"] == pytest.approx((8 / 9 + 1) / 2)
    assert row["tumour_dice"] == 0.0 and row["tumour_cases"] == 1
    assert row["tumour_dice_cases_with_tumour"] == 0.0 and row["cases_with_tumour"] == 1
    assert row["lesion_recall"] == 0.0 and row["ref_lesions"] == 1 and row["ref_lesions_lt10mm"] == 1
    assert row["seconds_per_epoch"] == 12 and row["tumour_stage_seconds_per_epoch"] == 4
    assert row["training_minutes"] == pytest.approx((36 + 3 + 8 + 2) / 60)
    assert row["epochs"] == "2/3 + 1/2" and row["scored_cases"] == 2
    table = markdown_table(summary)
    assert "| Liver Dice (per case) | 1.0000 |" in table and "| Best epoch / epochs (each stage) | 2/3 + 1/2 |" in table
    assert "| Scored cases (with tumour scored; holding tumour) | 2 (1; 1) |" in table
    assert "| Lesion recall < 10 / 10-20 / > 20 mm | 0.00 / - / - |" in table
    assert "Means over validation cases" in table and "Means over new phantoms" in markdown_table(summary, "new")
    # tumour: case 0 has none anywhere (no score), case 1 missed its one voxel: global Dice 0, no distance
    assert row["tumour_dice_global"] == 0.0 and row["tumour_distance_cases"] == 0 and np.isnan(row["tumour_assd"])
    assert row["liver_dice_global"] == 1.0 and row["liver_distance_cases"] == 2 and row["liver_mssd"] == 0.0
    assert row["tumour_rvd"] == -1.0 and row["liver_rvd"] == 0.0
    assert row["tumour_burden_error"] == pytest.approx((0 + 1 / 4) / 2)  # case 1: burden 1/4 predicted as 0
    assert "| Tumour ASSD / HD95 / MSSD (mm) | - / - / - |" in table
    assert "| Cases with surface distances (liver / tumour) | 2 / 0 |" in table
    # before closing, case 0's extra liver voxel lies one 0.7 mm voxel beside the reference; Dice pooled over both cases
    pred_liver = read_case_scores([a, b])[0].query("stage == 'pred' and target == 'liver'")
    assert pred_liver["mssd"].tolist() == pytest.approx([0.7, 0.0])
    assert 2 * pred_liver["intersection"].sum() / (
        pred_liver["pred_voxels"].sum() + pred_liver["ref_voxels"].sum()
    ) == pytest.approx(16 / 17)


def test_geometry_mismatch_is_named(tmp_path):
    ref = tmp_path / "ref.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 2), np.uint8), np.eye(4)), ref)
    moved = tmp_path / "moved.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 2), np.uint8), np.diag([1, 1, 2, 1.0])), moved)
    with pytest.raises(nifti.VolumeError, match="moved.nii.gz: affine differs from its reference"):
        evaluate_case("m", "c", ref, moved, moved, NO_STEPS, tmp_path / "out.json")
    assert not (tmp_path / "out.json").exists()


def test_each_post_processing_step_is_scored_and_judged(tmp_path):
    ref = np.zeros((12, 12, 4), np.uint8)
    ref[1:7, 1:7, :] = 1
    pred = ref.copy()
    pred[9:11, 9:11, 1:3] = 1  # a stray liver blob: the largest component step removes it
    post = ref.copy()
    affine = np.diag([0.8, 0.8, 2.0, 1.0])
    paths = {}
    for name, data in (("ref", ref), ("pred", pred), ("post", post)):
        paths[name] = tmp_path / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(data, affine), paths[name])
    settings = PostSettings(closing_radius_mm=0.0, largest_liver_component=True, tumour_in_liver=False)
    result = evaluate_case("m", "case_000", paths["ref"], paths["pred"], paths["post"], settings, tmp_path / "s.json")
    assert result["steps"] == ["pred", "largest_component", "post"]
    assert result["pred"]["liver"]["dice"] == pytest.approx(2 * 144 / (144 + 152))
    assert result["largest_component"]["liver"]["dice"] == 1.0 == result["post"]["liver"]["dice"]
    effects = step_effects(read_case_scores([tmp_path / "s.json"])[0]).set_index(["target", "step"])
    liver = effects.loc[("liver", "largest_component")]
    assert liver["verdict"] == "helped" and liver["dice_change"] == pytest.approx(1 - 2 * 144 / 296)
    assert effects.loc[("tumour", "largest_component"), "verdict"] == "-"  # no tumour anywhere: undefined
    assert "| m | liver | largest_component |" in steps_markdown(
        step_effects(read_case_scores([tmp_path / "s.json"])[0])
    )


def test_tumour_stage_sees_the_training_crops_shifted_to_its_liver(phantom_files, tmp_path, monkeypatch):
    """With `liver_hu`, prediction cuts the crops that training cut from the same liver, and a scan whose HU are all
    50 higher (another contrast phase, to a first approximation) gives the same crops."""
    volume, label = phantom_files / "volume-1.nii.gz", phantom_files / "segmentation-1.nii.gz"
    brighter = tmp_path / "brighter.nii.gz"
    scan = nib.load(volume)
    nib.save(nib.Nifti1Image(np.asarray(scan.dataobj) + np.int16(50), scan.affine, scan.header), brighter)
    liver = nifti.to_canonical(nib.load(label), dtype=np.uint8) >= 1
    recipe = Recipe.from_spec({"kind": "unet", "crop": {"size": 32, "margin_mm": 5.0, "liver_hu": 100.0}})
    seen = []
    monkeypatch.setattr(
        "liverseg.inference.predict.segment_slices",
        lambda model, recipe, crops, size, device, flip_tta, innermost, slice_mm: (
            seen.append(crops) or np.zeros((len(crops), *size))
        ),
    )
    for path in (volume, brighter):
        tumour_stage([None], recipe, nib.load(path), liver, (-150, 250), "cpu")
    trained = crop_case(volume, label, (-150, 250), 32, margin_mm=5.0, jitter_mm=0.0, liver_hu=100.0)["image"]
    assert np.allclose(seen[0], trained, atol=1e-3), "prediction's crops are training's"
    assert np.allclose(seen[0], seen[1], atol=1e-4), "a uniform HU shift changes nothing"
    liver_crop = crop_case(volume, label, (-150, 250), 32, 5.0, 0.0, liver_hu=100.0)["label"] >= 1
    assert np.median(trained[liver_crop]) == pytest.approx((100 + 150) / (250 + 150), abs=0.02), "liver at 100 HU"
    unshifted = crop_case(brighter, label, (-150, 250), 32, 5.0, 0.0)["image"]
    assert not np.allclose(unshifted, trained, atol=0.05), "without liver_hu the HU are as scanned"


def test_confident_lesions_keep_the_components_whose_peak_reaches_the_threshold():
    """Lesions are 26-connected in 3D, as they are scored: a lesion over two slices whose peak lies in one is kept
    whole; a faint speck (peak 0.9) goes; a diagonal neighbour belongs to its lesion."""
    tumour = np.zeros((6, 6, 3), dtype=bool)
    probability = np.full(tumour.shape, 0.2, dtype=np.float32)
    tumour[1:3, 1:3, 0:2] = True  # a lesion over slices 0 and 1, its peak in slice 1
    probability[1:3, 1:3, 0:2] = 0.7
    probability[2, 2, 1] = 0.9995
    tumour[3, 3, 2] = True  # touches the first only by a corner: the same lesion
    tumour[5, 0, 0] = True  # a speck
    probability[5, 0, 0] = 0.9
    kept = confident_lesions(tumour, probability, 0.999)
    expected = tumour.copy()
    expected[5, 0, 0] = False
    assert np.array_equal(kept, expected)
    assert np.array_equal(confident_lesions(tumour, probability, 0.5), tumour), "every lesion reaches 0.5"
    assert not confident_lesions(tumour, probability, 0.99999).any()
    assert not confident_lesions(np.zeros_like(tumour), probability, 0.5).any()


def test_tumour_stage_drops_the_lesions_below_its_lowest_peak(phantom_files, monkeypatch):
    """The tumour stage's probabilities at the box's size decide which of its lesions stay (the class maps and the
    probabilities come from the same pass), inside the liver."""
    label = phantom_files / "segmentation-1.nii.gz"
    liver = nifti.to_canonical(nib.load(label), dtype=np.uint8) >= 1
    recipe = Recipe.from_spec({"kind": "unet", "crop": {"size": 32, "margin_mm": 5.0}})

    def segment(models, recipe, crops, size, device, flip_tta, innermost, slice_mm):
        classes = np.zeros((len(crops), *size), dtype=np.uint8)
        middle = len(crops) // 2
        classes[middle, size[0] // 2 - 2 : size[0] // 2 + 2, size[1] // 2 - 2 : size[1] // 2 + 2] = 1  # confident
        classes[middle, size[0] // 2 + 6, size[1] // 2] = 1  # a speck
        if innermost is not None:
            innermost[:] = np.where(classes == 1, 0.6, 0.1)
            innermost[middle, size[0] // 2, size[1] // 2] = 0.9999
        return classes

    monkeypatch.setattr("liverseg.inference.predict.segment_slices", segment)
    scan = nib.load(phantom_files / "volume-1.nii.gz")
    every = tumour_stage([None], recipe, scan, liver, (-150, 250), "cpu")
    confident = tumour_stage([None], recipe, scan, liver, (-150, 250), "cpu", min_lesion_peak=0.999)
    assert every.sum() == 17 and confident.sum() == 16, "the speck goes, the confident lesion stays whole"
    assert not (confident & ~every).any() and not (every & ~liver).any()


class _Recorder(torch.nn.Module):
    """A stand-in tumour stage that keeps each input stack's first pixel and marks nothing."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(x[:, :, 0, 0].clone())
        return torch.full((len(x), 1, *x.shape[2:]), -10.0)


@pytest.mark.parametrize(
    ("neighbour_mm", "slice_mm", "step"), [(None, 1.0, 1), (3.0, 1.0, 3), (3.0, 1.25, 2), (3.0, 5.0, 1)]
)
def test_a_2p5d_model_sees_its_neighbours_as_far_apart_as_its_entry_asks(neighbour_mm, slice_mm, step):
    """A thin-slice scan shows the model neighbours `neighbour_mm` apart (the nearest slice count), a scan of slices
    as thick or thicker its adjacent slices; without `neighbour_mm`, always the adjacent ones."""
    images = np.arange(9, dtype=np.float32)[:, None, None] * np.ones((9, 4, 4), np.float32)
    recipe = Recipe(input_slices=3, neighbour_mm=neighbour_mm, crop={"size": 4, "margin_mm": 0.0})
    model = _Recorder()
    segment_slices([model], recipe, images, (4, 4), torch.device("cpu"), slice_mm=slice_mm)
    stacks = torch.cat(model.seen).numpy()
    middle = np.arange(9)
    assert stacks.tolist() == np.stack([np.clip(middle - step, 0, 8), middle, np.clip(middle + step, 0, 8)], 1).tolist()


def test_the_tumour_stage_gives_the_scans_own_slice_spacing(phantom_files, monkeypatch):
    label = phantom_files / "segmentation-1.nii.gz"
    liver = nifti.to_canonical(nib.load(label), dtype=np.uint8) >= 1
    recipe = Recipe.from_spec(
        {"kind": "unet", "input_slices": 3, "neighbour_mm": 3.0, "crop": {"size": 32, "margin_mm": 5.0}}
    )
    spacings = []
    monkeypatch.setattr(
        "liverseg.inference.predict.segment_slices",
        lambda model, recipe, crops, size, device, flip_tta, innermost, slice_mm: (
            spacings.append(slice_mm) or np.zeros((len(crops), *size))
        ),
    )
    scan = nib.load(phantom_files / "volume-1.nii.gz")
    tumour_stage([None], recipe, scan, liver, (-150, 250), "cpu")
    assert spacings == [pytest.approx(nifti.canonical_spacing(scan)[2])]
