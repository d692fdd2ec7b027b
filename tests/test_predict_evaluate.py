import json

import nibabel as nib
import numpy as np
import pytest
import torch

from liverseg.data import nifti
from liverseg.data.slices import save_slices, slice_case
from liverseg.evaluate import evaluate_case
from liverseg.models import build_model
from liverseg.predict import predict_case, probabilities_to_labels
from liverseg.report import markdown_table, read_case_scores, summarise


def test_tumour_only_inside_liver():
    p = torch.tensor([[[[0.9, 0.9, 0.2]], [[0.8, 0.1, 0.9]]]])  # (1, 2, 1, 3): liver, tumour
    assert probabilities_to_labels(p).tolist() == [[[2, 1, 0]]]


def test_prediction_has_the_input_geometry(phantom_files, tmp_path):
    spec = {"kind": "unet", "base_channels": 2, "depth": 2}
    torch.manual_seed(0)
    state = {"spec": spec, "targets": ["liver", "tumour"], "state_dict": build_model(spec, 2).state_dict()}
    torch.save(state, tmp_path / "best.pt")
    for n in range(3):  # the phantom cases come in several storage orientations
        volume = phantom_files / f"volume-{n}.nii.gz"
        save_slices(slice_case(volume, phantom_files / f"segmentation-{n}.nii.gz", (-150, 250), 32), tmp_path / "s.npz")
        predict_case(tmp_path / "best.pt", tmp_path / "s.npz", volume, tmp_path / f"pred-{n}.nii.gz", device="cpu")
        ref, out = nib.load(volume), nib.load(tmp_path / f"pred-{n}.nii.gz")
        assert out.shape == ref.shape and np.allclose(out.affine, ref.affine)
        assert nifti.orientation_codes(out) == nifti.orientation_codes(ref)
        assert set(np.unique(np.asarray(out.dataobj))) <= {0, 1, 2}


def test_slices_of_another_case_are_refused(phantom_files, tmp_path):
    spec = {"kind": "unet", "base_channels": 2, "depth": 2}
    torch.save({"spec": spec, "targets": ["liver", "tumour"], "state_dict": build_model(spec, 2).state_dict()}, tmp_path / "m.pt")
    save_slices(slice_case(phantom_files / "volume-0.nii.gz", phantom_files / "segmentation-0.nii.gz", (-150, 250), 32), tmp_path / "s.npz")
    other = tmp_path / "volume-9.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((40, 30, 5), np.int16), np.eye(4)), other)
    with pytest.raises(nifti.VolumeError, match="do not belong to"):
        predict_case(tmp_path / "m.pt", tmp_path / "s.npz", other, tmp_path / "p.nii.gz", device="cpu")
    assert not (tmp_path / "p.nii.gz").exists()


def _scores(tmp_path, model, case, ref, pred, post):
    affine = np.diag([-0.7, -0.7, 3.0, 1.0])
    paths = {}
    for name, data in (("ref", ref), ("pred", pred), ("post", post)):
        paths[name] = tmp_path / f"{model}-{case}-{name}.nii.gz"
        nib.save(nib.Nifti1Image(np.asarray(data, np.uint8), affine), paths[name])
    out = tmp_path / f"{model}-{case}.json"
    evaluate_case(model, case, paths["ref"], {"pred": paths["pred"], "post": paths["post"]}, out)
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
    history.write_text("epoch,val_dice,epoch_seconds\n1,0.5,10\n2,0.7,14\n3,0.6,12\n")
    summary = summarise(read_case_scores([a, b]), {"m": history})
    row = summary.iloc[0]
    assert row["liver_dice"] == 1.0 and row["liver_dice_before_post"] == pytest.approx((8 / 9 + 1) / 2)
    assert row["tumour_dice"] == 0.0 and row["tumour_cases"] == 1
    assert row["seconds_per_epoch"] == 12 and row["best_epoch"] == 2 and row["val_cases"] == 2
    table = markdown_table(summary)
    assert "| Liver Dice (per case) | 1.0000 |" in table and "| Best epoch / epochs | 2 / 3 |" in table
    assert "| Validation cases (with tumour scored) | 2 (1) |" in table


def test_geometry_mismatch_is_named(tmp_path):
    ref = tmp_path / "ref.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 2), np.uint8), np.eye(4)), ref)
    moved = tmp_path / "moved.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 2), np.uint8), np.diag([1, 1, 2, 1.0])), moved)
    with pytest.raises(nifti.VolumeError, match="moved.nii.gz: geometry"):
        evaluate_case("m", "c", ref, {"pred": moved}, tmp_path / "out.json")
    assert not (tmp_path / "out.json").exists()
