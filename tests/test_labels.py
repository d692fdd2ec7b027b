"""The label map of a liver mask and a tumour mask, for random masks of any overlap and storage."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from liverseg.labels import label_map, liver_mask, tumour_mask


@given(
    shape=st.tuples(*[st.integers(1, 6)] * 3),
    seed=st.integers(0, 2**32 - 1),
    dtype=st.sampled_from([bool, np.uint8]),
)
def test_a_tumour_voxel_is_tumour_wherever_it_lies_and_the_rest_of_the_liver_is_liver(shape, seed, dtype):
    rng = np.random.default_rng(seed)
    liver, tumour = rng.random(shape) < 0.5, rng.random(shape) < 0.3  # tumour inside and outside the liver
    labels = label_map(liver.astype(dtype), tumour.astype(dtype))
    assert labels.dtype == np.uint8 and labels.shape == shape
    assert np.array_equal(tumour_mask(labels), tumour)
    assert np.array_equal(liver_mask(labels), liver | tumour)
    assert set(np.unique(labels)) <= {0, 1, 2}
