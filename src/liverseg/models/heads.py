"""What a model's output channels mean, and how they become probabilities and labels.

The regions are nested (the liver contains its tumours). A `sigmoid` head has one channel per region; a `softmax` head
has one channel per class (background, then each region's own label), and a region's probability is the sum of the
probabilities of its class and of the classes nested in it.
"""

from __future__ import annotations

import torch

HEADS = ("sigmoid", "softmax")


def output_channels(head: str, regions: int) -> int:
    return regions if head == "sigmoid" else regions + 1


def region_probabilities(logits: torch.Tensor, head: str) -> torch.Tensor:
    """(N, channels, H, W) logits -> (N, regions, H, W) probabilities of each nested region."""
    if head == "sigmoid":
        return torch.sigmoid(logits.float())
    classes = torch.softmax(logits.float(), dim=1)[:, 1:]
    return classes.flip(1).cumsum(1).flip(1)  # region j holds classes j+1 and above


def class_index(regions: torch.Tensor) -> torch.Tensor:
    """(N, regions, H, W) binary nested regions -> (N, H, W) class index (0 background, j+1 inside region j only)."""
    return regions.sum(1).long()


def output_probabilities(logits: torch.Tensor, head: str) -> torch.Tensor:
    """Per-region probabilities for a sigmoid head, per-class for a softmax head."""
    return torch.sigmoid(logits.float()) if head == "sigmoid" else torch.softmax(logits.float(), dim=1)


def mean_probabilities(models, x: torch.Tensor, head: str, logits=lambda model, x: model(x)) -> torch.Tensor:
    """The mean of the models' output probabilities (an ensemble of folds; one model: its own); `logits(model, x)`
    applies a model, for example by sliding window."""
    return sum(output_probabilities(logits(model, x), head) for model in models) / len(models)


def probabilities_to_classes(probabilities: torch.Tensor, head: str) -> torch.Tensor:
    """(N, C, H, W) -> (N, H, W): how many nested regions hold each pixel (0 background, 1 liver, 2 tumour, for
    stage 1). A sigmoid region counts only inside the region that contains it, so tumour stays inside the liver."""
    if head == "softmax":
        return probabilities.argmax(1).to(torch.uint8)
    above = probabilities > 0.5
    inside = above[:, 0]
    count = inside.to(torch.uint8)
    for region in range(1, above.shape[1]):  # a few regions: a loop of whole-image ANDs, far cheaper than cumprod
        inside = inside & above[:, region]
        count += inside
    return count


def first_region(probabilities: torch.Tensor, head: str) -> torch.Tensor:
    """(N, C, H, W) -> (N, H, W): the probability of the outermost region (the liver, for stage 1)."""
    return probabilities[:, 0] if head == "sigmoid" else 1 - probabilities[:, 0]
