import pytest
import torch

from liverseg.losses import tversky_loss

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
    assert tversky_loss(_logits(pred), target, 0.7, 0.3).item() == pytest.approx(expected, abs=1e-6)


def test_alpha_weighs_false_positives():
    target = torch.zeros(1, 1, 4, 4)
    target[0, 0, :2] = 1  # 8 positives
    over = target.bool().clone()
    over[0, 0, 2] = True  # 4 false positives
    under = target.bool().clone()
    under[0, 0, 1] = False  # 4 false negatives
    loss_fp = tversky_loss(_logits(over), target, alpha=0.7, beta=0.3).item()
    loss_fn = tversky_loss(_logits(under), target, alpha=0.7, beta=0.3).item()
    assert loss_fp == pytest.approx(1 - 9 / (8 + 0.7 * 4 + 1), abs=1e-6)
    assert loss_fn == pytest.approx(1 - 5 / (4 + 0.3 * 4 + 1), abs=1e-6)
    # with alpha 0.7 on false positives, four false positives cost more than four false negatives
    assert loss_fp > loss_fn
    assert tversky_loss(_logits(over), target, alpha=0.3, beta=0.7).item() < loss_fp


def test_channels_are_averaged_and_empty_channel_is_defined():
    pred, target = _case()
    empty_target = torch.zeros_like(target)
    logits = torch.cat([_logits(pred), _logits(torch.zeros_like(pred))], dim=1)
    targets = torch.cat([target, empty_target], dim=1)
    first = 1 - 3 / (2 + 0.7 * 3 + 0.3 * 2 + 1)
    assert tversky_loss(logits, targets).item() == pytest.approx(first / 2, abs=1e-6)
    # false positives on an empty channel are still penalised
    fp_only = tversky_loss(_logits(pred), empty_target).item()
    assert fp_only == pytest.approx(1 - 1 / (0.7 * 5 + 1), abs=1e-6)


def test_gradient_flows():
    logits = torch.zeros(2, 2, 8, 8, requires_grad=True)
    tversky_loss(logits, torch.ones(2, 2, 8, 8)).backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
