"""A scan and its labels as one self-contained HTML page (`liverseg view`): NiiVue shows three planes and a 3D rendering
with the labels over the scan, and the liver's and tumours' volumes stand beside it.

NiiVue's browser build is vendored, not fetched by the page: `liverseg fetch-viewer` (or the workflow's fetch_viewer
rule) downloads its npm package from the registry (pinned, its file checked by SHA-256; npm itself is not needed) into
this package's folder, and each page holds a copy, so it opens offline and on a machine without liverseg. A page
holds the liver's box with a margin (the whole scan where nothing is labelled), thinned in-plane where it would still
be large, so it stays a few MB.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import html
import json
import tarfile
from pathlib import Path

import nibabel as nib
import numpy as np

from liverseg.atomic import atomic_path
from liverseg.data import nifti
from liverseg.data.download import DownloadError, download_part
from liverseg.data.geometry import check_same_grid
from liverseg.evaluation.metrics import overlap_metrics
from liverseg.labels import liver_mask, tumour_mask
from liverseg.roi import bounding_slices

NIIVUE = "@niivue/niivue@0.69.0"
NIIVUE_TARBALL = "@niivue/niivue/-/niivue-0.69.0.tgz"
NIIVUE_FILE = "package/dist/niivue.umd.js"
NIIVUE_SHA256 = "47b896b77ec4a5be3ef1949c33ad393b6f45629921f326c279000bcf51bdb4af"
NPM_REGISTRY = "https://registry.npmjs.org"
VENDORED = Path(__file__).parent / "vendor" / "niivue.umd.js"
MARGIN_MM = 20.0
MAX_VOXELS = 6_000_000  # about 3 MB of int16 scan once gzipped and in base64
LABEL_COLOURS = {"R": [0, 221, 255], "G": [0, 130, 255], "B": [0, 101, 0], "A": [0, 255, 255]}


def fetch_viewer(dest: Path = VENDORED, registry: str = NPM_REGISTRY) -> Path:
    """NiiVue's browser build, taken from its npm package on `registry` and checked, into `dest` (kept where it is
    already there and checks)."""
    dest = Path(dest)
    if dest.is_file() and hashlib.sha256(dest.read_bytes()).hexdigest() == NIIVUE_SHA256:
        print(f"viewer: {dest} is already here and holds {NIIVUE}", flush=True)
        return dest
    url = f"{registry.rstrip('/')}/{NIIVUE_TARBALL}"
    tarball = dest.with_name(Path(NIIVUE_TARBALL).name)
    try:
        part = download_part(url, tarball)
    except DownloadError as error:  # its advice names the package, not the file that `liverseg view` reads
        raise DownloadError(
            f"{NIIVUE}: {url}: download failed ({error.__cause__}); copy {NIIVUE_FILE} of that package to {dest}"
        ) from error
    try:
        with tarfile.open(part) as archive:
            build = archive.extractfile(NIIVUE_FILE).read()
    except (tarfile.TarError, KeyError, AttributeError) as error:
        raise DownloadError(f"{url}: not {NIIVUE}'s package, or damaged ({error})") from error
    finally:
        part.unlink()
    digest = hashlib.sha256(build).hexdigest()
    if digest != NIIVUE_SHA256:
        raise DownloadError(f"{url}: {NIIVUE_FILE} has SHA-256 {digest}, not the pinned {NIIVUE_SHA256}")
    with atomic_path(dest) as partial:
        partial.write_bytes(build)
    return dest


def viewer_script() -> str:
    if not VENDORED.is_file():
        raise FileNotFoundError(f"{VENDORED}: NiiVue is not vendored here; `liverseg fetch-viewer` downloads it")
    return VENDORED.read_text(encoding="utf-8")


def shown_region(labels: np.ndarray, spacing) -> tuple[slice, ...]:
    """The liver's box with MARGIN_MM around it (the whole volume where nothing is labelled), with an in-plane step
    that keeps it under MAX_VOXELS."""
    box = bounding_slices(liver_mask(labels))
    if box is None:
        box = tuple(slice(0, n) for n in labels.shape)
    grown = [
        slice(max(0, b.start - int(MARGIN_MM / s)), min(n, b.stop + int(MARGIN_MM / s)))
        for b, s, n in zip(box, spacing, labels.shape)
    ]
    voxels = np.prod([g.stop - g.start for g in grown])
    step = max(1, int(np.ceil(np.sqrt(voxels / MAX_VOXELS))))
    return (slice(grown[0].start, grown[0].stop, step), slice(grown[1].start, grown[1].stop, step), grown[2])


def embedded(cut: np.ndarray, affine: np.ndarray, region: tuple[slice, ...]) -> str:
    """A volume's `region`, already cut out, as a base64 data URL of a .nii.gz, the affine moved and scaled to it."""
    corner = affine @ np.array([*(r.start for r in region), 1.0])
    scaled = affine.copy()
    scaled[:3, :3] = affine[:3, :3] @ np.diag([r.step or 1 for r in region])
    scaled[:3, 3] = corner[:3]
    packed = gzip.compress(nib.Nifti1Image(np.ascontiguousarray(cut), scaled).to_bytes(), mtime=0)
    return "data:application/gzip;base64," + base64.b64encode(packed).decode("ascii")


def volumes_ml(labels: np.ndarray, voxel_ml: float) -> dict:
    return {
        "liver": float(np.count_nonzero(liver_mask(labels))) * voxel_ml,
        "tumour": float(np.count_nonzero(tumour_mask(labels))) * voxel_ml,
    }


def view_page(scan_path: Path, labels_path: Path, out: Path, reference_path: Path | None = None) -> Path:
    """Write the page of `scan_path` with `labels_path` over it (and, given, the volumes and Dice of a reference)."""
    scan, labels_image = nifti.load(scan_path), nifti.load(labels_path)
    check_same_grid(labels_image, labels_path, scan, scan_path, "scan")
    labels = np.asanyarray(labels_image.dataobj).astype(np.uint8)
    voxel_ml = float(np.prod(nifti.voxel_spacing(scan))) / 1000
    rows = {"labels": volumes_ml(labels, voxel_ml)}
    if reference_path is not None:
        reference_image = nifti.load(reference_path)
        check_same_grid(reference_image, reference_path, scan, scan_path, "scan")
        reference = np.asanyarray(reference_image.dataobj).astype(np.uint8)
        rows["reference"] = volumes_ml(reference, voxel_ml)
        rows["Dice"] = {
            region: overlap_metrics(mask(labels), mask(reference))["dice"]
            for region, mask in (("liver", liver_mask), ("tumour", tumour_mask))
        }
    region = shown_region(labels, nifti.voxel_spacing(scan))
    stored, slope, inter = nifti.stored_voxels(scan)  # only the shown region is scaled to HU
    hu = np.round(stored[region] * slope + inter).astype(np.int16)
    page = PAGE.format(
        title=html.escape(f"{scan_path.name}: {labels_path.name}"),
        table=volume_table(rows),
        script=viewer_script(),
        volumes=json.dumps(
            [
                {"url": embedded(hu, scan.affine, region), "name": "scan.nii.gz", "cal_min": -150, "cal_max": 250},
                {"url": embedded(labels[region], scan.affine, region), "name": "labels.nii.gz", "opacity": 0.6},
            ]
        ),
        colours=json.dumps(LABEL_COLOURS | {"labels": ["", "liver", "tumour"]}),
    )
    with atomic_path(out) as partial:
        partial.write_text(page, encoding="utf-8")
    return out


def volume_table(rows: dict) -> str:
    cells = []
    for name, values in rows.items():
        unit = "" if name == "Dice" else " ml"
        shown = "".join(f"<td>{v:.3f}</td>" if name == "Dice" else f"<td>{v:,.1f}{unit}</td>" for v in values.values())
        cells.append(f"<tr><th>{html.escape(name)}</th>{shown}</tr>")
    return "<table><tr><th></th><th>liver</th><th>tumour</th></tr>" + "".join(cells) + "</table>"


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:0;display:flex;height:100vh}}#view{{flex:1}}
aside{{width:22em;padding:1em}}td,th{{padding:.2em .6em;text-align:right}}canvas{{width:100%;height:100%}}</style>
</head><body><div id="view"><canvas id="gl"></canvas></div>
<aside><h3>{title}</h3>{table}<p>Liver (with its tumours) in orange, tumours in yellow; the patient's right on the
left. Click to move, scroll to step through slices. Drawn by NiiVue, held in this page.</p></aside>
<script>{script}</script>
<script>
(async () => {{
  // radiological convention: the patient's right on the screen's left, as CT is read
  const nv = new niivue.Niivue({{ backColor: [0, 0, 0, 1], show3Dcrosshair: true, isRadiologicalConvention: true }});
  await nv.attachTo("gl");
  await nv.loadVolumes({volumes});
  nv.volumes[1].setColormapLabel({colours});
  nv.setSliceType(nv.sliceTypeMultiplanar);
  nv.opts.multiplanarShowRender = niivue.SHOW_RENDER.ALWAYS;
  nv.updateGLVolume();
  document.body.dataset.drawn = "yes";
}})().catch((error) => {{ document.body.dataset.drawn = "error: " + error; }});
</script></body></html>
"""
