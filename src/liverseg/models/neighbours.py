"""2.5D input: each slice with its k - 1 neighbours as channels, the end slice repeated at a case's edges.

The neighbours are the adjacent slices, or, for a model whose entry gives `neighbour_mm`, the slices nearest that far
apart: a model that learned its neighbours 3 to 5 mm away would otherwise see them 0.7 mm away in a thin-slice scan,
where they barely differ from the middle slice.
"""

from __future__ import annotations

import numpy as np


def neighbour_step(slice_mm: float, neighbour_mm: float | None) -> int:
    """Slices from one neighbour to the next: the count nearest `neighbour_mm` at this slice spacing, at least 1
    (halves round up); None: 1, the adjacent slices."""
    if neighbour_mm is None:
        return 1
    return max(1, int(neighbour_mm / slice_mm + 0.5))


def neighbour_index(lengths: list[int], k: int, steps: list[int] | None = None) -> np.ndarray:
    """(sum(lengths), k) indices into the concatenated slices of cases of these lengths; row i is slice i's stack,
    its neighbours `steps[case]` slices apart (default: adjacent).

    Stacks never cross from one case into the next: beyond a case's first or last slice, that slice is repeated.
    """
    if k < 1 or k % 2 == 0:
        raise ValueError(f"the number of input slices must be odd and positive, got {k}")
    offsets = np.arange(k) - k // 2
    rows = []
    start = 0
    for n, step in zip(lengths, steps or [1] * len(lengths)):
        local = np.clip(np.arange(n)[:, None] + step * offsets[None, :], 0, n - 1)
        rows.append(start + local)
        start += n
    return np.concatenate(rows) if rows else np.zeros((0, k), dtype=int)
