import math

import pytest
import torch

from liverseg.models.heads import class_index, region_probabilities
from liverseg.training.losses import CombinedLoss, bce_loss, blob_loss, dice_loss, focal_loss, tversky_loss

BIG = 100.0  # sigmoid(±100) is exactly 1 or 0 in float32


def _logits(mask):
    return torch.where(mask, torch.tensor(BIG), torch.tensor(-BIG))


def _case():
    target = torch.zeros(1, 1, 4, 4)
    target[0, 0, 0, :4] = 1  # 4 positives
    pred = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    pred[0, 0, 0, :2] = True  # 2 true positives, 2 false negatives
    pred[0, 0, 1, :3] = True  # 3 false positives
    return pred, target


def test_hand_computed_value():
    pred, target = _case()
    # 1 - (TP + 1) / (TP + 0.7 FP + 0.3 FN + 1) with TP=2, FP=3, FN=2
    expected = 1 - 3 / (2 + 0.7 * 3 + 0.3 * 2 + 1)
    assert tversky_loss(pred.float(), target, 0.7, 0.3).item() == pytest.approx(expected, abs=1e-6)
    study = CombinedLoss({"tversky": {"weight": 1.0, "alpha": 0.7, "beta": 0.3}})
    assert study(_logits(pred), target).item() == pytest.approx(expected, abs=1e-6)


def test_alpha_weighs_false_positives():
    target = torch.zeros(1, 1, 4, 4)
    target[0, 0, :2] = 1  # 8 positives
    over = target.clone()
    over[0, 0, 2] = 1  # 4 false positives
    under = target.clone()
    under[0, 0, 1] = 0  # 4 false negatives
    loss_fp = tversky_loss(over, target, alpha=0.7, beta=0.3).item()
    loss_fn = tversky_loss(under, target, alpha=0.7, beta=0.3).item()
    assert loss_fp == pytest.approx(1 - 9 / (8 + 0.7 * 4 + 1), abs=1e-6)
    assert loss_fn == pytest.approx(1 - 5 / (4 + 0.3 * 4 + 1), abs=1e-6)
    # with alpha 0.7 on false positives, four false positives cost more than four false negatives
    assert loss_fp > loss_fn
    assert tversky_loss(over, target, alpha=0.3, beta=0.7).item() < loss_fp


def test_channels_are_averaged_and_empty_channel_is_defined():
    pred, target = _case()
    empty_target = torch.zeros_like(target)
    p = torch.cat([pred.float(), torch.zeros_like(target)], dim=1)
    targets = torch.cat([target, empty_target], dim=1)
    first = 1 - 3 / (2 + 0.7 * 3 + 0.3 * 2 + 1)
    assert tversky_loss(p, targets).item() == pytest.approx(first / 2, abs=1e-6)
    # false positives on an empty channel are still penalised
    assert tversky_loss(pred.float(), empty_target).item() == pytest.approx(1 - 1 / (0.7 * 5 + 1), abs=1e-6)


def test_soft_dice_by_hand():
    pred, target = _case()
    # 1 - (2 TP + 2) / (|P| + |T| + 2), the soft Dice with smoothing 1 per half
    assert dice_loss(pred.float(), target).item() == pytest.approx(1 - (2 + 1) / (2 + 0.5 * 3 + 0.5 * 2 + 1), abs=1e-6)
    p = torch.full((1, 1, 2, 2), 0.5)
    t = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    assert dice_loss(p, t, smooth=0.0).item() == pytest.approx(1 - 0.5 / (0.5 + 0.5 * 1.5 + 0.5 * 0.5), abs=1e-6)


def test_bce_and_focal_by_hand():
    logits = torch.tensor([[[[0.0, 2.0], [-1.0, 3.0]]]])
    t = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    p = torch.sigmoid(logits)
    p_true = torch.where(t > 0, p, 1 - p)
    expected_bce = float(-torch.log(p_true).mean())
    assert bce_loss(logits, t, "sigmoid").item() == pytest.approx(expected_bce, rel=1e-6)
    expected_focal = float((-((1 - p_true) ** 2) * torch.log(p_true)).mean())
    assert focal_loss(logits, t, "sigmoid", gamma=2.0).item() == pytest.approx(expected_focal, rel=1e-5)
    # focal weighs well-classified pixels down: the confident correct pixel (logit 3, target 1) barely counts
    assert focal_loss(logits, t, "sigmoid").item() < bce_loss(logits, t, "sigmoid").item()


def _lesions():
    """Two samples: the first holds a missed lesion of 2 voxels, a found one of 8 and a false positive voxel; the second
    a lesion of 3 voxels, 1 of them found, where the first sample's small lesion lies (they must not join)."""
    target, pred = torch.zeros(2, 1, 6, 6), torch.zeros(2, 1, 6, 6)
    target[0, 0, 0, :2] = 1
    target[0, 0, 3:5, 2:6] = pred[0, 0, 3:5, 2:6] = 1
    pred[0, 0, 5, 0] = 1
    target[1, 0, 0, :3] = 1
    pred[1, 0, 0, 0] = 1
    return pred, target


def test_blob_loss_by_hand():
    pred, target = _lesions()
    missed = 1 - 1 / (0.3 * 1 + 0.7 * 2 + 1)  # TP 0, FP 1 (its sample's), FN 2
    found = 1 - 9 / (8 + 0.3 * 1 + 1)  # TP 8, FP 1
    partly = 1 - 2 / (1 + 0.7 * 2 + 1)  # TP 1, FN 2, no FP in its sample
    expected = (missed + found + partly) / 3
    assert blob_loss(pred, target, alpha=0.3, beta=0.7).item() == pytest.approx(expected, abs=1e-6)
    term = CombinedLoss({"blob": {"alpha": 0.3, "beta": 0.7}})
    assert term(_logits(pred > 0), target).item() == pytest.approx(expected, abs=1e-6)


def test_blob_loss_weighs_a_small_lesion_as_a_large_one():
    target = torch.zeros(1, 1, 32, 32)
    target[0, 0, 1:3, 1:3] = 1
    target[0, 0, 10:30, 10:30] = 1
    small_missed, large_missed = target.clone(), target.clone()
    small_missed[0, 0, 1:3, 1:3] = 0
    large_missed[0, 0, 10:30, 10:30] = 0
    # half of the loss either way: the missed lesion's own, 1 - 1 / (FN / 2 + 1), against 0 for the found one
    assert blob_loss(small_missed, target).item() == pytest.approx((1 - 1 / (4 / 2 + 1)) / 2, abs=1e-6)
    assert blob_loss(large_missed, target).item() == pytest.approx((1 - 1 / (400 / 2 + 1)) / 2, abs=1e-6)
    assert tversky_loss(small_missed, target).item() < 0.01 < 0.3 < tversky_loss(large_missed, target).item()


def test_blob_loss_sees_the_innermost_region_in_3d_and_nothing_without_lesions():
    target = torch.zeros(1, 2, 4, 8, 8)
    target[0, 0] = 1  # liver everywhere
    target[0, 1, 1:3, 2:4, 2:4] = 1  # one tumour of 8 voxels over 2 slices
    pred = target.clone()
    pred[0, 0] = 0  # the liver channel is no lesion: missing it costs nothing here
    pred[0, 1, 1] = 0  # half the tumour missed
    assert blob_loss(pred, target).item() == pytest.approx(1 - 5 / (4 + 0.5 * 4 + 1), abs=1e-6)
    logits = torch.zeros(1, 2, 4, 8, 8, requires_grad=True)
    empty = CombinedLoss({"blob": {}})(logits, torch.zeros(1, 2, 4, 8, 8))
    empty.backward()
    assert empty.item() == 0 and logits.grad is not None


def test_weighted_sum_of_terms():
    pred, target = _case()
    logits = _logits(pred) / 50  # soft enough for BCE to be finite
    combined = CombinedLoss({"dice": {"weight": 2.0}, "bce": {"weight": 0.5}})
    p = torch.sigmoid(logits)
    expected = 2.0 * dice_loss(p, target) + 0.5 * bce_loss(logits, target, "sigmoid")
    assert combined(logits, target).item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ValueError, match="unknown loss terms \\['lovasz'\\]"):
        CombinedLoss({"lovasz": {}})


def test_softmax_head_regions_and_classes():
    # three classes per pixel: background, liver, tumour; the liver region holds liver and tumour classes
    logits = torch.log(torch.tensor([[[[0.7]], [[0.2]], [[0.1]]], [[[0.1]], [[0.3]], [[0.6]]]]))  # (2, 3, 1, 1)
    regions = region_probabilities(logits, "softmax")
    assert regions[:, :, 0, 0].flatten().tolist() == pytest.approx([0.3, 0.1, 0.9, 0.6], abs=1e-6)
    targets = torch.tensor([[[[0.0]], [[0.0]]], [[[1.0]], [[1.0]]]])  # background; tumour (inside the liver)
    assert class_index(targets)[:, 0, 0].tolist() == [0, 2]
    ce = CombinedLoss({"bce": {}}, head="softmax")(logits, targets).item()
    assert ce == pytest.approx(-(math.log(0.7) + math.log(0.6)) / 2, rel=1e-5)


def test_gradient_flows():
    logits = torch.zeros(2, 2, 8, 8, requires_grad=True)
    CombinedLoss({"tversky": {}, "focal": {"gamma": 2.0}})(logits, torch.ones(2, 2, 8, 8)).backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
