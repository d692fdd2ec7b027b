"""`liverseg view`: one self-contained page (NiiVue inlined, the scan's liver box embedded, no request to any server),
its volumes and Dice those of the label maps, drawn in headless Chromium (WebGL through SwiftShader); a label map off
the scan's grid is refused by name and writes nothing."""

import re
import subprocess

import nibabel as nib
import numpy as np
import pytest
from matplotlib.image import imread

from liverseg.data.synthetic import make_case, write_case
from liverseg.labels import liver_mask
from liverseg.reporting.viewer import MARGIN_MM, MAX_VOXELS, shown_region
from tests.helpers import program, tool_environment, vendored_viewer

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--enable-unsafe-swiftshader",
    "--use-angle=swiftshader",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1400,800",
    "--virtual-time-budget=20000",
]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    vendored_viewer()
    folder = tmp_path_factory.mktemp("view")
    write_case(make_case(seed=4), folder / "scan.nii.gz", folder / "reference.nii.gz")
    reference = nib.load(folder / "reference.nii.gz")
    labels = np.asanyarray(reference.dataobj).copy()
    labels[labels == 2] = 1  # a segmentation that missed every tumour
    nib.save(nib.Nifti1Image(labels, reference.affine, reference.header), folder / "labels.nii.gz")
    command = ["liverseg", "view", folder / "scan.nii.gz", folder / "labels.nii.gz", "--reference"]
    command += [folder / "reference.nii.gz", "--out", folder / "page.html"]
    result = subprocess.run(
        list(map(str, command)), env=tool_environment(), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return folder, reference


def test_the_page_holds_everything_and_the_volumes_of_both_label_maps(page):
    folder, reference = page
    text = (folder / "page.html").read_text()
    assert (folder / "page.html").stat().st_size < 8e6
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=|fetch\(\s*[\"']https?:", text), "nothing fetched"
    assert text.count("data:application/gzip;base64,") == 2
    ref = np.asanyarray(reference.dataobj)
    voxel_ml = np.prod(reference.header.get_zooms()) / 1000
    cells = re.findall(r"<tr><th>(\w+)</th><td>([\d.,]+)(?: ml)?</td><td>([\d.,]+)(?: ml)?</td></tr>", text)
    table = {name: (float(a.replace(",", "")), float(b.replace(",", ""))) for name, a, b in cells}
    assert table["reference"] == pytest.approx(
        (np.count_nonzero(ref >= 1) * voxel_ml, np.count_nonzero(ref == 2) * voxel_ml), abs=0.06
    )
    assert table["labels"][0] == pytest.approx(table["reference"][0], abs=0.06) and table["labels"][1] == 0
    assert table["Dice"] == (1.0, 0.0)


def test_chromium_draws_the_scan_and_its_labels(page, tmp_path):
    folder, _ = page
    chromium = program("chromium", "chromium")
    base = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    url = (folder / "page.html").as_uri()
    dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=180).stdout
    assert 'data-drawn="yes"' in dom, re.findall(r'data-drawn="[^"]*"', dom)
    shot = tmp_path / "page.png"
    subprocess.run([*base, f"--screenshot={shot}", url], capture_output=True, timeout=180, check=True)
    pixels = (imread(shot)[..., :3] * 255).astype(int)
    canvas = pixels[:, :1000]
    assert canvas.std() > 20, "the canvas is drawn, not blank"
    orange = (canvas[..., 0] > 150) & (canvas[..., 1] > 80) & (canvas[..., 1] < 170) & (canvas[..., 2] < 150)
    assert orange.mean() > 0.02, "the liver's overlay is drawn"


def test_the_shown_region_is_the_liver_box_with_a_margin_and_stays_small():
    labels = np.zeros((512, 512, 300), np.uint8)
    labels[100:400, 150:420, 40:260] = 1
    region = shown_region(labels, (0.7, 0.7, 1.0))
    margin = (int(MARGIN_MM / 0.7), int(MARGIN_MM / 1.0))
    assert (region[0].start, region[0].stop) == (100 - margin[0], 400 + margin[0])
    assert (region[2].start, region[2].stop) == (40 - margin[1], 260 + margin[1])
    assert labels[region].size <= MAX_VOXELS and liver_mask(labels[region]).sum() > 0
    assert shown_region(np.zeros((64, 64, 10), np.uint8), (1, 1, 1)) == (slice(0, 64, 1), slice(0, 64, 1), slice(0, 10))


def test_a_label_map_off_the_scan_grid_is_refused_and_no_page_is_written(page, tmp_path):
    folder, reference = page
    shifted = reference.affine.copy()
    shifted[0, 3] += 5
    nib.save(nib.Nifti1Image(np.asanyarray(reference.dataobj), shifted), tmp_path / "off.nii.gz")
    command = ["liverseg", "view", folder / "scan.nii.gz", tmp_path / "off.nii.gz", "--out", tmp_path / "page.html"]
    result = subprocess.run(
        list(map(str, command)), env=tool_environment(), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 1
    assert f"{tmp_path / 'off.nii.gz'}: affine differs from its scan" in result.stderr
    assert not (tmp_path / "page.html").exists()
