"""Finding and checking cases: every fault a real archive has stops with one line naming the file, or is skipped."""

import re
import subprocess

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from liverseg.data import nifti
from liverseg.data.cases import check_label, find_cases, hu_summary, read_cases_table, write_cases_table
from tests.helpers import ct_volume, truncated, write_case, write_nifti


def test_case_table_of_the_synthetic_set(phantom_files, tmp_path):
    table = write_cases_table(phantom_files, "lits", tmp_path / "cases.tsv", tmp_path / "rejected.tsv", False)
    assert list(table["case"]) == ["case_000", "case_001", "case_002"]
    again = read_cases_table(tmp_path / "cases.tsv")
    assert again.loc["case_001", "volume"].endswith("volume-1.nii.gz")
    assert again.loc["case_001", "label"].endswith("segmentation-1.nii.gz")
    volume = nib.load(again.loc["case_001", "volume"])
    assert again.loc["case_001", "shape"] == "x".join(map(str, volume.shape))
    assert again.loc["case_001", "orientation"] == nifti.orientation_codes(volume)
    assert again.loc["case_001", "dtype"] == str(volume.get_data_dtype())
    assert len(again.loc["case_001", "volume_sha256"]) == len(again.loc["case_001", "label_sha256"]) == 64
    assert pd.read_csv(tmp_path / "rejected.tsv", sep="\t").empty


def test_cases_checked_in_parallel_give_the_same_table_in_the_same_order(tmp_path):
    """Eight cases, one broken in the middle: four threads write the table and the rejections one thread writes."""
    raw = tmp_path / "raw"
    for number in range(8):
        write_case(raw, number, *ct_volume((24, 20, 4 + number), seed=number))
    truncated(raw / "volume-5.nii.gz")
    tables = {}
    for threads in (1, 4):
        out, rejected = tmp_path / f"cases_{threads}.tsv", tmp_path / f"rejected_{threads}.tsv"
        with pytest.raises(nifti.VolumeError, match=re.escape(str(raw / "volume-5.nii.gz"))):
            write_cases_table(raw, "lits", out, rejected, skip_invalid=False, threads=threads)
        assert not out.exists() and not rejected.exists()
        table = write_cases_table(raw, "lits", out, rejected, skip_invalid=True, threads=threads)
        tables[threads] = (out.read_text(), rejected.read_text())
    assert list(table["case"]) == [f"case_{n:03d}" for n in range(8) if n != 5]
    assert tables[4] == tables[1]


def test_lits_batches_and_msd_layout_skip_resource_forks(tmp_path):
    write_case(tmp_path / "lits" / "Training_Batch1", 0)
    write_case(tmp_path / "lits" / "Training_Batch2", 28)
    (tmp_path / "lits" / "Training_Batch2" / "._volume-28.nii.gz").write_bytes(b"fork")
    found, rejected = find_cases(tmp_path / "lits", "lits")
    assert list(found) == ["case_000", "case_028"] and rejected == []
    for folder in ("imagesTr", "labelsTr"):
        (tmp_path / "msd" / "Task03_Liver" / folder).mkdir(parents=True)
        for name in ("liver_3.nii.gz", "._liver_3.nii.gz"):
            (tmp_path / "msd" / "Task03_Liver" / folder / name).write_bytes(b"")
    found, rejected = find_cases(tmp_path / "msd", "msd")
    assert list(found) == ["case_003"] and rejected == []
    assert found["case_003"][1].parent.name == "labelsTr"
    with pytest.raises(FileNotFoundError, match="no volumes in the msd layout"):
        find_cases(tmp_path / "lits", "msd")


def corpus(raw):
    """Each bad case: (case, file it breaks, expected message) after writing it into `raw` beside good case 0."""
    hu, labels = ct_volume(seed=1)
    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    yield "truncated volume", lambda: truncated(write_case(raw, 1)[0]), "volume-1.nii.gz", "cut short"
    yield "truncated label", lambda: truncated(write_case(raw, 1)[1]), "segmentation-1.nii.gz", "cut short"
    yield (
        "shape mismatch",
        lambda: write_case(raw, 1, labels=labels[:, :-2]),
        "segmentation-1.nii.gz",
        r"shape \(24, 18, 6\) differs",
    )
    moved = affine.copy()
    moved[0, 3] = 5.0

    def other_affine():
        write_case(raw, 1)
        write_nifti(raw / "segmentation-1.nii.gz", labels, moved)

    yield "affine mismatch", other_affine, "segmentation-1.nii.gz", "affine differs from its volume"
    yield (
        "4D image",
        lambda: write_case(raw, 1, hu=np.stack([hu, hu], -1), labels=labels),
        "volume-1.nii.gz",
        "expected a 3D volume",
    )
    nans = hu.copy()
    nans[0, 0, 0] = np.nan
    yield "NaN", lambda: write_case(raw, 1, hu=nans), "volume-1.nii.gz", "1 voxels are NaN or infinite"
    three = labels.copy()
    three[0, 0, 0] = 3
    yield "label 3", lambda: write_case(raw, 1, labels=three), "segmentation-1.nii.gz", r"unexpected label values \[3\]"

    def empty():
        write_case(raw, 1)
        (raw / "volume-1.nii.gz").write_bytes(b"")

    yield "empty file", empty, "volume-1.nii.gz", "not a readable NIfTI file"
    yield "missing label", lambda: write_case(raw, 1)[1].unlink(), "volume-1.nii.gz", "no label file"
    yield (
        "label alone",
        lambda: write_case(raw, 1)[0].unlink(),
        "segmentation-1.nii.gz",
        "a label file without its volume",
    )
    yield (
        "not HU",
        lambda: write_case(raw, 1, hu=(hu + 1000) / 2000),
        "volume-1.nii.gz",
        "do not look like CT in Hounsfield units",
    )


CORPUS = list(corpus(None))


@pytest.mark.parametrize("index", range(len(CORPUS)), ids=[c[0] for c in CORPUS])
def test_a_bad_case_stops_with_one_line_or_is_skipped(tmp_path, index):
    raw = tmp_path / "raw"
    write_case(raw, 0)
    _, make, file, problem = list(corpus(raw))[index]
    make()
    out, rejected = tmp_path / "cases.tsv", tmp_path / "rejected.tsv"
    with pytest.raises(nifti.VolumeError) as error:
        write_cases_table(raw, "lits", out, rejected, skip_invalid=False)
    message = str(error.value)
    assert message.startswith(f"{raw / file}: ") and "\n" not in message
    assert re.search(problem, message), message
    assert not out.exists() and not rejected.exists()

    table = write_cases_table(raw, "lits", out, rejected, skip_invalid=True)
    assert list(table["case"]) == ["case_000"]
    listed = pd.read_csv(rejected, sep="\t", dtype=str, keep_default_na=False)
    assert len(listed) == 1 and listed.loc[0, "file"] == str(raw / file)
    assert f"{listed.loc[0, 'file']}: {listed.loc[0, 'reason']}" == message


def test_the_command_line_error_is_one_line_without_traceback(tmp_path, tool_env):
    raw = tmp_path / "raw"
    write_case(raw, 0)
    truncated(write_case(raw, 1)[0])
    command = [
        "liverseg",
        "ingest",
        "--raw",
        str(raw),
        "--layout",
        "lits",
        "--out",
        str(tmp_path / "cases.tsv"),
        "--rejected",
        str(tmp_path / "rejected.tsv"),
    ]
    result = subprocess.run(command, env=tool_env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"liverseg ingest: error: {raw / 'volume-1.nii.gz'}: cannot read its voxels"
    )
    assert "Traceback" not in result.stderr + result.stdout


@given(
    shape=st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 70)),
    bounds=st.tuples(st.integers(-32768, 32767), st.integers(-32768, 32767)),
    inter=st.integers(-3000, 3000),
    seed=st.integers(0, 2**32 - 1),
)
def test_whole_numbers_are_summarised_as_their_float_hu_are(shape, bounds, inter, seed):
    """int16 voxels with slope 1 and a whole intercept (one pass over the integers) against the same HU as float32
    (the chunked path), bone and air thresholds included."""
    low, high = sorted(bounds)
    stored = np.random.default_rng(seed).integers(low, high, shape, endpoint=True).astype(np.int16)
    as_float = stored.astype(np.float32) + np.float32(inter)
    assert hu_summary(stored, 1.0, float(inter)) == hu_summary(as_float, 1.0, 0.0)


@pytest.mark.parametrize(
    ("values", "dtype", "unexpected"),
    [
        ([0, 2], np.uint8, None),
        ([1], np.int16, None),
        ([0, 1, 2], np.float32, None),
        ([-1, 0, 1], np.int8, "[-1]"),
        ([0, 2, 40000], np.int32, "[40000]"),
        ([0, 1.5], np.float32, "[1.5]"),
    ],
)
def test_label_values_are_checked_whatever_their_type(tmp_path, values, dtype, unexpected):
    """Whole numbers in the valid range pass on their lowest and highest value alone; anything else is named."""
    labels = np.resize(np.array(values, dtype), (6, 5, 40))
    volume = write_nifti(tmp_path / "volume.nii", ct_volume((6, 5, 40))[0].astype(np.int16), np.eye(4))
    label = write_nifti(tmp_path / "label.nii", labels, np.eye(4))
    if unexpected is None:
        assert np.array_equal(check_label(label, nib.load(volume), volume), labels)
    else:
        with pytest.raises(nifti.VolumeError, match=re.escape(f"{label}: unexpected label values {unexpected}")):
            check_label(label, nib.load(volume), volume)
