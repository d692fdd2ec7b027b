"""Domain-randomised phantoms: every case draws its own design from wide ranges (after SynthSeg, Billot et al., Medical
Image Analysis 2023), so that a model trained on them learns the liver's shape and place rather than one design's
grey values.

Each tissue's HU is drawn on its own, from a liver without contrast (40 HU) to one in the portal-venous phase (150 HU),
with spleen, kidneys, vessels, muscle and bowel brighter or darker than it; fat from lean to obese, up to soft tissue
between the organs; few or many bowel loops holding fluid, soft content or oral contrast beside their gas; ascites in
some; five lesion kinds from faint to strong; body sizes, fields of view (a third centred on the liver, cutting the
body; the others spanning from the upper abdomen alone to the pelvis and the chest), slice thickness, blur, noise,
texture grain and a smooth bias. The anatomy is the phantom's own (liver on the patient's right, spine behind) in every
storage orientation. A case's design comes from its own seed, apart from its patient's: case N is the same patient with
or without randomisation.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from liverseg.data.synthetic import LESION_KINDS, LIVER_CENTRED, PhantomStyle

Range = tuple[float, float]


@dataclass(frozen=True)
class RandomisedRanges:
    """The ranges each case's design is drawn from (uniform unless said); the config's data.synthetic.randomised.ranges
    overrides any of them."""

    liver_hu: Range = (40, 150)
    spleen_offset_hu: Range = (-40, 40)  # relative to the liver
    kidney_hu: Range = (25, 250)
    aorta_hu: Range = (35, 320)
    ivc_hu: Range = (30, 220)
    vessel_offset_hu: Range = (-20, 80)  # portal and hepatic veins, relative to the liver
    muscle_hu: Range = (30, 75)
    fat_hu: Range = (-130, -70)
    visceral_fat_hu: Range = (-120, 50)  # up to soft tissue between the organs, as in a lean patient
    bowel_hu: tuple[Range, ...] = ((0, 30), (30, 60), (150, 400))  # fluid, soft content, oral contrast: one of them
    bowel_share: Range = (0.2, 0.8)  # of the cavity's front part
    ascites_share: float = 0.3  # cases with ascites
    ascites_mm: Range = (3, 20)
    lesion_contrast_hu: Range = (8, 80)
    lesion_kinds: tuple[tuple[str, float], ...] = (
        ("hypodense", 0.4),
        ("hyperdense", 0.2),
        ("rim-enhancing", 0.15),
        ("cystic", 0.15),
        ("calcified", 0.1),
    )
    lesion_radius_mm: Range = (1.8, 26.0)  # log-uniform between these, per lesion
    outline_amplitude: Range = (0.04, 0.16)
    body_scale: Range = (0.8, 1.25)
    field_of_view_mm: Range = (250, 480)  # of the whole body; a liver-centred one is 250 to 300 mm
    liver_centred_share: float = 0.3
    slice_mm: Range = (0.7, 5.0)
    max_slices: int = 48  # at most this many slices (thin ones centred on the liver would be 370): a bounded set
    blur_mm: Range = (0.3, 1.5)
    mottle_hu: Range = (10, 80)
    mottle_px: Range = (1, 5)
    quantum_noise_hu: Range = (3, 35)
    bias_hu: Range = (0, 40)
    # the anatomy a scan spans (synthetic.PhantomStyle.coverage), past the upper abdomen (0 to 1) into the pelvis
    # below and the chest above the diaphragm (lungs, the heart, whose wall is about the liver's HU), as real scans
    # do; those centred on the liver stay on it
    coverage_low: Range = (-0.6, 0.0)
    coverage_high: Range = (1.0, 1.6)

    @classmethod
    def from_dict(cls, values: dict) -> RandomisedRanges:
        """From the config's ranges (lists for tuples); unknown names are refused by name."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown randomised phantom ranges {unknown}; known: {sorted(known)}")
        as_tuple = lambda v: tuple(as_tuple(x) for x in v) if isinstance(v, list | tuple) else v  # noqa: E731
        ranges = cls(**{key: as_tuple(value) for key, value in values.items()})
        if strange := sorted({name for name, _ in ranges.lesion_kinds} - set(LESION_KINDS)):
            raise ValueError(f"unknown lesion kinds {strange}; known: {list(LESION_KINDS)}")
        return ranges


def draw_style(rng: np.random.Generator, ranges: RandomisedRanges) -> PhantomStyle:
    """One case's design."""
    u = lambda bounds: float(rng.uniform(*bounds))  # noqa: E731 - local shorthand
    liver_centred = bool(rng.random() < ranges.liver_centred_share)
    field_of_view = LIVER_CENTRED.field_of_view_mm if liver_centred else (u(ranges.field_of_view_mm),) * 2
    liver = u(ranges.liver_hu)
    bowel = ranges.bowel_hu[int(rng.integers(len(ranges.bowel_hu)))]
    noise = u(ranges.quantum_noise_hu)
    style = PhantomStyle(
        liver_hu=(liver, liver),
        lesion_contrast_hu=ranges.lesion_contrast_hu,
        lesion_kinds=ranges.lesion_kinds,
        lesion_radius_mm=ranges.lesion_radius_mm,
        outline_amplitude=u(ranges.outline_amplitude),
        mottle_hu=u(ranges.mottle_hu),
        mottle_px=u(ranges.mottle_px),
        quantum_noise_hu=(noise, noise),
        spleen_offset_hu=(u(ranges.spleen_offset_hu),) * 2,
        kidney_hu=(u(ranges.kidney_hu),) * 2,
        aorta_hu=(u(ranges.aorta_hu),) * 2,
        ivc_hu=(u(ranges.ivc_hu),) * 2,
        vessel_offset_hu=(u(ranges.vessel_offset_hu),) * 2,
        bowel_hu=u(bowel),
        ascites_mm=u(ranges.ascites_mm) if rng.random() < ranges.ascites_share else 0.0,
        field_of_view_mm=field_of_view,
        liver_centred=liver_centred,
        slice_mm=(round(u(ranges.slice_mm), 2),),
        max_slices=ranges.max_slices,
        body_scale=ranges.body_scale,
        muscle_hu=u(ranges.muscle_hu),
        fat_hu=u(ranges.fat_hu),
        visceral_fat_hu=u(ranges.visceral_fat_hu),
        blur_mm=u(ranges.blur_mm),
        bias_hu=u(ranges.bias_hu),
        bowel_share=u(ranges.bowel_share),
    )
    # drawn after the others, so that those are the draws of earlier versions
    coverage = (u(ranges.coverage_low), u(ranges.coverage_high))
    return style if liver_centred else replace(style, coverage=coverage)


def randomised_styles(cases: int, seed: int, ranges: RandomisedRanges) -> list[PhantomStyle]:
    """The designs of `cases` randomised phantoms, each from its own seed."""
    # the trailing 19 sets these streams apart from the patients' (SeedSequence([seed, number])) for any seed
    return [draw_style(np.random.default_rng([seed, n, 19]), ranges) for n in range(cases)]
