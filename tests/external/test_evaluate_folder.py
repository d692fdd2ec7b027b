"""`liverseg evaluate` on labelled folders of the three layouts: the workflow's own scores, bad cases named and left
out, the others scored."""

import json
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from tests.helpers import tool_environment

pytestmark = pytest.mark.workflow
ENTRIES = ["unet", "unet_cascade"]


def evaluate(data, out, *models, extra=()):
    command = [sys.executable, "-m", "liverseg", "evaluate", str(data), "--model", *map(str, models)]
    command += ["--out", str(out), "--threads", "2", *extra]
    return subprocess.run(command, capture_output=True, text=True, env=tool_environment(), timeout=900)


def test_a_lits_folder_gets_the_workflows_own_scores(segment_experiment, tmp_path):
    """The experiment's own raw folder: every case scored; its validation case exactly as the workflow scored it."""
    models = [segment_experiment / "models" / entry for entry in ENTRIES]
    result = evaluate(segment_experiment.parents[1] / "raw", tmp_path, *models)
    assert result.returncode == 0, result.stderr[-3000:]
    cases = pd.read_csv(segment_experiment / "data" / "cases.tsv", sep="\t")["case"].tolist()
    val = json.loads((segment_experiment / "data" / "split.json").read_text())["val"]
    for entry in ENTRIES:
        for case in val:
            ours = json.loads((tmp_path / entry / "metrics" / f"{case}.json").read_text())
            workflow = json.loads((segment_experiment / "results" / entry / "metrics" / f"{case}.json").read_text())
            assert ours == workflow
        assert sorted(p.name for p in (tmp_path / entry / "post").iterdir()) == [f"{c}.nii.gz" for c in cases]
    summary = pd.read_csv(tmp_path / "summary.csv").set_index("model")
    assert list(summary.index) == ENTRIES and (summary["scored_cases"] == len(cases)).all()
    assert summary.loc["unet", "epochs"].endswith("/8"), "the training history beside the model's weights"
    assert "labelled cases of a folder" in (tmp_path / "summary.md").read_text()
    assert pd.read_csv(tmp_path / "rejected.tsv", sep="\t").empty


@pytest.mark.parametrize("layout", ["msd", "pairs"])
def test_other_layouts_and_bad_cases_are_named_and_left_out(segment_experiment, tmp_path, layout):
    raw = segment_experiment.parents[1] / "raw"
    images, labels = ("imagesTr", "labelsTr") if layout == "msd" else ("images", "labels")
    data = tmp_path / "data" / ("Task03_Liver" if layout == "msd" else "")
    (data / images).mkdir(parents=True)
    (data / labels).mkdir()
    suffix = "" if layout == "msd" else "_0000"  # nnU-Net's channel suffix on the image only
    for n in (0, 1):
        shutil.copy(raw / f"volume-{n}.nii.gz", data / images / f"liver_{n}{suffix}.nii.gz")
        shutil.copy(raw / f"segmentation-{n}.nii.gz", data / labels / f"liver_{n}.nii.gz")
    bad = nib.load(raw / "segmentation-2.nii.gz")
    wrong = np.asanyarray(bad.dataobj).copy()
    wrong[0, 0, 0] = 7
    nib.save(nib.Nifti1Image(wrong, bad.affine, bad.header), data / labels / "liver_2.nii.gz")
    shutil.copy(raw / "volume-2.nii.gz", data / images / f"liver_2{suffix}.nii.gz")
    shutil.copy(raw / "volume-3.nii.gz", data / images / f"liver_3{suffix}.nii.gz")  # no label

    out = tmp_path / "out"
    result = evaluate(tmp_path / "data", out, segment_experiment / "models" / "unet_cascade")
    assert result.returncode != 0
    assert "unexpected label values [7]" in result.stderr and "liver_2.nii.gz" in result.stderr
    rejected = pd.read_csv(out / "rejected.tsv", sep="\t")
    assert len(rejected) == 2 and rejected["reason"].str.contains("label").all()
    scored = sorted(p.name for p in (out / "unet_cascade" / "metrics").iterdir())
    names = [f"case_00{n}" if layout == "msd" else f"liver_{n}" for n in range(4)]
    assert scored == [f"{name}.json" for name in names[:2]], "the good cases scored"
    predicted = sorted(p.name for p in (out / "unet_cascade" / "pred").iterdir())
    assert predicted == [f"{name}.nii.gz" for name in names[:2]], "nothing of the bad ones written"
    assert pd.read_csv(out / "summary.csv")["scored_cases"].tolist() == [2]


def test_a_folder_of_no_known_layout_is_named(segment_experiment, tmp_path):
    (tmp_path / "scans").mkdir()
    result = evaluate(tmp_path / "scans", tmp_path / "out", segment_experiment / "models" / "unet")
    assert result.returncode != 0 and f"{tmp_path / 'scans'}: neither the LiTS layout" in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_lowest_lesion_peak_without_a_cascade_is_refused(segment_experiment, tmp_path):
    raw = segment_experiment.parents[1] / "raw"
    result = evaluate(raw, tmp_path / "out", segment_experiment / "models" / "unet", extra=["--min-lesion-peak", "0.5"])
    assert result.returncode == 1 and "a lowest lesion peak is for a cascade's tumour stage" in result.stderr
    assert not (tmp_path / "out").exists()
