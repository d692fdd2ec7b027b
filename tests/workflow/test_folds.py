"""Cross-validation by patient through the real workflow (tests/configs/folds.yaml: two folds, one epoch): each fold
trains on the other fold's patients and validates on its own, a validation case is segmented by its own fold's model,
a test case by the mean of both folds', and `liverseg segment` applies the ensemble folder as the workflow does."""

import dataclasses
import json
import subprocess

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from liverseg.data import nifti
from liverseg.evaluation.postprocess_choice import choose_steps, subset_dice
from liverseg.inference.postprocess import PostSettings, postprocessed
from liverseg.inference.predict import predict_case
from tests.helpers import CONFIGS, snakemake, tool_environment

pytestmark = pytest.mark.workflow
FOLDS = CONFIGS / "folds.yaml"
POSTPROCESS = PostSettings(closing_radius_mm=3.0)  # the config's, tried step by step (postprocess.choose)
MODELS = ["unet", "tumour_unet"]


@pytest.fixture(scope="module")
def folds_run(tmp_path_factory):
    env = tool_environment()
    root = tmp_path_factory.mktemp("folds")
    result = snakemake(root, "--cores", "2", "--resources", "gpu=1", "--configfile", str(FOLDS), env=env)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    workdir = root / "experiments" / "folds"
    return workdir, json.loads((workdir / "data/split.json").read_text())


def test_each_fold_trains_on_the_other_patients_and_validates_on_its_own(folds_run):
    workdir, split = folds_run
    assert len(split["folds"]) == 2 and split["test"], "the test patient is held out before the folds are dealt"
    kept = sorted(case for fold in split["folds"] for case in fold)
    assert kept == split["val"] and not set(kept) & set(split["test"])
    client = MlflowClient(f"sqlite:///{workdir}/mlflow.db")
    for model in MODELS:
        assert not (workdir / f"models/{model}/best.pt").exists(), "with folds, only the folds are trained"
        for k, own in enumerate(split["folds"]):
            run_file = json.loads((workdir / f"models/{model}/fold_{k}/run.json").read_text())
            run = client.get_run(run_file["run_id"])
            assert run.info.run_name == f"{model}-fold{k}" and run.info.status == "FINISHED"
            files = {
                d.tags[0].value: sorted(name.removesuffix(".npz") for name in json.loads(d.dataset.source)["files"])
                for d in run.inputs.dataset_inputs
            }
            assert files["validation"] == own
            assert files["training"] == sorted(set(kept) - set(own))
            assert client.get_model_version_by_alias(f"{model}-fold{k}", "champion").run_id == run.info.run_id


def test_validation_cases_are_segmented_by_their_fold_and_test_cases_by_the_ensemble(folds_run):
    workdir, split = folds_run
    cases = pd.read_csv(workdir / "data/cases.tsv", sep="\t").set_index("case")
    folds = [workdir / f"models/unet/fold_{k}/best.pt" for k in range(2)]
    owners = {case: [folds[k]] for k, own in enumerate(split["folds"]) for case in own}
    for case in split["val"] + split["test"]:
        out = workdir.parent / "check" / f"{case}.nii.gz"
        volume = workdir / cases.loc[case, "volume"]  # relative to the experiment
        predict_case(owners.get(case, folds), workdir / f"data/slices/{case}.npz", volume, out)
        ours, workflow = nib.load(out), nib.load(workdir / f"results/unet/pred/{case}.nii.gz")
        assert np.array_equal(np.asanyarray(ours.dataobj), np.asanyarray(workflow.dataobj)), case
    own_fold = {case: f"models/tumour_unet/fold_{k}/best.pt" for k, own in enumerate(split["folds"]) for case in own}
    lesion_peak = json.loads((workdir / "models/tumour_unet/lesion_peak.json").read_text())
    assert lesion_peak["weights"] == [own_fold[case] for case in split["val"]], "the lesion cut, out of fold too"


def test_segment_applies_the_ensemble_folder_and_its_registered_segmenter_as_the_workflow(folds_run, tmp_path):
    workdir, split = folds_run
    case = split["test"][0]
    volume = workdir / pd.read_csv(workdir / "data/cases.tsv", sep="\t").set_index("case").loc[case, "volume"]
    description = json.loads((workdir / "models/unet_cascade/segmenter.json").read_text())
    assert description["stages"]["tumour"] == [f"../tumour_unet/fold_{k}/best.pt" for k in range(2)]
    store = f"sqlite:///{workdir}/mlflow.db"
    for name, model in (
        ("folder", [workdir / "models/unet_cascade"]),
        ("registry", ["models:/unet_cascade-segmenter@champion", "--tracking-uri", store]),
    ):
        command = ["liverseg", "segment", *map(str, model), str(volume), "--out", str(tmp_path / name)]
        result = subprocess.run(command, env=tool_environment(), capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        ours = nib.load(next((tmp_path / name).glob("*.nii.gz")))
        workflow = nib.load(workdir / f"results/unet_cascade/post/{case}.nii.gz")
        assert np.array_equal(np.asanyarray(ours.dataobj), np.asanyarray(workflow.dataobj)), name


def test_the_summary_gives_the_cross_validated_means_and_judges_post_processing_on_the_folds(folds_run):
    workdir, split = folds_run
    summary = pd.read_csv(workdir / "results/summary.csv").set_index("model")
    scores = pd.read_csv(workdir / "results/cases.csv")
    assert set(scores["case"]) == set(split["test"]), "the table scores the ensemble on the test cases"
    for entry in ("unet", "unet_cascade"):
        per_fold = []
        for own in split["folds"]:
            fold_scores = [json.loads((workdir / f"results/{entry}/metrics/{c}.json").read_text()) for c in own]
            per_fold.append(np.mean([s["post"]["liver"]["dice"] for s in fold_scores]))
        assert summary.loc[entry, "cv_liver_dice"] == pytest.approx(np.mean(per_fold), abs=1e-5)
        assert summary.loc[entry, "epochs"].count("/") == 2 * (1 + (entry == "unet_cascade")), "every fold's epochs"
    text = (workdir / "results/summary.md").read_text()
    assert "## Cross-validation: 2 folds by patient" in text and "Fold 1 (cases)" in text
    steps = text.split("## Post-processing, step by step")[1]
    assert "unet_cascade | tumour | closing" in steps


def test_each_entry_keeps_the_post_processing_steps_that_did_not_lower_its_out_of_fold_dice(folds_run):
    workdir, split = folds_run
    cases = pd.read_csv(workdir / "data/cases.tsv", sep="\t").set_index("case")

    def canonical(path):
        image = nib.load(path)
        return nifti.to_canonical(image, dtype=np.uint8), nifti.canonical_spacing(image)

    chosen = {}
    for entry in ("unet", "unet_cascade"):
        choice = json.loads((workdir / f"results/{entry}/postprocess.json").read_text())
        assert choice["judged_on"] == [f"results/{entry}/pred/{case}.nii.gz" for case in split["val"]]
        scores = []
        for path, case in zip(choice["judged_on"], split["val"]):
            prediction, spacing = canonical(workdir / path)
            reference, _ = canonical(workdir / cases.loc[case, "label"])
            scores.append(subset_dice(prediction, reference, spacing, POSTPROCESS))
        chosen[entry], _ = choose_steps(scores, POSTPROCESS)
        assert choice["settings"] == dataclasses.asdict(chosen[entry])
        for case in split["val"] + split["test"]:
            prediction, spacing = canonical(workdir / f"results/{entry}/pred/{case}.nii.gz")
            post, _ = canonical(workdir / f"results/{entry}/post/{case}.nii.gz")
            assert np.array_equal(post, postprocessed(prediction, spacing, chosen[entry])), (entry, case)
    description = json.loads((workdir / "models/unet_cascade/segmenter.json").read_text())
    assert description["postprocess"] == dataclasses.asdict(chosen["unet_cascade"])
    assert description["liver_postprocess"] == dataclasses.asdict(chosen["unet"]), "stage 1's own, before the tumours"
    steps = (workdir / "results/summary.md").read_text().split("## Post-processing, step by step")[1]
    assert "| Verdict | Kept |" in steps


def test_a_step_dropped_by_the_choice_leaves_the_entrys_files_and_its_cascades_liver(folds_run):
    """The one-epoch folds predict too little for a step to change anything, so a choice that drops one is written
    here, as `choose_postprocess` would write it: the jobs after it run again and apply it (this test runs last)."""
    workdir, _ = folds_run
    path = workdir / "results/unet/postprocess.json"
    choice = json.loads(path.read_text())
    choice["settings"]["largest_liver_component"] = False
    choice["steps"] = [{**step, "kept": step["step"] != "largest_component"} for step in choice["steps"]]
    path.write_text(json.dumps(choice))
    result = snakemake(
        workdir.parent.parent,
        "--cores",
        "2",
        "--resources",
        "gpu=1",
        "--configfile",
        str(FOLDS),
        env=tool_environment(),
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    assert json.loads(path.read_text()) == choice, "the choice is not made again: its inputs did not change"
    unet = json.loads((workdir / "models/unet/segmenter.json").read_text())
    cascade = json.loads((workdir / "models/unet_cascade/segmenter.json").read_text())
    assert unet["postprocess"]["largest_liver_component"] is False
    assert cascade["liver_postprocess"] == unet["postprocess"] and cascade["postprocess"]["largest_liver_component"]
    steps = (workdir / "results/summary.md").read_text().split("## Post-processing, step by step")[1].split("##")[0]
    assert [line.rstrip(" |").endswith("| no") for line in steps.splitlines() if line.startswith("| unet | ")] == [
        False,
        True,
        False,
    ] * 2
