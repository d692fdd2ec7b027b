"""Finding the cases of a raw data folder, checking each one, and describing them in `data/cases.tsv`."""

from __future__ import annotations

import hashlib
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from liverseg.atomic import atomic_path
from liverseg.data import nifti
from liverseg.data.geometry import check_same_grid
from liverseg.labels import VALID as VALID_LABELS
from liverseg.labels import liver_mask, tumour_mask

# CT in Hounsfield units has air around the body (about -1000) and little above dense bone; a scan without any voxel
# below AIR_BELOW_HU, or with more than 1% of its voxels above BONE_ABOVE_HU, was stored unscaled or normalised.
AIR_BELOW_HU = -500.0
BONE_ABOVE_HU = 4000.0


@dataclass(frozen=True)
class Layout:
    images: str  # glob below the raw folder
    number: re.Pattern  # the case number in an image's name
    label_of: callable  # the label path that belongs to an image path
    labels: str  # glob of the label files, to find labels without an image


def _lits_label(image: Path) -> Path:
    return image.with_name(image.name.replace("volume-", "segmentation-", 1))


def _msd_label(image: Path) -> Path:
    return image.parent.parent / "labelsTr" / image.name


LAYOUTS = {
    # LiTS: volume-N.nii / segmentation-N.nii, flat or in Training_Batch1 / Training_Batch2
    "lits": Layout(
        "**/volume-*.nii*", re.compile(r"^volume-(\d+)\.nii(\.gz)?$"), _lits_label, "**/segmentation-*.nii*"
    ),
    # Medical Segmentation Decathlon: imagesTr/<task>_N.nii.gz with the same name in labelsTr
    "msd": Layout("**/imagesTr/*.nii*", re.compile(r"_(\d+)\.nii(\.gz)?$"), _msd_label, "**/labelsTr/*.nii*"),
}


def case_id(number: int) -> str:
    return f"case_{number:03d}"


def _visible(paths):
    """Without macOS `._*` resource forks."""
    return sorted(p for p in paths if not p.name.startswith("._"))


def find_cases(raw_dir: Path, layout: str) -> tuple[dict[str, tuple[Path, Path]], list[dict]]:
    """Case id -> (volume, label) for every paired image, and one rejection row per file that cannot be paired."""
    spec, raw_dir = LAYOUTS[layout], Path(raw_dir)
    found, rejected, seen_labels = {}, [], set()
    for image in _visible(raw_dir.glob(spec.images)):
        match = spec.number.search(image.name)
        if not match:
            continue
        case, label = case_id(int(match.group(1))), spec.label_of(image)
        seen_labels.add(label)
        if case in found:
            rejected.append(_rejection(case, image, f"a second volume for {case} (first: {found[case][0]})"))
        elif not label.exists():
            rejected.append(_rejection(case, image, f"no label file {label}"))
        else:
            found[case] = (image, label)
    for label in _visible(raw_dir.glob(spec.labels)):
        if label not in seen_labels:
            rejected.append(_rejection("", label, "a label file without its volume"))
    if not found and not rejected:
        raise FileNotFoundError(f"{raw_dir}: no volumes in the {layout} layout ({spec.images})")
    return dict(sorted(found.items())), rejected


def _rejection(case: str, path: Path, reason: str) -> dict:
    return {"case": case, "file": str(path), "reason": reason}


def sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def count_where(volume: np.ndarray, condition, slices: int = 32) -> int:
    """Voxels of a 3D array where `condition` holds, a few slices at a time: no mask of the whole volume, whose
    allocation, for a volume read straight from its mapped file, costs more than the count."""
    return sum(
        int(np.count_nonzero(condition(volume[:, :, start : start + slices])))
        for start in range(0, volume.shape[2], slices)
    )


def hu_summary(stored: np.ndarray, slope: float, inter: float) -> tuple[float, float, int, int, bool]:
    """Lowest and highest finite HU, how many voxels are not finite and how many lie above BONE_ABOVE_HU, and whether
    every finite HU is a whole number; read a few slices at a time."""
    if np.issubdtype(stored.dtype, np.integer) and stored.size and slope == 1.0 and float(inter).is_integer():
        # whole numbers shifted by a whole one, exact in float32 below 2**24: one pass over the integers, no copies
        low, high = int(stored.min()) + int(inter), int(stored.max()) + int(inter)
        if max(abs(low), abs(high)) < 2**24:
            above_bone = count_where(stored, lambda block: block > int(BONE_ABOVE_HU - inter))
            return float(low), float(high), 0, above_bone, True
    low, high, not_finite, above_bone, integral = np.inf, -np.inf, 0, 0, True
    for start in range(0, stored.shape[2], 32):
        hu = stored[:, :, start : start + 32].astype(np.float32) * slope + inter
        finite = np.isfinite(hu)
        not_finite += int(np.count_nonzero(~finite))
        if finite.any():
            low, high = min(low, float(hu[finite].min())), max(high, float(hu[finite].max()))
        above_bone += int(np.count_nonzero(hu > BONE_ABOVE_HU))
        integral = integral and bool(np.all(hu[finite] == np.round(hu[finite])))
    return low, high, not_finite, above_bone, integral


def check_ct(image: nib.Nifti1Image, name) -> tuple[float, float]:
    """The checks a CT volume must pass, read a few slices at a time; returns its lowest and highest HU."""
    stored, slope, inter = nifti.stored_voxels(image)
    low, high, not_finite, above_bone, integral = hu_summary(stored, slope, inter)
    if not_finite:
        raise nifti.VolumeError(f"{name}: {not_finite} voxels are NaN or infinite")
    if (
        integral
        and 0 <= low
        and 1 <= high <= 255
        and len(np.unique(stored[:, :, :: max(1, stored.shape[2] // 8)])) <= 16
    ):
        raise nifti.VolumeError(
            f"{name}: holds a few whole values from {low:g} to {high:g}: a label map, not a CT scan"
        )
    if stored.dtype.itemsize == 1 and (slope, inter) == (1.0, 0.0):
        info = np.iinfo(stored.dtype)
        raise nifti.VolumeError(
            f"{name}: stored as {stored.dtype} without scl_slope/scl_inter, so its values run {info.min} to "
            f"{info.max}: that cannot be CT in Hounsfield units (air -1000, bone above 1000); a scan exported for "
            "display, or one that needs its slope and intercept in the header"
        )
    if low >= AIR_BELOW_HU or above_bone > 0.01 * stored.size:
        raise nifti.VolumeError(
            f"{name}: intensities {low:g} to {high:g} do not look like CT in Hounsfield units (air is about -1000; "
            "a raw scanner value needs its scl_slope/scl_inter in the header)"
        )
    return low, high


def check_image(path: Path) -> tuple:
    """The checks a CT volume file must pass; returns (image, min HU, max HU)."""
    image = nifti.load(path)
    low, high = check_ct(image, path)
    return image, low, high


def check_label(path: Path, image: nib.Nifti1Image, volume: Path) -> np.ndarray:
    """The checks a label map must pass against its volume; returns its labels."""
    seg = nifti.load(path)
    check_same_grid(seg, path, image, volume, "volume")
    labels = nifti.voxels(seg, dtype=seg.get_data_dtype())
    if np.issubdtype(labels.dtype, np.integer):  # two passes instead of np.unique's sort of a copy
        low, high = int(labels.min()), int(labels.max())
        if min(VALID_LABELS) <= low and high <= max(VALID_LABELS) and set(range(low, high + 1)) <= VALID_LABELS:
            return labels
    # in memory order: np.unique's own flattening copied a Fortran-ordered NIfTI volume in C order
    values = np.unique(labels.ravel(order="K"))
    if not set(values.tolist()) <= VALID_LABELS:
        unexpected = [v for v in values.tolist() if v not in VALID_LABELS]
        raise nifti.VolumeError(f"{path}: unexpected label values {unexpected[:5]} (allowed 0, 1, 2)")
    return labels


def describe_case(case: str, volume: Path, label: Path) -> dict:
    """One row of the case table, after every check; raises VolumeError naming the file and the problem."""
    image, low, high = check_image(volume)
    labels = check_label(label, image, volume)
    voxel_ml = float(np.prod(nifti.voxel_spacing(image))) / 1000
    nifti.log_geometry(image)
    return {
        "case": case,
        "patient": case,  # LiTS and MSD hold one scan per patient
        "volume": str(volume),
        "label": str(label),
        "shape": "x".join(map(str, image.shape)),
        "spacing": "x".join(f"{s:.4g}" for s in nifti.voxel_spacing(image)),
        "orientation": nifti.orientation_codes(image),
        "dtype": str(image.get_data_dtype()),
        "hu_range": f"{low:g}..{high:g}",
        "liver_ml": round(count_where(labels, liver_mask) * voxel_ml, 3),  # tumour included
        "tumour_ml": round(count_where(labels, tumour_mask) * voxel_ml, 3),
        "volume_sha256": sha256(volume),
        "label_sha256": sha256(label),
    }


def _checked(item: tuple[str, tuple[Path, Path]]) -> dict | nifti.VolumeError:
    """A case's row, or the error that names its bad file (returned, so that the other cases' checks go on)."""
    case, (volume, label) = item
    try:
        return describe_case(case, volume, label)
    except nifti.VolumeError as error:
        return error


def write_cases_table(
    raw_dir: Path, layout: str, out: Path, rejected_out: Path, skip_invalid: bool, threads: int = 1
) -> pd.DataFrame:
    """Check every case, `threads` at a time (decompression, hashing and numpy release the GIL); a failing one stops
    everything, or with `skip_invalid` is listed in `rejected_out`. Rows keep the cases' order."""
    found, rejected = find_cases(raw_dir, layout)
    if rejected and not skip_invalid:
        first = rejected[0]
        raise nifti.VolumeError(f"{first['file']}: {first['reason']}")
    rows = []
    with ThreadPoolExecutor(max(1, threads)) as pool:
        for (case, (volume, _)), checked in zip(found.items(), pool.map(_checked, found.items())):
            if isinstance(checked, dict):
                rows.append(checked)
                print(f"{case}: {volume} checked")
                continue
            if not skip_invalid:
                pool.shutdown(cancel_futures=True)
                raise checked
            file, _, reason = str(checked).partition(": ")
            rejected.append(_rejection(case, Path(file), reason))
    for row in rejected:
        print(f"rejected {row['case'] or '-'}: {row['file']}: {row['reason']}")
    if not rows:
        raise nifti.VolumeError(f"{raw_dir}: no valid case ({len(rejected)} rejected, listed above)")
    table = pd.DataFrame(rows)
    with atomic_path(out) as partial:
        table.to_csv(partial, sep="\t", index=False)
    with atomic_path(rejected_out) as partial:
        pd.DataFrame(rejected, columns=["case", "file", "reason"]).to_csv(partial, sep="\t", index=False)
    return table


def read_cases_table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype=str).set_index("case", drop=False)
