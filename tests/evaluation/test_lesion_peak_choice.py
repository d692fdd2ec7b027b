"""The lowest lesion peak chosen on validation cases: lesions counted per cut as LiTS matches them, the middle of the
longest run of the best lesion F1 chosen, and the tumour stage's own pass inside the reference liver judged."""

import argparse
import json

import nibabel as nib
import numpy as np
import pytest

from liverseg.cli.arguments import lesion_peak
from liverseg.data import nifti
from liverseg.evaluation.lesion_peak_choice import (
    CANDIDATES,
    choose_lesion_peak,
    chosen_index,
    lesion_counts,
    lesion_f1,
)
from liverseg.models.recipe import Recipe
from liverseg.roi import Box, cut_box, largest_component, liver_box

SPACING = (1.0, 1.0, 2.0)


def _two_lesions_and_a_speck():
    """A reference of two lesions; a prediction matching both (peaks 0.99995 and 0.95) and a speck (0.99)."""
    reference = np.zeros((12, 12, 4), dtype=bool)
    reference[1:4, 1:4, 0:2] = True
    reference[7:10, 7:10, 1:3] = True
    tumour = reference.copy()
    tumour[0, 11, 3] = True
    probability = np.where(tumour, 0.6, 0.1).astype(np.float32)
    probability[2, 2, 1], probability[8, 8, 2], probability[0, 11, 3] = 0.99995, 0.95, 0.99
    return tumour, probability, reference


def test_lesions_are_counted_at_each_cut_pasted_from_a_box_past_the_scan():
    """The box reaches one slice past the scan and starts one voxel before it in x, as a liver's box may."""
    tumour, probability, reference = _two_lesions_and_a_speck()
    box = Box((-1, 0, 0), (12, 12, 5))
    padded = lambda a: np.pad(a, ((1, 0), (0, 0), (0, 1)))  # noqa: E731
    cuts = (0.5, 0.9, 0.98, 0.995, 0.99999)
    counts = lesion_counts(padded(tumour), padded(probability), reference, SPACING, box, candidates=cuts)
    assert [(c["true_positives"], c["false_positives"]) for c in counts] == [(2, 1), (2, 1), (1, 1), (1, 0), (0, 0)]
    assert all(c["ref_lesions"] == 2 for c in counts)


def test_the_cut_is_the_middle_of_the_longest_run_of_the_best_f1():
    assert chosen_index([0.4, 0.6, 0.6, 0.6, 0.5]) == 2
    assert chosen_index([0.6, 0.5, 0.6, 0.6, 0.6, 0.6]) == 3, "the longer run, its lower middle"
    assert chosen_index([0.6, 0.6, 0.5, 0.6, 0.6]) == 0, "the first of equal runs"
    assert chosen_index([0.1, 0.2, 0.3]) == 2


def test_without_reference_lesions_marking_nothing_is_best():
    nothing = {"true_positives": 0, "false_positives": 0, "ref_lesions": 0, "pred_lesions": 0, "reference": []}
    assert lesion_f1([nothing]) == 1.0
    assert lesion_f1([{**nothing, "false_positives": 1, "pred_lesions": 1}]) == 0.0


def test_the_tumour_stage_is_judged_inside_the_reference_liver(phantom_files, monkeypatch, tmp_path):
    """A stand-in tumour stage marks the reference lesions of the box it is given (peak 0.99995) and a speck of
    liver (0.95): every cut above the speck's peak and up to the lesions' finds them all and nothing else, and the
    chosen one is the middle of those."""
    volume, label = phantom_files / "volume-1.nii.gz", phantom_files / "segmentation-1.nii.gz"
    reference = nifti.to_canonical(nib.load(label), dtype=np.uint8)
    recipe = Recipe.from_spec({"kind": "unet", "crop": {"size": 32, "margin_mm": 5.0}})
    spacing = nifti.canonical_spacing(nib.load(volume))
    box = liver_box(largest_component(reference > 0), spacing, 5.0)
    lesions = cut_box(reference == 2, box).transpose(2, 0, 1)
    speck = np.argwhere(cut_box(reference == 1, box).transpose(2, 0, 1))[0]
    assert lesions.any(), "the phantom holds lesions"

    def segment(models, recipe, crops, size, device, flip_tta, innermost, slice_mm):
        assert flip_tta and crops.shape == (len(lesions), 32, 32) and size == lesions.shape[1:]
        classes = lesions.astype(np.uint8)
        classes[tuple(speck)] = 1
        innermost[:] = np.where(classes == 1, 0.99995, 0.1)
        innermost[tuple(speck)] = 0.95
        return classes

    monkeypatch.setattr(
        "liverseg.evaluation.lesion_peak_choice.load_models", lambda paths, device: ([None], recipe, None)
    )
    monkeypatch.setattr("liverseg.inference.predict.segment_slices", segment)
    out = tmp_path / "lesion_peak.json"
    choice = choose_lesion_peak([tmp_path / "w.pt"], [volume], [label], (-150, 250), out, "cpu", flip_tta=True)
    found = [cut["min_lesion_peak"] for cut in choice["cuts"] if cut["lesion_f1"] == 1.0]
    assert found == [cut for cut in CANDIDATES if 0.95 < cut <= 0.99995]
    assert choice["min_lesion_peak"] == found[(len(found) - 1) // 2]
    every = choice["cuts"][0]
    assert every["min_lesion_peak"] == 0.5 and every["false_positives"] == 1
    assert every["true_positives"] == every["ref_lesions"] > 0
    assert json.loads(out.read_text()) == choice
    assert lesion_peak(argparse.Namespace(min_lesion_peak=None, min_lesion_peak_from=out)) == choice["min_lesion_peak"]


def test_no_validation_case_is_refused(tmp_path):
    with pytest.raises(ValueError, match="needs validation cases"):
        choose_lesion_peak([], [], [], (-150, 250), tmp_path / "lesion_peak.json")
    assert not (tmp_path / "lesion_peak.json").exists()
