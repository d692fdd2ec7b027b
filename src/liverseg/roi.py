"""The liver's region of interest: a box around the liver in voxels, cut out of a volume and pasted back.

Boxes are square in millimetres in-plane (so lesions keep their shape when the crop is resized to a square) and hold
the liver's extent plus a margin on every side, slices included. A box may reach past the volume's edge: cutting pads
with a fill value, pasting drops what lies outside.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class Box:
    start: tuple[int, int, int]  # first voxel, may be negative
    stop: tuple[int, int, int]  # one past the last voxel, may exceed the volume

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(b - a for a, b in zip(self.start, self.stop))

    def slabs(self, depth: int) -> list[Box]:
        """The box cut along its slices into boxes of at most `depth` slices."""
        return [
            Box((*self.start[:2], z), (*self.stop[:2], min(z + depth, self.stop[2])))
            for z in range(self.start[2], self.stop[2], depth)
        ]


def bounding_slices(mask: np.ndarray, pad: int | tuple[int, ...] = 0) -> tuple[slice, ...] | None:
    """The bounding box of a mask's voxels, `pad` voxels wider on every side (or per axis) within the volume; None
    when empty. Labelling components in it rather than in the whole volume keeps int32 label maps small."""
    pads = (pad,) * mask.ndim if isinstance(pad, int) else pad
    box = []
    for axis, wider in enumerate(pads):
        hits = np.flatnonzero(np.any(mask, axis=tuple(a for a in range(mask.ndim) if a != axis)))
        if hits.size == 0:
            return None
        box.append(slice(max(int(hits[0]) - wider, 0), min(int(hits[-1]) + 1 + wider, mask.shape[axis])))
    return tuple(box)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 3D connected component (26-connectivity) of a binary mask."""
    out = np.zeros(mask.shape, dtype=bool)
    box = bounding_slices(mask)
    if box is None:
        return out
    components, n = ndimage.label(mask[box], structure=np.ones((3, 3, 3), dtype=bool))
    if n <= 1:
        out[box] = components > 0
        return out
    sizes = np.bincount(components.ravel())[1:]
    out[box] = components == 1 + int(np.argmax(sizes))
    return out


def liver_box(mask: np.ndarray, spacing: tuple[float, float, float], margin_mm: float) -> Box | None:
    """Box around a canonical (R, A, S) mask: square in mm in-plane, `margin_mm` beyond it on every side."""
    if not mask.any():
        return None
    spacing = np.asarray(spacing, dtype=float)
    extent = ndimage.find_objects(mask.astype(np.uint8))[0]
    lo, hi = np.array([s.start for s in extent]), np.array([s.stop for s in extent])
    centre_mm = (lo + hi) / 2 * spacing
    extent_mm = (hi - lo) * spacing
    side_mm = np.append(np.full(2, extent_mm[:2].max()), extent_mm[2]) + 2 * margin_mm
    # the voxels that reach into the box's extent in mm, so that the mask and its whole margin lie inside
    start = np.floor((centre_mm - side_mm / 2) / spacing + 1e-6).astype(int)
    stop = np.maximum(np.ceil((centre_mm + side_mm / 2) / spacing - 1e-6).astype(int), start + 1)
    return Box(tuple(int(v) for v in start), tuple(int(v) for v in stop))


def _overlap(start: int, stop: int, n: int) -> tuple[slice, slice]:
    """Along one axis, the part of [start, stop) inside [0, n): as a slice of the volume and of the box. Both are
    empty for a box wholly outside: the ends are clamped into [0, n], so no stop is negative (numpy would count it
    from the end)."""
    first = min(max(start, 0), n)
    last = max(min(stop, n), first)
    return slice(first, last), slice(first - start, last - start)


def cut_box(volume: np.ndarray, box: Box, fill=0, dtype=None) -> np.ndarray:
    """The box's voxels of a (X, Y, Z) volume, as `dtype` if given; parts outside the volume are `fill`."""
    out = np.full(box.shape, fill, dtype=dtype or volume.dtype)
    inside, source = zip(*(_overlap(a, b, n) for a, b, n in zip(box.start, box.stop, volume.shape)))
    out[source] = volume[inside]
    return out


def paste_box(crop: np.ndarray, box: Box, shape: tuple[int, int, int], fill=0) -> np.ndarray:
    """A volume of `shape` holding `crop` at the box and `fill` elsewhere (the inverse of `cut_box` inside the box)."""
    if crop.shape != box.shape:
        raise ValueError(f"crop of shape {crop.shape} does not fit a box of shape {box.shape}")
    out = np.full(shape, fill, dtype=crop.dtype)
    inside, source = zip(*(_overlap(a, b, n) for a, b, n in zip(box.start, box.stop, shape)))
    out[inside] = crop[source]
    return out
