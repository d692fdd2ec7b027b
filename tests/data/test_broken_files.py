"""Broken files in `ingest` and `segment`: each named with its problem, no traceback, nothing half-written, the other
scans' outputs kept; gzip and plain files cut at any offset never give other voxels or another error."""

import subprocess
import sys

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liverseg.data import nifti
from liverseg.data.cases import check_ct, write_cases_table
from tests.broken_files import broken_files, cut_short, single_time_point
from tests.helpers import ct_volume, tool_environment, write_case

AFFINE = np.diag([0.8, 0.8, 2.5, 1.0])


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A good case in the LiTS layout: (volume, label)."""
    return write_case(tmp_path_factory.mktemp("good"), 0, *ct_volume((24, 20, 8)), AFFINE)


@pytest.fixture(scope="module")
def broken(good, tmp_path_factory):
    return broken_files(tmp_path_factory.mktemp("broken"), *good)


def _read(path):
    """What ingest and segment read of a scan: the checked header, then every voxel."""
    image = nifti.load(path)
    check_ct(image, path)
    return nifti.voxels(image)


def test_each_broken_file_is_refused_with_its_name_and_its_problem(broken):
    for name, (path, phrase) in broken.items():
        with pytest.raises(nifti.VolumeError) as error:
            _read(path)
        assert str(error.value).startswith(f"{path}: ") and phrase in str(error.value), (name, str(error.value))


@settings(max_examples=40)
@given(fraction=st.floats(0.0, 1.0, exclude_max=True), compressed=st.booleans())
def test_a_file_cut_at_any_offset_is_refused_or_reads_its_own_voxels(good, tmp_path_factory, fraction, compressed):
    """Only a cut inside gzip's 8-byte trailer can leave every voxel readable; then they are the file's own."""
    volume, _ = good
    source = volume if compressed else tmp_path_factory.mktemp("plain") / "volume.nii"
    if not compressed:
        nib.save(nib.load(volume), source)
    cut = cut_short(source, source.with_name(f"cut-{source.name}"), int(fraction * source.stat().st_size))
    try:
        voxels = _read(cut)
    except nifti.VolumeError as error:
        assert str(error).startswith(f"{cut}: ")
    else:
        assert compressed and source.stat().st_size - cut.stat().st_size <= 8
        assert np.array_equal(voxels, nib.load(volume).get_fdata(dtype=np.float32))


def test_a_single_time_point_is_read_as_its_3d_volume(good, tmp_path):
    volume, _ = good
    four_d = single_time_point(volume, tmp_path / "4d.nii.gz")
    assert nib.load(four_d).shape == (24, 20, 8, 1)
    image = nifti.load(four_d)
    assert image.shape == (24, 20, 8) and np.array_equal(image.affine, nib.load(volume).affine)
    assert np.array_equal(nifti.voxels(image), nifti.voxels(nib.load(volume)))
    assert image.get_filename() == str(four_d), "errors still name the file"


def _ingest(raw, out, *flags):
    command = [sys.executable, "-m", "liverseg", "ingest", "--raw", str(raw), "--layout", "lits"]
    command += ["--out", str(out / "cases.tsv"), "--rejected", str(out / "rejected.tsv"), *flags]
    return subprocess.run(command, capture_output=True, encoding="utf-8", env=tool_environment(), timeout=300)


def test_ingest_names_every_broken_case_and_keeps_the_good_ones(good, broken, tmp_path):
    """Each broken file as a case's volume beside a good case: a stop naming it, or with skip_invalid a row of
    rejected.tsv with its reason; never a traceback, never a case table from a failed run."""
    raw = tmp_path / "raw"
    volume, label = good
    write_case(raw, 0, *ct_volume((24, 20, 8)), AFFINE)
    volumes = {}
    for number, (name, (path, _)) in enumerate(broken.items(), start=1):
        suffix = "".join(path.suffixes)  # a .nii file stays .nii, its label too
        volumes[name] = raw / f"volume-{number}{suffix}"
        volumes[name].write_bytes(path.read_bytes())
        nib.save(nib.load(label), raw / f"segmentation-{number}{suffix}")
    stopped = _ingest(raw, tmp_path)
    assert stopped.returncode == 1 and "Traceback" not in stopped.stderr, stopped.stderr[-3000:]
    assert f"error: {volumes['gzip_cut_in_header']}: " in stopped.stderr
    assert not (tmp_path / "cases.tsv").exists() and not (tmp_path / "rejected.tsv").exists()
    skipped = _ingest(raw, tmp_path, "--skip-invalid", "--threads", "4")
    assert skipped.returncode == 0 and "Traceback" not in skipped.stderr, skipped.stderr[-3000:]
    assert list(pd.read_csv(tmp_path / "cases.tsv", sep="\t")["case"]) == ["case_000"]
    rejected = pd.read_csv(tmp_path / "rejected.tsv", sep="\t").set_index("case")
    for number, (name, (_, phrase)) in enumerate(broken.items(), start=1):
        case = f"case_{number:03d}"
        assert rejected.loc[case, "file"] == str(volumes[name])
        assert phrase in rejected.loc[case, "reason"], (name, rejected.loc[case, "reason"])


def test_ingest_in_process_stops_on_the_first_broken_case(good, broken, tmp_path):
    raw = tmp_path / "raw"
    write_case(raw, 0, *ct_volume((24, 20, 8)), AFFINE)
    path, phrase = broken["nan_affine"]
    (raw / "volume-1.nii.gz").write_bytes(path.read_bytes())
    (raw / "segmentation-1.nii.gz").write_bytes(good[1].read_bytes())
    with pytest.raises(nifti.VolumeError, match=phrase):
        write_cases_table(raw, "lits", tmp_path / "cases.tsv", tmp_path / "rejected.tsv", skip_invalid=False)
    assert not list(tmp_path.glob("*.tsv"))


@pytest.mark.workflow
def test_segment_names_every_broken_scan_and_keeps_every_other_output(segment_experiment, good, broken, tmp_path):
    volume, _ = good
    model, out = segment_experiment / "models" / "unet", tmp_path / "out"

    def segment(*inputs):
        command = ["liverseg", "segment", str(model), *map(str, inputs), "--out", str(out), "--threads", "2"]
        return subprocess.run(command, capture_output=True, encoding="utf-8", env=tool_environment(), timeout=600)

    assert segment(volume).returncode == 0
    earlier = {path.name: path.read_bytes() for path in out.iterdir() if path.name != "volumes.csv"}
    four_d = single_time_point(volume, tmp_path / "one-time-point.nii.gz")
    result = segment(*(path for path, _ in broken.values()), four_d)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    for name, (path, phrase) in broken.items():
        assert any(f"error: {path}: " in line and phrase in line for line in errors), (name, errors)
    assert f"{len(broken)} of the inputs could not be segmented" in errors[-1]
    assert {path.name: path.read_bytes() for path in out.iterdir() if path.name in earlier} == earlier
    written = sorted(path.name for path in out.iterdir())
    assert written == sorted([*earlier, "one-time-point.json", "one-time-point.nii.gz", "volumes.csv"])
    labels = nib.load(out / "one-time-point.nii.gz")
    assert labels.shape == (24, 20, 8) and np.array_equal(labels.affine, nib.load(volume).affine)
    assert np.array_equal(np.asanyarray(labels.dataobj), np.asanyarray(nib.load(out / "volume-0.nii.gz").dataobj))
    assert sorted(pd.read_csv(out / "volumes.csv")["scan"]) == ["one-time-point", "volume-0"]
