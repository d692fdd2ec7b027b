import math

import numpy as np
import pytest

from liverseg.evaluation.metrics import label_metrics, overlap_metrics


def test_hand_computed_overlap():
    pred = np.zeros((4, 5), bool)
    ref = np.zeros((4, 5), bool)
    pred[0, :4] = True  # 4 voxels
    ref[0, 2:] = True  # 3 voxels, 2 shared
    m = overlap_metrics(pred, ref)
    assert m["dice"] == pytest.approx(2 * 2 / 7)
    assert m["jaccard"] == pytest.approx(2 / 5)
    assert m["accuracy"] == pytest.approx(1 - 3 / 20)  # 2 FP + 1 FN of 20 voxels


def test_empty_masks_rule():
    empty = np.zeros((3, 3), bool)
    both = overlap_metrics(empty, empty)
    assert math.isnan(both["dice"]) and math.isnan(both["jaccard"]) and both["accuracy"] == 1.0
    one = np.zeros((3, 3), bool)
    one[1, 1] = True
    assert overlap_metrics(empty, one)["dice"] == 0.0
    assert overlap_metrics(one, empty)["dice"] == 0.0


def test_liver_includes_tumour():
    ref = np.array([[0, 1, 1, 2]])
    pred = np.array([[0, 1, 2, 0]])
    m = label_metrics(pred, ref)
    assert m["liver"]["dice"] == pytest.approx(2 * 2 / (2 + 3))  # liver = label >= 1
    assert m["tumour"]["dice"] == 0.0
    with pytest.raises(ValueError, match="shape"):
        label_metrics(pred, ref[:, :3])
