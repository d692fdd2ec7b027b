"""Phantoms of another design, and the check that scores trained models on them."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from liverseg.data.randomised import RandomisedRanges, randomised_styles
from liverseg.data.synthetic import DEFAULT_STYLE, SHIFTED, make_case
from liverseg.external.designs import check_shifted
from liverseg.inference.postprocess import PostSettings
from liverseg.inference.segmenter import SEGMENTER_FILE, write_segmenter
from liverseg.reporting.tables import ablation_baselines, ablation_markdown
from tests.helpers import ROOT, write_checkpoint


def test_shifted_phantoms_differ_where_a_model_could_learn_by_heart():
    default, shifted = make_case(3), make_case(3, SHIFTED)
    liver = lambda case: np.median(case.image[case.label == 1])  # noqa: E731
    assert DEFAULT_STYLE.liver_hu[0] - 10 <= liver(default) <= DEFAULT_STYLE.liver_hu[1] + 10
    assert SHIFTED.liver_hu[0] - 10 <= liver(shifted) <= SHIFTED.liver_hu[1] + 10
    assert liver(shifted) < liver(default)
    assert not np.array_equal(default.label >= 1, shifted.label >= 1), "other organ outlines"


def _trained(tmp_path, min_lesion_peak=None) -> dict:
    """A config of a stage-1 model and a cascade, with untrained models and their segmenters (as the workflow's
    `segmenter` rule writes them) under tmp_path/models."""
    config = {
        "preprocess": {"window": [-150, 250], "image_size": 32},
        "postprocess": {"closing_radius_mm": 3.0},
        "models": {
            "unet": {"kind": "unet", "base_channels": 2, "depth": 2},
            "stage": {
                "kind": "unet",
                "base_channels": 2,
                "depth": 2,
                "input_slices": 3,
                "crop": {"size": 32, "margin_mm": 5.0},
            },
        },
        "cascades": {"cascade": {"liver": "unet", "tumour": "stage"}},
    }
    torch.manual_seed(0)
    models = tmp_path / "models"
    for name, spec in config["models"].items():
        (models / name).mkdir(parents=True)
        write_checkpoint(models / name / "best.pt", spec)
        (models / name / "history.csv").write_text("epoch,val_dice,epoch_seconds,val_seconds\n1,0.5,2,1\n")
    post = PostSettings.from_config(config["postprocess"])
    window = config["preprocess"]["window"]
    liver = {"liver": [models / "unet" / "best.pt"]}
    write_segmenter("unet", models / "unet" / SEGMENTER_FILE, liver, window, post)
    (models / "cascade").mkdir()
    stages = liver | {"tumour": [models / "stage" / "best.pt"]}
    write_segmenter("cascade", models / "cascade" / SEGMENTER_FILE, stages, window, post, None, (), min_lesion_peak)
    return config


def test_check_applies_each_entry_as_its_segmenter_describes_it(tmp_path, monkeypatch):
    """The run's lowest lesion peak (its segmenter's) reaches the cascade's prediction, not the config's."""
    import liverseg.inference.segmenter as segmenter

    config = _trained(tmp_path, min_lesion_peak=0.99)
    config["models"]["stage"]["min_lesion_peak"] = 0.5  # changed after the run: not what its models were judged with
    seen = []
    real = segmenter.tumour_stage
    monkeypatch.setattr(segmenter, "tumour_stage", lambda *args: seen.append(args[-1]) or real(*args))
    check_shifted(config, tmp_path / "models", cases=1, seed=5, out_dir=tmp_path / "shifted")
    assert seen == [0.99]


def test_check_scores_every_entry_on_new_cases(tmp_path):
    config = _trained(tmp_path)
    summary = check_shifted(config, tmp_path / "models", cases=2, seed=5, out_dir=tmp_path / "shifted").set_index(
        "model"
    )
    assert list(summary.index) == ["unet", "cascade"]
    assert (summary["scored_cases"] == 2).all()
    for entry in ("unet", "cascade"):
        assert len(list((tmp_path / "shifted" / entry / "metrics").glob("case_*.json"))) == 2
    assert summary.loc["cascade", "liver_dice"] == pytest.approx(summary.loc["unet", "liver_dice"])


def test_randomised_designs_are_scored_one_a_case(tmp_path):
    config = _trained(tmp_path)
    ranges = {"max_slices": 12, "field_of_view_mm": [250, 300]}
    config["data"] = {"synthetic": {"randomised": {"ranges": ranges}}}
    designs = randomised_styles(2, seed=7, ranges=RandomisedRanges.from_dict(ranges))
    summary = check_shifted(config, tmp_path / "models", 2, 7, tmp_path / "rand", design="randomised")
    assert (summary["scored_cases"] == 2).all()
    written = json.loads((tmp_path / "rand" / "raw" / "randomised.json").read_text())
    assert list(written) == ["volume-1000.nii.gz", "volume-1001.nii.gz"]
    assert [written[f]["liver_hu"] for f in written] == [list(d.liver_hu) for d in designs], "each case its own design"
    assert sorted(p.name for p in (tmp_path / "rand" / "cascade" / "metrics").glob("*.json")) == [
        "case_1000.json",
        "case_1001.json",
    ]


def _ablation_row(model, tumour_dice, recall_ge10, **others):
    return {
        "model": model,
        "tumour_dice_cases_with_tumour": tumour_dice,
        "lesion_recall_ge10mm": recall_ge10,
        "lesion_recall_lt10mm": 0.0,
        "lesion_recall_10to20mm": recall_ge10,
        "lesion_recall_gt20mm": float("nan"),
        "lesion_recall": recall_ge10 / 2,
        "lesion_precision": float("nan"),
        "liver_dice": 0.97,
        "training_minutes": 2.0,
        **others,
    }


def test_ablation_table_shows_each_change_against_the_entry_it_is_compared_with():
    summary = pd.DataFrame(
        [
            _ablation_row("a", 0.1, 0.0),
            _ablation_row("b", 0.45, 0.5, lesion_precision=0.5, training_minutes=4.0),
            _ablation_row("e", 0.6, 1.0),
            _ablation_row("f", 0.5, 0.5),
        ]
    )
    baselines = {"a": None, "b": "a", "e": "b", "f": "e"}
    table = ablation_markdown(summary, baselines, "snakemake ...", "2 CPU cores", "2026-11-25")
    assert "| a | 0.100 | 0.000 | 0.00 / 0.00 / - | 0.000 | - | 0.970 | 2.0 |  |  |  |" in table
    assert "| b | 0.450 | 0.500 | 0.00 / 0.50 / - | 0.250 | 0.500 | 0.970 | 4.0 | a | +0.350 | +0.500 |" in table
    assert "| f | 0.500 | 0.500 | 0.00 / 0.50 / - | 0.250 | - | 0.970 | 2.0 | e | -0.100 | -0.500 |" in table
    assert "2026-11-25, 2 CPU cores" in table


def test_ablation_entries_are_compared_with_the_lever_before_them_or_the_cascade_they_replace():
    config = yaml.safe_load((ROOT / "config/ablation.yaml").read_text())
    assert ablation_baselines(config["models"], config["cascades"]) == {
        "a_study_loss": None,
        "b_sampling": "a_study_loss",
        "c_loss": "b_sampling",
        "d_three_slices": "c_loss",
        "h_mit_stage1": "d_three_slices",
        "e_cascade": "d_three_slices",  # the tumour stage added to its liver
        "f_cascade_3d": "e_cascade",  # another tumour stage in e's place
        "g_cascade_mit": "e_cascade",
        "i_cascade_blob": "e_cascade",
    }


def _liver_median(case):
    return float(np.median(case.image[case.label == 1]))


@pytest.mark.parametrize(
    "design", ["non-contrast", "liver-centred", "ascites-oral-contrast", "lean", "chest-to-pelvis"]
)
def test_each_unseen_design_keeps_the_anatomy_and_draws_what_it_names(design):
    """Against the default design's phantom of the same seed (the same patient: the designs draw the same numbers)."""
    from liverseg.data.synthetic import DESIGNS, LIVER

    case, default = make_case(4, DESIGNS[design]), make_case(4)
    liver = np.argwhere(case.label >= LIVER)
    assert liver[:, 0].mean() > case.image.shape[0] * 0.4, "the liver on the patient's right (canonical R is +x)"
    assert np.argwhere(case.image > 400)[:, 1].mean() < liver[:, 1].mean(), "the spine behind the liver"
    count = lambda image, low, high: int(((image > low) & (image < high) & (case.label == 0)).sum())  # noqa: E731
    if design == "non-contrast":
        assert 30 <= _liver_median(case) <= 70
        assert count(case.image, 130, 220) < 0.2 * count(default.image, 130, 220), "kidneys and aorta unenhanced"
    if design == "liver-centred":
        assert case.spacing[2] <= 1.5 and case.image.shape[2] * case.spacing[2] >= 200
        edges = np.concatenate([case.image[0].ravel(), case.image[-1].ravel()])
        assert (edges > -300).mean() > 0.2, "the field of view cuts the body wall"
    if design == "ascites-oral-contrast":
        assert count(case.image, 220, 350) > 3 * count(default.image, 220, 350), "bowel with oral contrast"
        assert count(case.image, -130, -50) < 0.8 * count(default.image, -130, -50), "fluid in place of visceral fat"
        assert count(case.image, -5, 30) > 1.2 * count(default.image, -5, 30), "fluid (0 to 20 HU)"
    if design == "lean":
        assert count(case.image, -130, -50) < 0.5 * count(default.image, -130, -50), "little fat between the organs"
        assert count(case.image, 20, 70) > 1.5 * count(default.image, 20, 70), "soft tissue in its place"
    if design == "chest-to-pelvis":
        liver_mm = lambda c: np.ptp(np.argwhere(c.label >= LIVER)[:, 2]) * c.spacing[2]  # noqa: E731
        assert case.image.shape[2] > 1.8 * default.image.shape[2], "more slices ..."
        assert abs(liver_mm(case) - liver_mm(default)) <= 2 * case.spacing[2], "... of a liver of the same size"
        top = np.argwhere(case.label >= LIVER)[:, 2].max()
        above = case.image[:, :, top + 3 :]
        lungs = ((above < -700) & (above > -920)).sum()
        assert lungs > 0.3 * (above > -920).sum(), "lungs fill the body above the liver"
        heart = (above > _liver_median(case) - 20) & (above < _liver_median(case) + 10)
        assert heart.sum() > 0.1 * (case.label == LIVER).sum(), "a heart wall of about the liver's HU above it"
        bone = lambda c: (c.image[:, :, :4] > 400).sum()  # noqa: E731 - in the lowest slices
        assert bone(case) > 2 * bone(default), "the pelvis's bones in the lowest slices"


def test_the_command_offers_every_design():
    from liverseg.cli import parser
    from liverseg.data.synthetic import DESIGNS

    shifted = parser()._subparsers._group_actions[0].choices["shifted"]
    (design,) = [action for action in shifted._actions if action.dest == "design"]
    assert set(design.choices) == set(DESIGNS) | {"randomised"}
