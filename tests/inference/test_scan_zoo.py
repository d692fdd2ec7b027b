"""The scan zoo (tests/scan_zoo.py) through `liverseg segment` with a cascade, and the workflow's cascade rule on
phantoms whose liver the scan's edges cut: every scan gives a label map in its own geometry or one line naming it."""

import json
import subprocess

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from tests.helpers import CASCADES, EDGE_CASES, tool_environment
from tests.scan_zoo import LABEL_MAP, ZOO, write_zoo

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def zoo(segment_experiment, tmp_path_factory):
    """Every zoo scan segmented by the cascade in one call: (scan paths, output folder, error lines, log lines)."""
    folder = tmp_path_factory.mktemp("zoo")
    scans = write_zoo(folder / "scans")
    command = ["liverseg", "segment", str(segment_experiment / "models" / "unet_cascade"), *map(str, scans.values())]
    result = subprocess.run(
        [*command, "--out", str(folder / "out"), "--threads", "2"],
        env=tool_environment(),
        capture_output=True,
        encoding="utf-8",
        timeout=1200,
    )
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    refused = sum(scan.expected != LABEL_MAP for scan in ZOO)
    assert result.returncode == (1 if refused else 0), result.stderr[-5000:]
    return scans, folder / "out", errors, result.stdout.splitlines()


def _labels(out, name):
    return np.asanyarray(nib.load(out / f"{name}.nii.gz").dataobj)


@pytest.mark.parametrize("scan", ZOO, ids=lambda scan: scan.name)
def test_each_zoo_scan_gives_its_expected_outcome(zoo, scan):
    paths, out, errors, log = zoo
    path = paths[scan.name]
    named = [line for line in errors if str(path) in line]
    if scan.says:
        assert any(line.startswith(f"{path}: ") and scan.says in line for line in log), log
    if scan.expected != LABEL_MAP:
        assert len(named) == 1 and scan.expected in named[0], errors
        assert not list(out.glob(f"{scan.name}.*")), "nothing written for a refused scan"
        return
    assert not named, named
    image, labels = nib.load(path), nib.load(out / f"{scan.name}.nii.gz")
    assert labels.shape == image.shape and np.allclose(labels.affine, image.affine, atol=1e-6)
    assert set(np.unique(np.asanyarray(labels.dataobj)).tolist()) <= {0, 1, 2}
    report = json.loads((out / f"{scan.name}.json").read_text())
    voxel_ml = abs(np.linalg.det(image.affine[:3, :3])) / 1000  # the spacing of the affine that places the voxels
    assert report["liver_ml"] == pytest.approx(np.count_nonzero(_labels(out, scan.name) >= 1) * voxel_ml, rel=1e-6)
    if scan.same_labels_as:
        assert np.array_equal(_labels(out, scan.name), _labels(out, scan.same_labels_as))


def test_the_volume_table_lists_every_segmented_zoo_scan(zoo):
    _, out, _, _ = zoo
    table = pd.read_csv(out / "volumes.csv")
    assert sorted(table["scan"]) == sorted(scan.name for scan in ZOO if scan.expected == LABEL_MAP)


@pytest.mark.parametrize("case", EDGE_CASES)
@pytest.mark.parametrize("cascade", CASCADES)
def test_the_cascade_rule_segments_livers_cut_by_the_scans_edges(segment_experiment, cascade, case):
    cases = pd.read_csv(segment_experiment / "data" / "cases.tsv", sep="\t").set_index("case")
    volume = nib.load(segment_experiment / cases.loc[case, "volume"])
    labels = nib.load(segment_experiment / "results" / cascade / "pred" / f"{case}.nii.gz")
    assert labels.shape == volume.shape and np.allclose(labels.affine, volume.affine, atol=1e-6)
    reference = np.asanyarray(nib.load(segment_experiment / cases.loc[case, "label"]).dataobj) >= 1
    if case != EDGE_CASES[0]:  # the phantom's own case keeps its margins; the others have liver on an edge
        edges = [np.take(reference, index, axis) for axis in range(3) for index in (0, -1)]
        assert any(edge.any() for edge in edges)
