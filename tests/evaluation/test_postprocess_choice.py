import json

import numpy as np
import pytest

from liverseg.evaluation.metrics import label_metrics
from liverseg.evaluation.postprocess_choice import (
    choose_postprocess,
    choose_steps,
    mean_dice,
    read_choice,
    subset_dice,
)
from liverseg.inference.postprocess import PostSettings, postprocessed
from tests.helpers import write_nifti

SPACING = (1.0, 1.0, 3.0)


def _liver_with_a_slot() -> np.ndarray:
    """A square liver with a slot 3 voxels wide cut in from one side: a closing of 3 mm fills it."""
    labels = np.zeros((40, 40, 4), np.uint8)
    labels[5:35, 5:35] = 1
    labels[18:21, 5:20] = 0
    return labels


def _with_a_stray_blob(labels: np.ndarray) -> np.ndarray:
    out = labels.copy()
    out[37:40, 37:40, 0] = 1  # apart from the liver: the largest component drops it
    return out


def test_a_step_that_lowers_dice_is_dropped_and_the_next_is_tried_without_it():
    reference = _liver_with_a_slot()
    prediction = _with_a_stray_blob(reference)
    settings = PostSettings(closing_radius_mm=3.0)
    chosen, effects = choose_steps([subset_dice(prediction, reference, SPACING, settings)], settings)
    assert [e["step"] for e in effects] == ["closing", "largest_component", "tumour_in_liver"]
    assert [e["kept"] for e in effects] == [False, True, True]
    assert effects[0]["dice_after"] < effects[0]["dice_before"]  # the slot filled
    assert effects[1]["dice_before"] == effects[0]["dice_before"]  # tried on the unclosed labels
    assert effects[1]["dice_after"] == 1.0  # the blob dropped: the prediction is the reference
    assert effects[2]["dice_before"] == 1.0  # tried on what the kept step left
    assert effects[2]["dice_after"] == 1.0  # no tumour: nothing changes, and it is kept
    assert chosen == PostSettings(closing_radius_mm=0.0, largest_liver_component=True, tumour_in_liver=True)


def test_steps_switched_off_in_the_config_are_not_tried():
    reference = _liver_with_a_slot()
    settings = PostSettings(closing_radius_mm=0.0, tumour_in_liver=False)
    scores = subset_dice(_with_a_stray_blob(reference), reference, SPACING, settings)
    assert set(scores) == {frozenset(), frozenset({"largest_component"})}
    chosen, effects = choose_steps([scores], settings)
    assert [e["step"] for e in effects] == ["largest_component"] and chosen == settings


def test_the_mean_dice_averages_liver_and_tumour_over_the_cases_where_each_is_defined():
    # liver 1.0 and 0.5; tumour undefined in the first case (both empty), 2/3 in the second
    cases = [{"liver": 1.0, "tumour": float("nan")}, {"liver": 0.5, "tumour": 2 / 3}]
    assert mean_dice(cases) == pytest.approx((0.75 + 2 / 3) / 2)
    assert np.isnan(mean_dice([{"liver": float("nan"), "tumour": float("nan")}]))


def test_every_subset_of_the_steps_is_scored_in_their_order():
    reference = _liver_with_a_slot()
    reference[10:14, 10:14] = 2
    prediction = _with_a_stray_blob(reference)
    prediction[10:12, 10:14] = 1  # half the tumour missed
    settings = PostSettings(closing_radius_mm=3.0)
    scores = subset_dice(prediction, reference, SPACING, settings)
    assert len(scores) == 8
    assert scores[frozenset()]["tumour"] == pytest.approx(2 / 3)
    assert scores[frozenset({"largest_component"})]["liver"] == 1.0 > scores[frozenset()]["liver"]
    closed_then_largest = postprocessed(prediction, SPACING, settings.without("tumour_in_liver"))
    expected = label_metrics(closed_then_largest, reference)["liver"]["dice"]
    assert scores[frozenset({"closing", "largest_component"})]["liver"] == expected


def test_the_choice_file_is_read_back_and_names_what_was_judged(tmp_path):
    affine = np.diag([-1.0, -1.0, 3.0, 1.0])
    reference = _liver_with_a_slot()
    label = write_nifti(tmp_path / "label.nii.gz", reference, affine)
    pred = write_nifti(tmp_path / "pred.nii.gz", _with_a_stray_blob(reference), affine)
    settings = PostSettings(closing_radius_mm=3.0)
    choose_postprocess([label], [pred], settings, tmp_path / "choice.json")
    choice = json.loads((tmp_path / "choice.json").read_text())
    assert choice["judged_on"] == [str(pred)]
    assert read_choice(tmp_path / "choice.json") == settings.without("closing")

    choose_postprocess([], [], settings, tmp_path / "unjudged.json")  # postprocess.choose off: every step kept
    unjudged = json.loads((tmp_path / "unjudged.json").read_text())
    assert read_choice(tmp_path / "unjudged.json") == settings and unjudged["judged_on"] == []
    assert [e["kept"] for e in unjudged["steps"]] == [True, True, True]


def test_a_prediction_off_its_references_grid_is_named(tmp_path):
    reference = _liver_with_a_slot()
    label = write_nifti(tmp_path / "label.nii.gz", reference, np.diag([-1.0, -1.0, 3.0, 1.0]))
    pred = write_nifti(tmp_path / "pred.nii.gz", reference, np.diag([-1.0, -1.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match="pred.nii.gz"):
        choose_postprocess([label], [pred], PostSettings(), tmp_path / "choice.json")
    assert not (tmp_path / "choice.json").exists()


def test_settings_name_their_steps_and_switch_one_off():
    settings = PostSettings(closing_radius_mm=4.0, closing_3d=True)
    assert settings.steps() == ["closing", "largest_component", "tumour_in_liver"]
    assert settings.without("closing").steps() == ["largest_component", "tumour_in_liver"]
    assert PostSettings(0.0, largest_liver_component=False).steps() == ["tumour_in_liver"]
    assert PostSettings.from_config({"closing_radius_mm": 4.0, "choose": True}) == PostSettings(closing_radius_mm=4.0)
