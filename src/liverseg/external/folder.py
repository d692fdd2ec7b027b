"""Judge trained models on a labelled folder of the user's own: `liverseg evaluate DATA --model M... --out DIR`.

The folder is in the LiTS layout (volume-N.nii / segmentation-N.nii), the MSD layout (imagesTr/ and labelsTr/) or
holds NIfTI pairs (images/NAME.nii.gz with labels/NAME.nii.gz; an image's nnU-Net channel suffix `_0000` is allowed).
Every case is checked as `ingest` checks it, segmented as `liverseg segment` segments it, and scored as the workflow
scores its test cases: `<entry>/pred`, `<entry>/post` and `<entry>/metrics` per case, and the summary table
(`summary.csv`, `summary.md`, `metrics.json`) over all entries. A case that fails its checks is named with its problem
in `rejected.tsv` and the others go on.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from liverseg.atomic import atomic_path
from liverseg.data import nifti
from liverseg.data.cases import check_label, find_cases
from liverseg.devices import select_device
from liverseg.evaluation.evaluate import score_labels
from liverseg.inference.segment import NIFTI_SUFFIXES, read_scan, scan_name
from liverseg.reporting.summary import read_case_scores, summarise
from liverseg.reporting.tables import write_summary
from liverseg.tracking.segmenters import load_segmenter


def find_pairs(folder: Path) -> tuple[dict[str, tuple[Path, Path]], list[dict]]:
    """Case name -> (image, label) of images/ and labels/, and one rejection row per file without its partner."""

    def nifti_files(sub: str) -> dict[str, Path]:
        files = sorted(p for p in (folder / sub).iterdir() if p.name.endswith(NIFTI_SUFFIXES) and p.name[0] != ".")
        return {scan_name(p).removesuffix("_0000") if sub == "images" else scan_name(p): p for p in files}

    images, labels = nifti_files("images"), nifti_files("labels")
    found = {name: (images[name], labels[name]) for name in sorted(images.keys() & labels.keys())}
    rejected = [
        {"case": n, "file": str(images[n]), "reason": "no label file"} for n in sorted(images.keys() - labels.keys())
    ]
    rejected += [
        {"case": n, "file": str(labels[n]), "reason": "a label file without its image"}
        for n in sorted(labels.keys() - images.keys())
    ]
    return found, rejected


def detect_layout(folder: Path) -> str:
    if any(folder.glob("**/imagesTr")):
        return "msd"
    if any(folder.glob("**/volume-*.nii*")):
        return "lits"
    if (folder / "images").is_dir() and (folder / "labels").is_dir():
        return "pairs"
    raise FileNotFoundError(
        f"{folder}: neither the LiTS layout (volume-N.nii with segmentation-N.nii), the MSD layout (imagesTr/ and "
        "labelsTr/) nor NIfTI pairs (images/ and labels/)"
    )


def labelled_cases(folder: Path, layout: str = "auto") -> tuple[dict[str, tuple[Path, Path]], list[dict]]:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    layout = detect_layout(folder) if layout == "auto" else layout
    return find_pairs(folder) if layout == "pairs" else find_cases(folder, layout)


def evaluate_folder(
    folder: Path,
    models: list[str],
    out_dir: Path,
    layout: str = "auto",
    device: str = "auto",
    flip_tta: bool | None = None,
    tracking_uri: str | None = None,
    scored_on: str = "folder",
    min_lesion_peak: float | None = None,
) -> tuple[pd.DataFrame, list[dict]]:
    """Segment and score every labelled case with every model (mirrored as each segmenter describes, unless
    `flip_tta` says for every stage; each cascade's lesions cut at its described lowest peak, unless
    `min_lesion_peak` says for all); returns the summary table (its note naming the cases as `scored_on` does:
    `liverseg.reporting.tables.SCORED_ON`) and the rejected files."""
    cases, rejected = labelled_cases(folder, layout)
    dev = select_device(device)
    segmenters = [load_segmenter(model, dev, tracking_uri) for model in models]
    if min_lesion_peak is not None:
        if not any(segmenter.cascade for segmenter in segmenters):
            raise ValueError(f"a lowest lesion peak is for a cascade's tumour stage; {', '.join(models)}: none is one")
        segmenters = [s.with_min_lesion_peak(min_lesion_peak) if s.cascade else s for s in segmenters]
    names = [segmenter.name for segmenter in segmenters]
    if len(set(names)) < len(names):
        raise ValueError(f"two of the models are both named {sorted({n for n in names if names.count(n) > 1})}")
    score_files = []
    for case, (volume, label) in cases.items():
        try:
            scan, _ = read_scan(volume)
            check_label(label, scan, volume)
            reference = nifti.load(label)
            ref = nifti.to_canonical(reference, dtype=np.uint8)
        except (ValueError, FileNotFoundError) as error:  # VolumeError included: name it, keep going
            named = str(error) if str(error).startswith((str(volume), str(label))) else f"{volume}: {error}"
            print(f"liverseg evaluate: error: {named}", file=sys.stderr, flush=True)
            rejected.append({"case": case, "file": str(volume), "reason": named})
            continue
        for segmenter in segmenters:
            entry = out_dir / segmenter.name
            unprocessed = segmenter.unprocessed(scan, dev, flip_tta)
            labels = segmenter.postprocessed(unprocessed, scan)
            for stage, values in (("pred", unprocessed), ("post", labels)):
                nifti.save_label_like(values, scan, entry / stage / f"{case}.nii.gz")
            score_files.append(entry / "metrics" / f"{case}.json")
            score_labels(segmenter.name, case, reference, ref, unprocessed, labels, segmenter.post, score_files[-1])
            print(f"{case}: {segmenter.name} scored", flush=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "rejected.tsv") as partial:
        pd.DataFrame(rejected, columns=["case", "file", "reason"]).to_csv(partial, sep="\t", index=False)
    if not score_files:
        raise ValueError(f"{folder}: no case could be scored (see {out_dir / 'rejected.tsv'})")
    scores, lesions = read_case_scores(score_files)
    with atomic_path(out_dir / "cases.csv") as partial:
        scores.to_csv(partial, index=False, float_format="%.6g")
    summary = summarise(scores, lesions, {segmenter.name: segmenter.histories for segmenter in segmenters})
    write_summary(
        summary, out_dir / "summary.csv", out_dir / "summary.md", out_dir / "metrics.json", scored_on=scored_on
    )
    return summary, rejected
