"""Which training slices an epoch sees: tumour slices oversampled, slices without liver subsampled (seeded).

As nnU-Net forces part of every batch to hold foreground, this keeps the rare tumour pixels from drowning in
background: with `tumour_oversample` r, a tumour slice appears floor(r) times plus once more with probability
r - floor(r); a slice without liver is kept with probability `background_fraction`; every other slice appears once.
"""

from __future__ import annotations

import torch


def epoch_indices(
    has_tumour: torch.Tensor,
    has_liver: torch.Tensor,
    tumour_oversample: float,
    background_fraction: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """Shuffled slice indices of one epoch."""
    n = len(has_tumour)
    u = torch.rand(n, generator=generator)
    repeats = torch.ones(n, dtype=torch.long)
    whole = int(tumour_oversample)
    repeats[has_tumour] = whole + (u[has_tumour] < tumour_oversample - whole).long()
    background = ~has_liver & ~has_tumour
    repeats[background] = (u[background] < background_fraction).long()
    chosen = torch.repeat_interleave(torch.arange(n), repeats)
    return chosen[torch.randperm(len(chosen), generator=generator)]
