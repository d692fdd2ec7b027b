import nibabel as nib
import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from scipy import ndimage

from liverseg.inference.postprocess import (
    PostSettings,
    apply_steps,
    close_labels,
    close_mask,
    drop_tumour_outside_liver,
    footprint,
    postprocess_case,
)


def _disk(shape, centre, radius):
    x, y = np.ogrid[: shape[0], : shape[1]]
    return (x - centre[0]) ** 2 + (y - centre[1]) ** 2 <= radius**2


def test_footprint_is_in_millimetres():
    assert footprint(3.0, (1.0, 1.0, 2.5)).shape == (7, 7, 1)
    assert footprint(3.0, (1.0, 1.5, 2.5)).shape == (7, 5, 1)
    assert footprint(0.0, (1.0, 1.0, 2.5)).shape == (1, 1, 1)
    ball = footprint(3.0, (1.0, 1.5, 2.5), three_d=True)
    assert ball.shape == (7, 5, 3) and ball[3, 2, :].all() and not ball[0, 0, 0]


def test_closing_fills_holes_and_gaps_but_keeps_the_outline():
    liver = _disk((64, 64), (32, 32), 20)
    labels = np.zeros((64, 64, 3), np.uint8)
    labels[liver] = 1
    labels[30:33, 30:33, 1] = 0  # a 3x3 hole
    labels[:, 31, 2] = 0  # a one-voxel cut through the liver
    closed = close_labels(labels, (1.0, 1.0, 3.0), radius_mm=3.0)
    assert np.array_equal(closed[:, :, 1] >= 1, liver)
    assert np.array_equal(closed[:, :, 2] >= 1, liver)
    assert np.array_equal(close_labels(labels, (1.0, 1.0, 3.0), 0.0), labels)


def test_tumour_stays_inside_liver_and_edges_are_not_eroded():
    labels = np.zeros((40, 40, 1), np.uint8)
    labels[:20, :, 0] = 1  # liver touching the volume's edge
    labels[5:9, 5:9, 0] = 2
    labels[6, 6, 0] = 1  # a hole inside the tumour
    closed = close_labels(labels, (1.0, 1.0, 2.0), radius_mm=2.0)
    assert np.array_equal(closed >= 1, labels >= 1)
    assert closed[6, 6, 0] == 2 and (closed == 2).sum() == 16


def test_postprocess_case_keeps_geometry(tmp_path):
    affine = np.diag([-0.8, -0.8, 2.5, 1.0])  # LPS storage
    labels = np.zeros((32, 32, 4), np.uint8)
    labels[8:24, 8:24] = 1
    labels[15, 15] = 0
    nib.save(nib.Nifti1Image(labels, affine), tmp_path / "pred.nii.gz")
    postprocess_case(tmp_path / "pred.nii.gz", tmp_path / "post.nii.gz", PostSettings(closing_radius_mm=2.0))
    out = nib.load(tmp_path / "post.nii.gz")
    assert out.shape == labels.shape and np.allclose(out.affine, affine)
    assert np.asarray(out.dataobj)[15, 15].tolist() == [1, 1, 1, 1]


def test_closing_in_3d_fills_a_missing_slice():
    labels = np.zeros((20, 20, 5), np.uint8)
    labels[5:15, 5:15, :] = 1
    labels[:, :, 2] = 0  # a slice the model missed
    assert not close_labels(labels, (1.0, 1.0, 1.0), 2.0)[:, :, 2].any()
    assert (
        close_labels(labels, (1.0, 1.0, 1.0), 2.0, three_d=True)[6:14, 6:14, 2] == 1
    ).all()  # the ball rounds the rim


def test_each_step_on_hand_made_masks():
    labels = np.zeros((30, 30, 6), np.uint8)
    labels[2:20, 2:20, 1:5] = 1  # the liver
    labels[5:8, 5:8, 2:4] = 2  # a tumour inside it
    labels[25:28, 25:28, 1:3] = 1  # a small false liver elsewhere
    labels[24:29, 2:5, 2:4] = 2  # tumour lying in the background, no liver around
    steps = dict(apply_steps(labels, (1.0, 1.0, 2.0), PostSettings(closing_radius_mm=0.0)))
    assert list(steps) == ["largest_component", "tumour_in_liver"]
    largest = steps["largest_component"]
    assert not largest[25:28, 25:28].any() and (largest[5:8, 5:8, 2:4] == 2).all()
    assert (largest[24:29, 2:5, 2:4] == 0).all(), "the stray tumour is its own component: not the largest"
    only_tumour = dict(apply_steps(labels, (1.0, 1.0, 2.0), PostSettings(0.0, largest_liver_component=False)))
    kept = only_tumour["tumour_in_liver"]
    assert (
        (kept[24:29, 2:5, 2:4] == 0).all() and (kept[5:8, 5:8, 2:4] == 2).all() and (kept[25:28, 25:28, 1:3] == 1).all()
    )
    assert apply_steps(labels, (1.0, 1.0, 2.0), PostSettings(0.0, False, False, False)) == []


def test_a_liver_marked_all_tumour_is_kept_and_a_stray_tumour_still_dropped():
    labels = np.zeros((30, 30, 6), np.uint8)
    labels[2:20, 2:20, 1:5] = 2  # a weak model marked the whole liver as tumour
    labels[24:29, 24:29, 2:4] = 2  # and a smaller blob in the background
    kept = drop_tumour_outside_liver(labels)
    assert (kept[2:20, 2:20, 1:5] == 2).all(), "the liver itself is not dropped"
    assert not kept[24:29, 24:29].any()


@given(
    shape=st.tuples(st.integers(1, 24), st.integers(1, 24), st.integers(1, 8)),
    density=st.floats(0.0, 0.2),
    radius_mm=st.floats(0.5, 6.0),
    spacing=st.tuples(st.floats(0.6, 2.0), st.floats(0.6, 2.0), st.floats(0.7, 5.0)),
    three_d=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_closing_in_the_masks_box_is_the_closing_of_the_whole_volume(shape, density, radius_mm, spacing, three_d, seed):
    """Sparse masks anywhere, at the volume's edges too, against the definition: the whole volume padded by its edges."""
    mask = np.random.default_rng(seed).random(shape) < density
    structure = footprint(radius_mm, spacing, three_d)
    reach = [(s // 2, s // 2) for s in structure.shape]
    whole = ndimage.binary_closing(np.pad(mask, reach, mode="edge"), structure=structure)
    expected = whole[tuple(slice(r, r + n) for (r, _), n in zip(reach, shape))]
    assert np.array_equal(close_mask(mask, structure), expected)
