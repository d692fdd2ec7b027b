"""Tversky loss, with the study's convention: alpha weighs false positives, beta false negatives."""

from __future__ import annotations

import torch


def tversky_loss(
    logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.7, beta: float = 0.3, smooth: float = 1.0
) -> torch.Tensor:
    """Mean over channels of 1 - (TP + s) / (TP + alpha FP + beta FN + s), counts summed over batch and pixels.

    `logits` and `target` are (N, C, H, W); each channel is one sigmoid target. The smoothing term keeps the loss
    defined on batches without a given target, where it still penalises false positives.
    """
    p = torch.sigmoid(logits.float())
    t = target.float()
    dims = (0, 2, 3)
    tp = (p * t).sum(dims)
    fp = (p * (1 - t)).sum(dims)
    fn = ((1 - p) * t).sum(dims)
    return (1 - (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)).mean()
