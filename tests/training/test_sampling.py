import numpy as np
import torch

from liverseg.training.sampling import epoch_indices, small_lesion_slices


def _flags():
    # 10 tumour slices, 30 liver-only slices, 60 slices without liver
    has_tumour = torch.zeros(100, dtype=torch.bool)
    has_tumour[:10] = True
    has_liver = torch.zeros(100, dtype=torch.bool)
    has_liver[:40] = True
    return has_tumour, has_liver


def test_ratios():
    has_tumour, has_liver = _flags()
    order = epoch_indices(has_tumour, has_liver, 3.0, 0.5, torch.Generator().manual_seed(1))
    counts = torch.bincount(order, minlength=100)
    assert (counts[:10] == 3).all(), "each tumour slice exactly three times"
    assert (counts[10:40] == 1).all(), "liver slices once"
    assert set(counts[40:].tolist()) <= {0, 1}
    kept = int(counts[40:].sum())
    assert 15 <= kept <= 45  # binomial(60, 0.5): 30 expected
    assert len(order) == 30 + 30 + kept
    assert not torch.equal(order[:30], torch.sort(order[:30]).values), "shuffled"


def test_fractional_oversampling_averages_out():
    has_tumour, has_liver = _flags()
    generator = torch.Generator().manual_seed(0)
    totals = torch.zeros(100)
    for _ in range(200):
        totals += torch.bincount(epoch_indices(has_tumour, has_liver, 1.5, 0.2, generator), minlength=100)
    assert abs(float(totals[:10].mean()) / 200 - 1.5) < 0.1
    assert abs(float(totals[40:].mean()) / 200 - 0.2) < 0.05


def test_defaults_see_every_slice_once_and_seeding():
    has_tumour, has_liver = _flags()
    order = epoch_indices(has_tumour, has_liver, 1.0, 1.0, torch.Generator().manual_seed(3))
    assert sorted(order.tolist()) == list(range(100))
    again = epoch_indices(has_tumour, has_liver, 2.5, 0.3, torch.Generator().manual_seed(7))
    same = epoch_indices(has_tumour, has_liver, 2.5, 0.3, torch.Generator().manual_seed(7))
    other = epoch_indices(has_tumour, has_liver, 2.5, 0.3, torch.Generator().manual_seed(8))
    assert torch.equal(again, same) and not torch.equal(again, other)


def test_small_lesion_slices_take_their_own_rate():
    has_tumour, has_liver = _flags()
    small = torch.zeros(100, dtype=torch.bool)
    small[:2] = True
    order = epoch_indices(has_tumour, has_liver, 3.0, 1.0, torch.Generator().manual_seed(1), small, 12.0)
    counts = torch.bincount(order, minlength=100)
    assert (counts[:2] == 12).all() and (counts[2:10] == 3).all() and (counts[10:] == 1).all()
    plain = epoch_indices(has_tumour, has_liver, 3.0, 1.0, torch.Generator().manual_seed(1))
    unset = epoch_indices(has_tumour, has_liver, 3.0, 1.0, torch.Generator().manual_seed(1), small, None)
    assert torch.equal(plain, unset), "without the rate, small-lesion slices are tumour slices"


def test_small_lesions_are_sized_in_mm_as_lesions_are_scored():
    """A 9 mm cube (sphere-equivalent diameter 11.2 mm) is not small at 1 mm; the same voxels at 0.8 mm are."""
    tumour = np.zeros((20, 30, 30), dtype=bool)
    tumour[2:11, 2:11, 2:11] = True  # 729 voxels
    tumour[15, 20, 20] = True  # one voxel: small at any spacing here
    assert small_lesion_slices(tumour, (1.0, 1.0, 1.0)).nonzero()[0].tolist() == [15]
    assert small_lesion_slices(tumour, (0.8, 0.8, 0.8)).nonzero()[0].tolist() == [*range(2, 11), 15]
    assert not small_lesion_slices(np.zeros((3, 4, 4), dtype=bool), (1.0, 1.0, 1.0)).any()
