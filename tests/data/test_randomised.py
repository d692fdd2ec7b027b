import json
from dataclasses import replace

import numpy as np
import pytest
import yaml
from scipy import ndimage

from liverseg.data.randomised import RandomisedRanges, draw_style, randomised_styles
from liverseg.data.synthetic import LIVER, RANDOMISED_FIRST, TUMOUR, case_seed, generate_dataset, make_case
from tests.helpers import ROOT

RANGES = RandomisedRanges()
STYLES = randomised_styles(12, 5, RANGES)


def test_every_case_draws_its_own_design_within_the_ranges_and_seeded():
    assert randomised_styles(12, 5, RANGES) == STYLES, "seeded"
    assert randomised_styles(12, 6, RANGES) != STYLES
    for name in ("liver_hu", "kidney_hu", "muscle_hu", "visceral_fat_hu", "quantum_noise_hu"):
        values = [getattr(style, name) for style in STYLES]
        low, high = getattr(RANGES, name)
        assert len(set(values)) == len(values), f"{name}: one value per case"
        assert all(low <= v[0] <= high if isinstance(v, tuple) else low <= v <= high for v in values), name
    assert {style.liver_centred for style in STYLES} == {True, False}
    assert len({style.slice_mm for style in STYLES}) == 12
    assert all(0.7 <= style.slice_mm[0] <= 5.0 for style in STYLES)
    assert any(style.ascites_mm > 0 for style in STYLES) and any(style.ascites_mm == 0 for style in STYLES)
    spans = [style.coverage for style in STYLES if not style.liver_centred]
    assert len(set(spans)) == len(spans) and all(-0.6 <= low <= 0 and 1 <= high <= 1.6 for low, high in spans)
    assert all(style.coverage == (0.0, 1.0) for style in STYLES if style.liver_centred), "centred on the liver"


def test_anatomy_stays_anatomy_and_the_scan_stays_bounded():
    assert sum(style.coverage[1] > 1.2 for style in STYLES[:6]) >= 2, "some of them reach into the chest"
    for k, style in enumerate(STYLES[:6]):
        case = make_case(case_seed(3, RANDOMISED_FIRST + k), style)
        assert case.image.shape[2] <= RANGES.max_slices
        liver = case.label >= LIVER
        assert liver.any()
        centre_x = np.argwhere(liver)[:, 0].mean() * case.spacing[0]
        body_x = np.argwhere(case.image > -500)[:, 0].mean() * case.spacing[0]
        assert centre_x > body_x, "the liver on the patient's right (canonical RAS axis 0)"
        spine = np.argwhere(case.image > 450)[:, 1].mean()
        assert spine < np.argwhere(liver)[:, 1].mean(), "the spine behind the liver"
        liver_hu = float(np.median(case.image[case.label == LIVER]))
        assert abs(liver_hu - style.liver_hu[0]) < 25 + 2 * style.bias_hu, "the drawn liver HU"
        above = case.image[:, :, np.argwhere(liver)[:, 2].max() + 2 :]
        if style.coverage[1] > 1.2:
            assert ((above > -920) & (above < -700)).sum() > 0.2 * (above > -920).sum(), "lungs above the liver"


@pytest.mark.parametrize("kind", ["cystic", "rim-enhancing", "calcified"])
def test_lesion_kinds(kind):
    style = replace(STYLES[0], lesion_kinds=((kind, 1.0),), lesion_radius_mm=(12.0, 16.0), quantum_noise_hu=(2, 2))
    style = replace(style, mottle_hu=5.0, bias_hu=0.0, liver_hu=(110, 110), lesion_contrast_hu=(50, 50))
    case = next(c for c in (make_case(seed, style) for seed in range(20)) if (c.label == TUMOUR).sum() > 500)
    lesions, count = ndimage.label(case.label == TUMOUR)
    sizes = ndimage.sum(np.ones_like(lesions), lesions, range(1, count + 1))
    lesion = lesions == 1 + int(np.argmax(sizes))
    core = ndimage.binary_erosion(lesion, iterations=2)
    rim = lesion & ~ndimage.binary_erosion(lesion)
    if kind == "cystic":
        assert -15 < np.median(case.image[core]) < 35, "fluid"
    elif kind == "rim-enhancing":
        assert np.median(case.image[rim]) > np.median(case.image[core]) + 30, "a bright rim round a darker core"
    else:
        assert case.image[lesion].max() > 250 and np.median(case.image[rim]) < 110, "a calcified core"


def test_ranges_come_from_the_config_and_unknown_names_are_refused():
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    assert RandomisedRanges.from_dict(config["data"]["synthetic"]["randomised"]["ranges"]) == RANGES
    narrow = RandomisedRanges.from_dict({"liver_hu": [60, 61], "bowel_hu": [[300, 301]]})
    style = draw_style(np.random.default_rng(0), narrow)
    assert 60 <= style.liver_hu[0] <= 61 and 300 <= style.bowel_hu <= 301
    with pytest.raises(ValueError, match="livr_hu"):
        RandomisedRanges.from_dict({"livr_hu": [60, 61]})
    with pytest.raises(ValueError, match="unknown lesion kinds .'cystc'"):
        RandomisedRanges.from_dict({"lesion_kinds": [["cystc", 1.0]]})


def test_randomised_cases_are_numbered_apart_and_leave_the_others_as_they_were_with_any_threads(tmp_path):
    generate_dataset(tmp_path / "plain", cases=2, seed=4)
    numbers = generate_dataset(tmp_path / "mixed", cases=2, seed=4, randomised=STYLES[:2])
    assert numbers == [0, 1, RANDOMISED_FIRST, RANDOMISED_FIRST + 1]
    for name in ("volume-0.nii.gz", "segmentation-1.nii.gz"):
        assert (tmp_path / "plain" / name).read_bytes() == (tmp_path / "mixed" / name).read_bytes()
    generate_dataset(tmp_path / "threaded", cases=2, seed=4, randomised=STYLES[:2], threads=3)
    for made in (tmp_path / "mixed").iterdir():
        assert (tmp_path / "threaded" / made.name).read_bytes() == made.read_bytes(), "made at once, the same files"
    designs = json.loads((tmp_path / "mixed" / "randomised.json").read_text())
    assert sorted(designs) == [f"volume-{RANDOMISED_FIRST}.nii.gz", f"volume-{RANDOMISED_FIRST + 1}.nii.gz"]
    assert designs[f"volume-{RANDOMISED_FIRST}.nii.gz"]["liver_hu"] == list(STYLES[0].liver_hu)
