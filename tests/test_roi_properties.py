"""Properties of the liver's box for random volumes and boxes of every kind: inside the volume, straddling an edge,
wholly outside along any axis, larger than the volume on every side; and of the 2.5D stacks at any number of slices."""

import nibabel as nib
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from liverseg.data import nifti
from liverseg.models.neighbours import neighbour_index
from liverseg.roi import Box, cut_box, liver_box, paste_box
from tests.helpers import ORIENTATIONS, axis_affine

FILL = -7
shapes = st.tuples(*[st.integers(1, 9)] * 3)


@st.composite
def volumes_and_boxes(draw):
    """A volume of random shape and values, and a box anywhere from far before to far past it, of any size."""
    shape = draw(shapes)
    start = tuple(draw(st.integers(-2 * n - 3, 2 * n + 3)) for n in shape)
    stop = tuple(a + draw(st.integers(1, 3 * n + 6)) for a, n in zip(start, shape))
    seed = draw(st.integers(0, 2**32 - 1))
    return np.random.default_rng(seed).integers(0, 100, shape), Box(start, stop)


def _covered(box: Box, shape) -> np.ndarray:
    """The voxels of a volume of `shape` that the box covers, from the box's ends alone."""
    covered = np.zeros(shape, bool)
    covered[tuple(slice(max(a, 0), max(min(b, n), 0)) for a, b, n in zip(box.start, box.stop, shape))] = True
    return covered


def _inside(box: Box, shape) -> np.ndarray:
    """Which voxels of the box lie inside a volume of `shape`, by their coordinates."""
    grids = np.meshgrid(*[np.arange(a, b) for a, b in zip(box.start, box.stop)], indexing="ij")
    return np.logical_and.reduce([(g >= 0) & (g < n) for g, n in zip(grids, shape)]), grids


@given(volumes_and_boxes())
def test_a_cut_has_the_boxs_shape_and_the_volumes_voxels_or_the_fill(case):
    volume, box = case
    crop = cut_box(volume, box, fill=FILL)
    assert crop.shape == box.shape
    inside, grids = _inside(box, volume.shape)
    expected = np.full(box.shape, FILL)
    expected[inside] = volume[tuple(g[inside] for g in grids)]
    assert np.array_equal(crop, expected)


@given(volumes_and_boxes())
def test_pasting_a_cut_back_gives_the_volume_inside_the_box_and_the_fill_outside(case):
    volume, box = case
    pasted = paste_box(cut_box(volume, box), box, volume.shape, fill=FILL)
    assert np.array_equal(pasted, np.where(_covered(box, volume.shape), volume, FILL))


@given(volumes_and_boxes(), st.integers(1, 12))
def test_slabs_of_any_depth_reassemble_the_whole_box(case, depth):
    volume, box = case
    slabs = box.slabs(depth)
    assert slabs[0].start == box.start and slabs[-1].stop == box.stop
    assert all(s.shape[2] <= depth for s in slabs)
    stacked = np.concatenate([cut_box(volume, slab, fill=FILL) for slab in slabs], axis=2)
    assert np.array_equal(stacked, cut_box(volume, box, fill=FILL))


@pytest.mark.parametrize("codes", ORIENTATIONS)
@given(case=volumes_and_boxes())
def test_the_crop_and_paste_round_trip_holds_in_every_storage_orientation(codes, case):
    """Cut from a file's canonical view and pasted back into its own voxel order: the stored voxels inside the box."""
    canonical, box = case
    affine = axis_affine(tuple(codes), spacing=(0.8, 0.9, 2.5))
    stored = nifti.from_canonical(canonical, affine)
    image = nib.Nifti1Image(stored.astype(np.int16), affine)
    view = nifti.canonical(np.asanyarray(image.dataobj), image)
    back = nifti.from_canonical(paste_box(cut_box(view, box), box, view.shape, fill=FILL), affine)
    inside = nifti.from_canonical(_covered(box, view.shape), affine)
    assert back.shape == stored.shape
    assert np.array_equal(back[inside], stored[inside]) and (back[~inside] == FILL).all()


@given(
    shape=shapes,
    seed=st.integers(0, 2**32 - 1),
    spacing=st.tuples(*[st.floats(0.3, 6.0)] * 3),
    margin=st.floats(0.0, 30.0),
)
def test_the_liver_box_holds_the_mask_and_its_margin_and_is_square_in_mm_in_plane(shape, seed, spacing, margin):
    mask = np.random.default_rng(seed).random(shape) > 0.7
    box = liver_box(mask, spacing, margin)
    if not mask.any():
        assert box is None
        return
    hits = [np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis))) for axis in range(3)]
    for axis, (s, found) in enumerate(zip(spacing, hits)):
        assert (found[0] - box.start[axis]) * s >= margin - 1e-6 * s, f"margin before the mask along axis {axis}"
        assert (box.stop[axis] - found[-1] - 1) * s >= margin - 1e-6 * s, f"margin after the mask along axis {axis}"
    sides_mm = [box.shape[axis] * spacing[axis] for axis in (0, 1)]
    assert abs(sides_mm[0] - sides_mm[1]) <= 2 * max(spacing[:2]) + 1e-6, "square in mm to within a voxel each side"


@given(st.lists(st.integers(1, 7), min_size=1, max_size=4), st.sampled_from([1, 3, 5, 7, 9]))
def test_2_5d_stacks_hold_each_slice_at_their_centre_and_stay_in_its_case(lengths, k):
    index = neighbour_index(lengths, k)
    assert index.shape == (sum(lengths), k)
    assert np.array_equal(index[:, k // 2], np.arange(sum(lengths)))
    starts = np.repeat(np.cumsum([0, *lengths[:-1]]), lengths)
    ends = starts + np.repeat(lengths, lengths) - 1
    assert ((index >= starts[:, None]) & (index <= ends[:, None])).all(), "a stack never crosses into another case"
    offsets = index - np.arange(sum(lengths))[:, None]
    expected = np.clip(
        np.arange(k) - k // 2, (starts - np.arange(sum(lengths)))[:, None], (ends - np.arange(sum(lengths)))[:, None]
    )
    assert np.array_equal(offsets, expected), "neighbours in order, the end slice repeated beyond a case's edge"
