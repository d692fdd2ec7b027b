"""Phantoms of another design, and the check that scores trained models on them."""

import numpy as np
import pandas as pd
import pytest
import torch

from liverseg.data.synthetic import DEFAULT_STYLE, SHIFTED, make_case
from liverseg.models import build_model
from liverseg.report import ablation_markdown
from liverseg.shifted import check_shifted


def test_shifted_phantoms_differ_where_a_model_could_learn_by_heart():
    default, shifted = make_case(3), make_case(3, SHIFTED)
    liver = lambda case: np.median(case.image[case.label == 1])  # noqa: E731
    assert DEFAULT_STYLE.liver_hu[0] - 10 <= liver(default) <= DEFAULT_STYLE.liver_hu[1] + 10
    assert SHIFTED.liver_hu[0] - 10 <= liver(shifted) <= SHIFTED.liver_hu[1] + 10
    assert liver(shifted) < liver(default)
    assert not np.array_equal(default.label >= 1, shifted.label >= 1), "other organ outlines"


def test_check_scores_every_entry_on_new_cases(tmp_path):
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
    for name, spec in config["models"].items():
        (tmp_path / "models" / name).mkdir(parents=True)
        torch.save(
            {"spec": spec, "image_size": 32, "state_dict": build_model(spec).state_dict()},
            tmp_path / "models" / name / "best.pt",
        )
        (tmp_path / "models" / name / "history.csv").write_text("epoch,val_dice,epoch_seconds,val_seconds\n1,0.5,2,1\n")
    summary = check_shifted(config, tmp_path / "models", cases=2, seed=5, out_dir=tmp_path / "shifted").set_index(
        "model"
    )
    assert list(summary.index) == ["unet", "cascade"]
    assert (summary["scored_cases"] == 2).all()
    for entry in ("unet", "cascade"):
        assert len(list((tmp_path / "shifted" / entry / "metrics").glob("case_*.json"))) == 2
    assert summary.loc["cascade", "liver_dice"] == pytest.approx(summary.loc["unet", "liver_dice"])


def test_ablation_table_shows_each_change():
    summary = pd.DataFrame(
        [
            {
                "model": "a",
                "tumour_dice_cases_with_tumour": 0.1,
                "lesion_recall_ge10mm": 0.0,
                "lesion_recall": 0.0,
                "lesion_precision": float("nan"),
                "liver_dice": 0.97,
                "training_minutes": 2.0,
            },
            {
                "model": "b",
                "tumour_dice_cases_with_tumour": 0.45,
                "lesion_recall_ge10mm": 0.5,
                "lesion_recall": 0.25,
                "lesion_precision": 0.5,
                "liver_dice": 0.96,
                "training_minutes": 4.0,
            },
        ]
    )
    table = ablation_markdown(summary, "snakemake ...", "2 CPU cores", "2026-11-25")
    assert "| a | 0.100 | 0.000 | 0.000 | - | 0.970 | 2.0 |  |  |" in table
    assert "| b | 0.450 | 0.500 | 0.250 | 0.500 | 0.960 | 4.0 | +0.350 | +0.500 |" in table
    assert "2026-11-25, 2 CPU cores" in table
