"""2.5D input: each slice with its k - 1 nearest neighbours as channels, the end slice repeated at a case's edges."""

from __future__ import annotations

import numpy as np


def neighbour_index(lengths: list[int], k: int) -> np.ndarray:
    """(sum(lengths), k) indices into the concatenated slices of cases of these lengths; row i is slice i's stack.

    Stacks never cross from one case into the next: beyond a case's first or last slice, that slice is repeated.
    """
    if k < 1 or k % 2 == 0:
        raise ValueError(f"the number of input slices must be odd and positive, got {k}")
    offsets = np.arange(k) - k // 2
    rows = []
    start = 0
    for n in lengths:
        local = np.clip(np.arange(n)[:, None] + offsets[None, :], 0, n - 1)
        rows.append(start + local)
        start += n
    return np.concatenate(rows) if rows else np.zeros((0, k), dtype=int)
