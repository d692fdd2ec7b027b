"""Seeded synthetic contrast-enhanced abdominal CT, written in the LiTS layout.

Each case is built slice by slice in canonical RAS voxel space (axis 0 towards the patient's right, axis 1 anterior,
axis 2 superior) and in millimetres, so organ sizes stay physical whatever the spacing. The phantom is meant to be a
real test of a segmentation model: the liver sits among organs of similar attenuation (spleen, kidneys, vessels),
tumours range from a few voxels to several centimetres, hypo- or hyperdense, from faint (20 HU) to strong (70 HU), and the noise, spacing, size and
storage orientation change between cases.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from liverseg.atomic import atomic_dir

BACKGROUND, LIVER, TUMOUR = 0, 1, 2
AIR_HU = -1000.0
STORAGE_ORIENTATIONS = (("R", "A", "S"), ("L", "P", "S"), ("L", "A", "S"), ("R", "P", "I"))
LESION_KINDS = ("hypodense", "hyperdense", "rim-enhancing", "cystic", "calcified")


@dataclass(frozen=True)
class Organ:
    """An elliptic cross-section whose size follows the z fraction t in [0, 1] (0 inferior, 1 superior)."""

    centre: tuple[float, float]  # mm from the slice centre: (towards right, towards anterior)
    semi_axes: tuple[float, float]  # mm at the organ's widest slice
    z_range: tuple[float, float]  # fractions of the scanned length
    harmonics: tuple[tuple[float, float], ...] = ()  # (amplitude, phase) of the outline for k = 2, 3, ...

    def mask(self, u: np.ndarray, v: np.ndarray, t: float) -> np.ndarray:
        lo, hi = self.z_range
        if not lo < t < hi:
            return np.zeros(u.shape, dtype=bool)
        profile = np.sqrt(1.0 - ((2.0 * t - lo - hi) / (hi - lo)) ** 2)
        du, dv = (u - self.centre[0]) / self.semi_axes[0], (v - self.centre[1]) / self.semi_axes[1]
        theta = np.arctan2(dv, du)
        outline = 1.0 + sum(a * np.cos(k * theta + p) for k, (a, p) in enumerate(self.harmonics, start=2))
        return du**2 + dv**2 <= (profile * outline) ** 2

    def core(self, inset_mm: float = 0.0, scale: float = 1.0) -> Organ:
        """The ellipse inside this organ (a wall's inside, a bone's marrow, a kidney's medulla): its semi-axes scaled,
        then inset, over the same slices, without the outline's harmonics."""
        return Organ(self.centre, tuple(scale * a - inset_mm for a in self.semi_axes), self.z_range)


@dataclass(frozen=True)
class PhantomStyle:
    """The generator's ranges that a model could otherwise learn by heart; `SHIFTED` draws from other ones."""

    liver_hu: tuple[float, float] = (95, 125)
    lesion_contrast_hu: tuple[float, float] = (20, 70)  # faint to strong, below (hypodense) or above the liver
    hypodense_share: float = 0.5  # both polarities often enough to be learned (at 0.75, 7 of 36 training lesions)
    lesion_radius_mm: tuple[float, float] = (1.8, 26.0)  # log-uniform
    outline_amplitude: float = 0.08  # how far organ outlines depart from ellipses
    mottle_hu: float = 40.0  # low-frequency texture
    quantum_noise_hu: tuple[float, float] = (8, 18)
    # contrast phase: the other tissues' HU (spleen and vessels relative to the liver)
    spleen_offset_hu: tuple[float, float] = (-8, 15)
    kidney_hu: tuple[float, float] = (150, 190)
    aorta_hu: tuple[float, float] = (150, 200)
    ivc_hu: tuple[float, float] = (120, 150)
    vessel_offset_hu: tuple[float, float] = (40, 70)
    bowel_hu: float = 30.0  # bowel wall and content; oral contrast makes it bright
    bowel_share: float = 0.4  # of the cavity's front part: from a few loops to a belly full of them
    ascites_mm: float = 0.0  # fluid (0 to 20 HU) filling the peritoneal cavity this far around the liver and bowel
    # the field of view: the whole body, or a reconstruction centred on the liver that cuts the body wall
    field_of_view_mm: tuple[float, float] = (360, 440)
    liver_centred: bool = False
    slice_mm: tuple[float, ...] = (2.5, 3.0, 4.0, 5.0)
    max_slices: int = 0  # a cap on the number of slices; 0: none
    body_scale: tuple[float, float] = (0.88, 1.12)  # the patient's size
    muscle_hu: float = 45.0
    fat_hu: float = -100.0  # subcutaneous
    visceral_fat_hu: float = -85.0  # between the organs; a lean patient's is closer to soft tissue
    # lesion kinds and their weights (hypodense, hyperdense, rim-enhancing, cystic, calcified); empty: the polarity is
    # drawn with hypodense_share
    lesion_kinds: tuple[tuple[str, float], ...] = ()
    blur_mm: float = 0.0  # partial-volume blur, in mm; 0: 0.7 voxels in plane and 0.3 across slices
    mottle_px: float = 3.0  # the texture's grain
    bias_hu: float = 0.0  # largest HU of a smooth additive bias over the volume
    # the anatomy the slices span, in lengths of the upper abdomen's (0 below the kidneys, 1 at the diaphragm's dome);
    # above 1, the chest (lung bases, the heart on the diaphragm), below 0, the pelvis (iliac bones, psoas, bladder)
    coverage: tuple[float, float] = (0.0, 1.0)


DEFAULT_STYLE = PhantomStyle()
# cases of another design, for checking models on what they never saw: a darker liver, fainter lesions, most of them
# hyperdense, lumpier organs, coarser texture and more noise
SHIFTED = PhantomStyle(
    liver_hu=(70, 95),
    lesion_contrast_hu=(15, 45),
    hypodense_share=0.3,
    lesion_radius_mm=(3.0, 20.0),
    outline_amplitude=0.15,
    mottle_hu=70.0,
    quantum_noise_hu=(15, 28),
)


# designs no training draws from, to judge models on what they never saw (issue 19: fixed before any training)
NON_CONTRAST = PhantomStyle(
    liver_hu=(40, 60),
    lesion_contrast_hu=(8, 20),
    hypodense_share=1.0,
    spleen_offset_hu=(5, 12),  # spleen brighter than the liver, as without contrast it often is not after it
    kidney_hu=(25, 40),
    aorta_hu=(35, 50),
    ivc_hu=(30, 45),
    vessel_offset_hu=(-12, -4),  # unenhanced veins are darker than the liver
)
LIVER_CENTRED = PhantomStyle(field_of_view_mm=(250, 300), liver_centred=True, slice_mm=(1.0, 1.25, 1.5))
ASCITES_ORAL_CONTRAST = PhantomStyle(bowel_hu=280.0, ascites_mm=12.0)
# a lean patient: soft tissue instead of fat between the organs and a belly full of collapsed loops at about the
# liver's HU, on which models trained on fat between the organs take the soft tissue below the liver for liver
LEAN = PhantomStyle(visceral_fat_hu=35.0, bowel_hu=55.0, bowel_share=0.6, body_scale=(0.8, 0.92), fat_hu=-90.0)
# a scan from the chest to the pelvis, as most LiTS volumes are (74 to 987 slices): lung bases reaching down behind the
# liver, the heart on the diaphragm right above the liver, its wall at about the liver's HU; iliac bones, psoas
# muscles and the bladder below (the phantoms of every other design end at the diaphragm and the kidneys)
CHEST_TO_PELVIS = PhantomStyle(coverage=(-0.6, 1.6))
DESIGNS = {
    "default": DEFAULT_STYLE,
    "shifted": SHIFTED,
    "non-contrast": NON_CONTRAST,
    "liver-centred": LIVER_CENTRED,
    "ascites-oral-contrast": ASCITES_ORAL_CONTRAST,
    "lean": LEAN,
    "chest-to-pelvis": CHEST_TO_PELVIS,
}


@dataclass(frozen=True)
class Case:
    image: np.ndarray  # HU, int16, canonical RAS
    label: np.ndarray  # uint8, canonical RAS
    spacing: tuple[float, float, float]
    orientation: tuple[str, str, str]  # axis codes of the stored file


def _jitter(rng: np.random.Generator, value: float, spread: float) -> float:
    return float(value + rng.uniform(-spread, spread))


def _outline(rng: np.random.Generator, n: int = 3, amplitude: float = 0.08) -> tuple[tuple[float, float], ...]:
    return tuple((float(rng.uniform(0, amplitude)), float(rng.uniform(0, 2 * np.pi))) for _ in range(n))


def _anatomy(rng: np.random.Generator, amplitude: float, body_scale: tuple[float, float]) -> dict[str, Organ]:
    """Organ placement for one patient, varied around a typical upper abdomen."""
    s = rng.uniform(*body_scale)  # patient size
    j = lambda value, spread: _jitter(rng, value, spread)  # noqa: E731 - local shorthand
    return {
        "body": Organ((0, j(0, 5)), (s * j(165, 10), s * j(118, 8)), (-1, 2), _outline(rng, 2, 0.03)),
        "liver": Organ(
            (s * j(52, 6), s * j(4, 5)),
            (s * j(78, 6), s * j(82, 6)),
            (j(0.36, 0.05), j(0.97, 0.02)),
            _outline(rng, 3, amplitude),
        ),
        # the left lobe reaches across the midline in the upper slices
        "left_lobe": Organ(
            (s * j(-12, 6), s * j(38, 5)),
            (s * j(48, 6), s * j(30, 4)),
            (j(0.6, 0.04), j(0.93, 0.02)),
            _outline(rng, 3, amplitude),
        ),
        "spleen": Organ(
            (s * j(-92, 6), s * j(-38, 6)),
            (s * j(34, 4), s * j(52, 5)),
            (j(0.5, 0.04), j(0.86, 0.04)),
            _outline(rng, 3, amplitude),
        ),
        "stomach": Organ(
            (s * j(-52, 6), s * j(30, 6)),
            (s * j(42, 5), s * j(36, 5)),
            (j(0.5, 0.04), j(0.84, 0.03)),
            _outline(rng, 3, amplitude),
        ),
        "kidney_r": Organ(
            (s * j(62, 5), s * j(-48, 5)),
            (s * j(28, 3), s * j(36, 3)),
            (j(0.02, 0.02), j(0.48, 0.04)),
            _outline(rng, 3, amplitude),
        ),
        "kidney_l": Organ(
            (s * j(-62, 5), s * j(-48, 5)),
            (s * j(28, 3), s * j(36, 3)),
            (j(0.08, 0.03), j(0.56, 0.04)),
            _outline(rng, 3, amplitude),
        ),
        "vertebra": Organ((0, s * j(-62, 3)), (s * 22, s * 19), (-1, 2)),
        "canal": Organ((0, s * j(-88, 2)), (s * 8, s * 7), (-1, 2)),
        "aorta": Organ((s * j(-14, 2), s * j(-33, 2)), (11, 11), (-1, 2)),
        "ivc": Organ((s * j(20, 2), s * j(-26, 2)), (12, 9), (-1, 0.9)),
    }


# organs that run the scan's whole length at the upper abdomen's size, in the chest and pelvis too
TRUNK = ("body", "vertebra", "canal", "aorta", "ivc")


def _chest_and_pelvis(rng: np.random.Generator, body: Organ) -> dict[str, Organ]:
    """The organs above the diaphragm and below the kidneys, placed for the patient's body size."""
    su, sv = body.semi_axes[0] / 165, body.semi_axes[1] / 118
    j = lambda value, spread: _jitter(rng, value, spread)  # noqa: E731 - local shorthand
    side = lambda name, u, v, a, b, z: {  # noqa: E731 - a left-right pair
        f"{name}_r": Organ((su * j(u, 4), sv * j(v, 4)), (su * a, sv * b), z),
        f"{name}_l": Organ((-su * j(u, 4), sv * j(v, 4)), (su * a, sv * b), z),
    }
    return {
        "heart": Organ(
            (su * j(-22, 6), sv * j(26, 5)),
            (su * j(62, 5), sv * j(50, 4)),
            (j(1.0, 0.02), j(1.75, 0.05)),
            _outline(rng, 3, 0.05),
        ),
        "bladder": Organ((0, sv * j(42, 5)), (su * j(45, 6), sv * j(30, 4)), (-1.6, j(-0.55, 0.05))),
        **side("ilium", 80, -32, 36, 11, (-1.5, j(-0.08, 0.04))),
        **side("psoas", 38, -56, 20, 16, (-2.0, 0.0)),
    }


def _ribs(u: np.ndarray, v: np.ndarray, body: Organ, t: float) -> np.ndarray:
    """Small bony cross-sections along the inside of the body wall, in the upper slices only."""
    ribs = np.zeros(u.shape, dtype=bool)
    if t < 0.42:
        return ribs
    a, b = body.semi_axes[0] - 22, body.semi_axes[1] - 20
    for angle in np.deg2rad(np.arange(-160, 161, 32) + 12 * t):
        cu, cv = body.centre[0] + a * np.sin(angle), body.centre[1] + b * np.cos(angle)
        if cv < -60:  # no ribs behind the spine's level
            continue
        ribs |= ((u - cu) / 7.0) ** 2 + ((v - cv) / 4.5) ** 2 <= 1.0
    return ribs


def _intrahepatic_vessels(u: np.ndarray, v: np.ndarray, liver: Organ, t: float, k: int) -> np.ndarray:
    """Enhanced portal and hepatic vein branches: part of the liver label, brighter than the parenchyma."""
    vessels = np.zeros(u.shape, dtype=bool)
    cu, cv = liver.centre
    for n in range(4):
        angle = 0.9 * n + 1.7 * t + 0.2 * k
        reach = 0.25 + 0.12 * n
        pu, pv = cu + reach * liver.semi_axes[0] * np.cos(angle), cv + reach * liver.semi_axes[1] * np.sin(angle)
        vessels |= (u - pu) ** 2 + (v - pv) ** 2 <= (5.0 - 0.7 * n) ** 2
    return vessels


def _place_tumours(
    rng: np.random.Generator, liver: np.ndarray, spacing, count: int, style: PhantomStyle
) -> list[tuple[np.ndarray, str]]:
    """Ellipsoids centred inside the liver, radii log-uniform from about a voxel to several centimetres."""
    inside = np.argwhere(liver)
    grid = np.indices(liver.shape, dtype=np.float32)
    tumours = []
    for _ in range(count):
        centre = inside[rng.integers(len(inside))]
        radius = float(np.exp(rng.uniform(*np.log(style.lesion_radius_mm))))
        axes = radius * rng.uniform(0.7, 1.3, size=3)
        lo = np.maximum(centre - np.ceil(axes / spacing) - 1, 0).astype(int)
        hi = np.minimum(centre + np.ceil(axes / spacing) + 2, liver.shape).astype(int)
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        dist = sum(((grid[d][box] - centre[d]) * spacing[d] / axes[d]) ** 2 for d in range(3))
        mask = np.zeros(liver.shape, dtype=bool)
        mask[box] = (dist <= 1.0) & liver[box]
        if not mask.any():
            mask[tuple(centre)] = True  # a tumour smaller than a voxel still marks the voxel it sits in
        if style.lesion_kinds:
            names, weights = zip(*style.lesion_kinds)
            kind = str(rng.choice(names, p=np.array(weights) / sum(weights)))
        else:
            kind = "hypodense" if rng.random() < style.hypodense_share else "hyperdense"
        tumours.append((mask, kind))
    return tumours


def _paint_lesion(
    image: np.ndarray, mask: np.ndarray, kind: str, liver_hu: float, contrast: float, spacing, rng: np.random.Generator
) -> None:
    """A lesion's HU: below or above the liver; a hypodense core in a bright rim; fluid (a cyst); or a hypodense lesion
    with a calcified core."""
    if kind in ("hypodense", "hyperdense"):
        image[mask] = liver_hu - contrast if kind == "hypodense" else liver_hu + contrast
        return
    box = ndimage.find_objects(mask.astype(np.uint8))[0]
    box = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in box)
    inner = ndimage.distance_transform_edt(mask[box], sampling=spacing)  # mm from the lesion's edge
    region = image[box]
    if kind == "cystic":
        region[mask[box]] = rng.uniform(0, 20)
    elif kind == "rim-enhancing":
        region[mask[box]] = liver_hu - contrast
        region[mask[box] & (inner <= rng.uniform(1.5, 4.0))] = liver_hu + 0.8 * contrast
    else:  # calcified
        region[mask[box]] = liver_hu - contrast
        region[mask[box] & (inner >= 0.6 * inner.max())] = rng.uniform(300, 900)


def _bias_field(rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    """A smooth field of largest magnitude 1: cubic interpolation of a 4x4x2 grid of normal draws."""
    coarse = rng.normal(size=(4, 4, 2))
    field = ndimage.zoom(coarse, np.array(shape) / coarse.shape, order=3, grid_mode=True, mode="nearest")
    return (field / np.abs(field).max()).astype(np.float32)


def make_case(seed: int, style: PhantomStyle = DEFAULT_STYLE) -> Case:
    """One synthetic patient: HU image and labels (0 background, 1 liver, 2 tumour) in canonical RAS order."""
    rng = np.random.default_rng(seed)
    nx = int(rng.choice([192, 224, 256]))
    ny = int(nx - rng.choice([0, 32]))
    nz = int(rng.integers(32, 65))
    in_plane = rng.uniform(*style.field_of_view_mm) / max(nx, ny)  # by default it holds the whole body
    spacing = (float(in_plane), float(in_plane), float(rng.choice(style.slice_mm)))
    organs = _anatomy(rng, style.outline_amplitude, style.body_scale)
    # a liver-centred reconstruction: the slices' centre on the liver, 200 to 260 mm of thin slices (nz is still
    # drawn above, so that every later draw is the same patient's as in the other designs)
    centre = organs["liver"].centre if style.liver_centred else (0.0, 0.0)
    if style.liver_centred:
        nz = int(np.ceil(rng.uniform(200, 260) / spacing[2]))
    low, high = style.coverage
    nz = int(round(nz * (high - low)))  # the anatomy keeps its size in mm
    nz = min(nz, style.max_slices or nz)
    u = (np.arange(nx) - nx / 2 + 0.5)[:, None] * spacing[0] * np.ones((1, ny)) + centre[0]
    v = (np.arange(ny) - ny / 2 + 0.5)[None, :] * spacing[1] * np.ones((nx, 1)) + centre[1]
    liver_hu = rng.uniform(*style.liver_hu)
    densities = {
        "spleen": liver_hu + rng.uniform(*style.spleen_offset_hu),
        "kidney": rng.uniform(*style.kidney_hu),
        "aorta": rng.uniform(*style.aorta_hu),
        "ivc": rng.uniform(*style.ivc_hu),
        "vessel": liver_hu + rng.uniform(*style.vessel_offset_hu),
    }
    image = np.full((nx, ny, nz), AIR_HU, dtype=np.float32)
    label = np.zeros((nx, ny, nz), dtype=np.uint8)
    gas_side = rng.uniform(0.2, 0.5)
    bowel_field = ndimage.gaussian_filter(rng.normal(size=(nx, ny, nz)).astype(np.float32), sigma=(5, 5, 1.5))
    bowel_level, gas_level = np.quantile(bowel_field, [1.0 - style.bowel_share, 0.93])
    beyond = low < 0 or high > 1
    if beyond:  # from a stream of its own, so that the abdomen is the same patient's as in the other designs
        extra_rng = np.random.default_rng([seed, 7])
        extra = _chest_and_pelvis(extra_rng, organs["body"])
        lung_field = ndimage.gaussian_filter(extra_rng.normal(size=(nx, ny, nz)).astype(np.float32), (1.5, 1.5, 1))
        lung_vessel_level = np.quantile(lung_field, 0.95)
        recess = np.maximum(np.clip(-v / 90.0, 0.0, 1.0), np.clip((np.abs(u) - 60.0) / 60.0, 0.0, 1.0))
        chambers = extra["heart"].core(scale=0.7)
        marrows = {side: extra[side].core(inset_mm=4) for side in ("ilium_r", "ilium_l")}
    dome = organs["liver"].z_range[1]
    body = organs["body"]
    walls = {"inner": body.core(inset_mm=14), "cavity": body.core(inset_mm=24)}
    medullas = {side: organs[side].core(scale=0.55) for side in ("kidney_r", "kidney_l")}
    trabecular = organs["vertebra"].core(inset_mm=4)
    for k in range(nz):
        t = low + (high - low) * (k + 0.5) / nz
        trunk = min(max(t, 0.0), 1.0)
        m = {name: organ.mask(u, v, trunk if name in TRUNK else t) for name, organ in organs.items()}
        inner, cavity = (wall.mask(u, v, trunk) for wall in walls.values())
        sl = image[:, :, k]
        sl[m["body"]] = style.fat_hu  # subcutaneous fat
        sl[inner] = style.muscle_hu  # abdominal wall and back muscles
        sl[cavity] = style.visceral_fat_hu
        bowel = cavity & (bowel_field[:, :, k] > bowel_level) & (v > -40)
        sl[bowel] = style.bowel_hu
        sl[bowel & (bowel_field[:, :, k] > gas_level)] = -700.0  # gas in the bowel
        if beyond:
            e = {name: organ.mask(u, v, t) for name, organ in extra.items()}
            # lungs above the diaphragm, a dome whose recesses reach lower at the back and the sides
            lungs = cavity & (t > dome - 0.12 * recess)
            sl[lungs] = -860.0
            sl[lungs & (lung_field[:, :, k] > lung_vessel_level)] = densities["aorta"] - 40.0
            sl[e["heart"]] = liver_hu - 5.0  # the heart's wall
            sl[chambers.mask(u, v, t)] = densities["aorta"]  # its blood
            sl[e["bladder"]] = 8.0
            sl[e["psoas_r"] | e["psoas_l"]] = style.muscle_hu
            for side, marrow in marrows.items():
                sl[e[side]] = 600.0
                sl[marrow.mask(u, v, t)] = 230.0
        sl[m["stomach"]] = 15.0
        sl[m["stomach"] & (v > organs["stomach"].centre[1] + gas_side * organs["stomach"].semi_axes[1])] = -900.0
        for side in ("kidney_r", "kidney_l"):
            sl[m[side]] = densities["kidney"]
            sl[medullas[side].mask(u, v, t)] = densities["kidney"] - 60.0
        sl[m["spleen"]] = densities["spleen"]
        liver = (m["liver"] | m["left_lobe"]) & cavity
        if style.ascites_mm > 0:  # fluid in the visceral fat next to the liver and the bowel
            near = ndimage.binary_dilation(liver | bowel, iterations=max(1, int(style.ascites_mm / spacing[0])))
            sl[near & cavity & (sl == np.float32(style.visceral_fat_hu))] = 12.0
        sl[liver] = liver_hu
        sl[liver & _intrahepatic_vessels(u, v, organs["liver"], t, k)] = densities["vessel"]
        sl[m["aorta"]] = densities["aorta"]
        sl[m["ivc"] & ~liver] = densities["ivc"]
        sl[m["vertebra"]] = 600.0
        sl[trabecular.mask(u, v, t)] = 230.0
        sl[m["canal"]] = 20.0
        ribs = _ribs(u, v, organs["body"], t)
        sl[ribs] = 650.0
        label[:, :, k][liver & ~(m["aorta"] | m["vertebra"] | m["canal"] | ribs)] = LIVER
    liver = label == LIVER
    if liver.any():
        count = 0 if rng.random() < 0.2 else int(rng.integers(1, 7))
        for mask, kind in _place_tumours(rng, liver, np.array(spacing), count, style):
            contrast = rng.uniform(*style.lesion_contrast_hu)
            _paint_lesion(image, mask, kind, liver_hu, contrast, spacing, rng)
            label[mask] = TUMOUR
    blur = np.array(style.blur_mm) / spacing if style.blur_mm else (0.7, 0.7, 0.3)
    image = ndimage.gaussian_filter(image, sigma=blur)  # partial-volume blur
    image += ndimage.gaussian_filter(
        rng.normal(0, style.mottle_hu, image.shape).astype(np.float32), sigma=(style.mottle_px, style.mottle_px, 0)
    )  # mottle
    image += rng.normal(0, rng.uniform(*style.quantum_noise_hu), image.shape).astype(np.float32)  # quantum noise
    if style.bias_hu:
        image += style.bias_hu * _bias_field(rng, image.shape)
    orientation = STORAGE_ORIENTATIONS[int(rng.integers(len(STORAGE_ORIENTATIONS)))]
    return Case(np.clip(np.rint(image), -1024, 3071).astype(np.int16), label, spacing, orientation)


def canonical_affine(spacing: tuple[float, float, float], shape: tuple[int, int, int]) -> np.ndarray:
    """RAS affine with the scanner origin near the volume's centre, like a real scan's table position."""
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = -np.array(spacing) * (np.array(shape) - 1) / 2.0
    return affine


def write_case(case: Case, volume_path: Path, label_path: Path) -> None:
    """Write volume and labels as NIfTI, reoriented on disk to the case's storage orientation."""
    affine = canonical_affine(case.spacing, case.image.shape)
    to_storage = nib.orientations.ornt_transform(
        nib.orientations.axcodes2ornt(("R", "A", "S")), nib.orientations.axcodes2ornt(case.orientation)
    )
    for data, path in ((case.image, volume_path), (case.label, label_path)):
        image = nib.Nifti1Image(data, affine).as_reoriented(to_storage)
        image.header.set_xyzt_units("mm", "sec")
        image.set_qform(image.affine, code=1)
        image.set_sform(image.affine, code=1)
        nib.save(image, path)


RANDOMISED_FIRST = 1000  # randomised phantoms are numbered from here on, apart from the cases of one design


def case_seed(seed: int, number: int) -> int:
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


def generate_dataset(
    out_dir: Path,
    cases: int,
    seed: int,
    style: PhantomStyle = DEFAULT_STYLE,
    randomised: Sequence[PhantomStyle] = (),
    threads: int = 1,
) -> list[int]:
    """Write `cases` phantoms as volume-N.nii.gz / segmentation-N.nii.gz; case N always gets the same patient.

    `randomised` adds one case per design given, numbered from RANDOMISED_FIRST, and lists their designs in
    randomised.json. Cases are made `threads` at a time (each from its own seed, so the files do not depend on it;
    numpy and compression release the GIL). The folder appears complete or not at all.
    """
    numbered = [(n, style) for n in range(cases)]
    numbered += [(RANDOMISED_FIRST + k, design) for k, design in enumerate(randomised)]

    def make_and_write(n: int, design: PhantomStyle, folder: Path) -> None:
        case = make_case(case_seed(seed, n), design)
        write_case(case, folder / f"volume-{n}.nii.gz", folder / f"segmentation-{n}.nii.gz")

    with atomic_dir(out_dir) as partial, ThreadPoolExecutor(max(1, threads)) as pool:
        for made in [pool.submit(make_and_write, n, design, partial) for n, design in numbered]:
            made.result()  # a failure stops the set, and atomic_dir leaves no folder
        if randomised:
            designs = {f"volume-{n}.nii.gz": asdict(design) for n, design in numbered[cases:]}
            (partial / "randomised.json").write_text(json.dumps(designs, indent=1) + "\n")
    return [n for n, _ in numbered]
