"""Lesion matching on hand-made components, with the LiTS rule: detected when IoU > 0.5."""

import numpy as np
import pytest

from liverseg.evaluation.lesions import detection_scores, match_lesions
from liverseg.measurements import equivalent_diameter_mm

SPACING = (1.0, 1.0, 1.0)


def _volume():
    return np.zeros((30, 30, 10), dtype=bool)


def test_exact_and_missed_lesions():
    ref, pred = _volume(), _volume()
    ref[2:8, 2:8, 2:6] = True  # found
    ref[20:24, 20:24, 2:4] = True  # missed
    pred[2:8, 2:8, 2:6] = True
    pred[12:14, 2:4, 2:4] = True  # a false positive
    result = match_lesions(pred, ref, SPACING)
    assert (result["ref_lesions"], result["pred_lesions"]) == (2, 2)
    assert (result["true_positives"], result["false_positives"]) == (1, 1)
    assert [lesion["detected"] for lesion in result["reference"]] == [True, False]
    assert (result["lesion_recall"], result["lesion_precision"], result["lesion_f1"]) == (0.5, 0.5, 0.5), "per case"


def test_split_lesion_is_not_detected():
    ref, pred = _volume(), _volume()
    ref[2:12, 2:8, 2:6] = True
    pred[2:7, 2:8, 2:6] = True  # each half has IoU 0.5 at best: not more than half
    pred[8:12, 2:8, 2:6] = True
    result = match_lesions(pred, ref, SPACING)
    assert result["true_positives"] == 0 and result["false_positives"] == 2


def test_two_lesions_merged_into_one_prediction_are_both_missed():
    ref, pred = _volume(), _volume()
    ref[2:8, 2:8, 2:6] = True
    ref[10:16, 2:8, 2:6] = True
    pred[2:16, 2:8, 2:6] = True  # one blob over both: IoU 144/336 with each
    result = match_lesions(pred, ref, SPACING)
    assert result["ref_lesions"] == 2 and result["pred_lesions"] == 1
    assert result["true_positives"] == 0 and result["false_positives"] == 1


def test_slightly_larger_prediction_still_counts():
    ref, pred = _volume(), _volume()
    ref[2:8, 2:8, 2:6] = True  # 144 voxels
    pred[2:9, 2:9, 2:6] = True  # 196 voxels: IoU 144/196 = 0.73
    assert match_lesions(pred, ref, SPACING)["true_positives"] == 1


def test_lesion_touching_the_volume_edge_and_diagonal_connectivity():
    ref, pred = _volume(), _volume()
    ref[0:4, 0:4, 0:3] = True  # on three faces of the volume
    ref[4, 4, 3] = True  # joined to it through a corner only (26-connectivity)
    pred[0:4, 0:4, 0:3] = True
    result = match_lesions(pred, ref, SPACING)
    assert result["ref_lesions"] == 1 and result["true_positives"] == 1


def test_empty_reference_and_empty_prediction():
    lesion = _volume()
    lesion[2:5, 2:5, 2:5] = True
    only_pred = match_lesions(lesion, _volume(), SPACING)
    assert (only_pred["ref_lesions"], only_pred["false_positives"]) == (0, 1)
    only_ref = match_lesions(_volume(), lesion, SPACING)
    assert (only_ref["ref_lesions"], only_ref["true_positives"], only_ref["pred_lesions"]) == (1, 0, 0)
    nothing = match_lesions(_volume(), _volume(), SPACING)
    assert nothing["ref_lesions"] == 0 and nothing["reference"] == []
    scores = detection_scores([only_pred, only_ref, nothing])
    assert scores["lesion_recall"] == 0.0 and scores["lesion_precision"] == 0.0 and scores["lesion_f1"] == 0.0
    assert np.isnan(detection_scores([nothing])["lesion_recall"])


def test_sizes_in_mm_and_global_scores():
    assert equivalent_diameter_mm(np.array([1000.0]), (1.0, 1.0, 1.0))[0] == pytest.approx(12.407, abs=1e-3)
    ref, pred = np.zeros((40, 40, 20), bool), np.zeros((40, 40, 20), bool)
    ref[1:3, 1:3, 1:3] = True  # 8 voxels of 2x2x4 mm: 128 mm3, about 6.3 mm
    ref[10:20, 10:20, 5:10] = True  # 500 voxels: 8000 mm3, about 24.8 mm
    ref[25:31, 25:31, 12:15] = True  # 108 voxels: 1728 mm3, about 14.9 mm
    pred[10:20, 10:20, 5:10] = True
    case = match_lesions(pred, ref, (2.0, 2.0, 4.0))
    assert [lesion["size"] for lesion in case["reference"]] == ["lt10mm", "gt20mm", "10to20mm"]
    scores = detection_scores([case])
    assert scores["lesion_recall"] == pytest.approx(1 / 3) and scores["lesion_precision"] == 1.0
    assert scores["lesion_f1"] == pytest.approx(2 * 1 / (1 + 3))
    assert scores["lesion_recall_ge10mm"] == 0.5 and scores["lesion_recall_gt20mm"] == 1.0
    assert scores["lesion_recall_lt10mm"] == 0.0 and scores["ref_lesions_10to20mm"] == 1
