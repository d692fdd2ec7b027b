"""Batches prepared ahead in a thread: the same batches in the same order, the producer's errors raised to the loop,
and a loop that stops early leaves no thread behind."""

import threading

import pytest
import torch

from liverseg.models.neighbours import neighbour_index
from liverseg.training.augment import AugmentSettings
from liverseg.training.dataset import Batches, SliceSet
from liverseg.training.prefetch import prefetch


def _batches() -> Batches:
    generator = torch.Generator().manual_seed(0)
    labels = torch.zeros(40, 32, 32, dtype=torch.uint8)
    labels[:, 8:24, 8:24] = 1
    labels[::2, 12:16, 12:16] = 2
    data = SliceSet(
        images=torch.rand(40, 32, 32, generator=generator).half(),
        labels=labels,
        stacks=torch.from_numpy(neighbour_index([20, 20], 3)),
        box_half=None,
        box_jitter=None,
    )
    augment = AugmentSettings(rotation_degrees=15, noise_std=0.05, lesion_paste=0.5, elastic_px=2.0)
    return Batches(data, ("liver", "tumour"), 8, torch.device("cpu"), augment)


def test_the_same_augmented_batches_in_the_same_order():
    batches, order = _batches(), torch.randperm(40, generator=torch.Generator().manual_seed(1))
    serial = list(batches(order, torch.Generator().manual_seed(2)))
    ahead = list(prefetch(batches(order, torch.Generator().manual_seed(2))))
    assert len(ahead) == len(serial) == 5
    for (x, y), (xa, ya) in zip(serial, ahead):
        assert torch.equal(x, xa) and torch.equal(y, ya)


def _failing():
    yield 1
    raise ValueError("case_007.npz: no slices")


def test_the_producers_error_reaches_the_loop():
    seen = []
    with pytest.raises(ValueError, match="case_007.npz"):
        for item in prefetch(_failing()):
            seen.append(item)
    assert seen == [1]


def test_a_loop_that_stops_early_stops_the_thread():
    produced = []

    def endless():
        while True:
            produced.append(len(produced))
            yield produced[-1]

    items = prefetch(endless(), depth=2)
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    items.close()  # what a loop that breaks, or raises, does to the generator
    assert not any(t.name == "prefetch" and t.is_alive() for t in threading.enumerate())
    assert len(produced) <= 3 + 2 + 2, "the producer ran no further than the queue's depth ahead, and one more"
