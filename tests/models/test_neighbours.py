import numpy as np
import pytest

from liverseg.models.neighbours import neighbour_index, neighbour_step


def test_stacks_repeat_the_end_slices_and_never_cross_cases():
    index = neighbour_index([4, 3], 3)
    assert index.tolist() == [[0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 3], [4, 4, 5], [4, 5, 6], [5, 6, 6]]
    wide = neighbour_index([2], 5)
    assert wide.tolist() == [[0, 0, 0, 1, 1], [0, 0, 1, 1, 1]]


def test_one_slice_is_the_study_input():
    assert neighbour_index([3, 2], 1).tolist() == [[0], [1], [2], [3], [4]]


def test_stack_values_at_first_and_last_slice():
    slices = np.arange(5, dtype=np.float32)[:, None, None] * np.ones((5, 2, 2), np.float32)
    stacks = slices[neighbour_index([5], 3)]
    assert stacks.shape == (5, 3, 2, 2)
    assert stacks[0, :, 0, 0].tolist() == [0, 0, 1]
    assert stacks[-1, :, 0, 0].tolist() == [3, 4, 4]
    assert stacks[2, :, 0, 0].tolist() == [1, 2, 3]


def test_even_counts_are_refused():
    with pytest.raises(ValueError, match="odd"):
        neighbour_index([3], 2)


def test_neighbours_a_step_apart_stay_within_their_case():
    index = neighbour_index([5, 3], 3, [2, 1])
    assert index.tolist() == [[0, 0, 2], [0, 1, 3], [0, 2, 4], [1, 3, 4], [2, 4, 4], [5, 5, 6], [5, 6, 7], [6, 7, 7]]


def test_the_step_is_the_slice_count_nearest_the_distance_asked():
    assert neighbour_step(1.0, None) == 1, "adjacent slices without a distance"
    assert [neighbour_step(mm, 3.0) for mm in (0.7, 1.0, 1.25, 1.5, 2.0, 2.5, 5.0)] == [4, 3, 2, 2, 2, 1, 1]
