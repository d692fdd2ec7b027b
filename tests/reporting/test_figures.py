"""The overlay's slices are chosen from the reference (and the false tumour), never from one prediction alone."""

import numpy as np

from liverseg.reporting.figures import chosen_slices, in_plane_view


def volumes():
    reference = np.zeros((20, 20, 10), np.uint8)
    reference[4:16, 4:16, 2:8] = 1
    reference[6:8, 6:8, 3] = 2  # a small tumour on slice 3
    reference[6:11, 6:11, 6] = 2  # the largest on slice 6
    return reference


def test_largest_reference_tumour_and_most_false_tumour():
    reference = volumes()
    painted = reference.copy()
    painted[4:16, 4:16, 2] = 2  # a whole liver slice painted as tumour: the model's worst slice
    other = reference.copy()
    other[12:14, 12:14, 5] = 2
    rows = chosen_slices(reference, {"painter": painted, "other": other})
    assert rows == {"largest reference tumour": 6, "most false tumour": 2}


def test_a_case_without_tumour_shows_its_largest_liver_and_no_false_row_when_none():
    reference = volumes()
    reference[reference == 2] = 1
    reference[4:16, 4:18, 5] = 1  # the largest liver slice
    rows = chosen_slices(reference, {"model": reference.copy()})
    assert rows == {"largest reference liver (no tumour)": 5}
    painted = reference.copy()
    painted[4:16, 4:16, 5] = 2
    assert chosen_slices(reference, {"model": painted}) == {
        "largest reference liver (no tumour),\nmost false tumour": 5
    }


def test_the_view_holds_every_mask_with_a_margin():
    reference = volumes()
    prediction = np.zeros_like(reference)
    prediction[1, 18, 4] = 1  # a stray false positive far from the liver stays in view
    view = in_plane_view([reference >= 1, prediction >= 1], reference.shape[:2])
    assert view[0].start <= 1 and view[1].stop >= 19
    assert in_plane_view([np.zeros_like(reference, bool)], (20, 20)) == (slice(0, 20), slice(0, 20))
