import shutil

import nibabel as nib
import numpy as np
import pytest

from liverseg.data import nifti
from liverseg.data.cases import find_cases, read_cases_table, write_cases_table
from liverseg.data.download import fetch


def test_case_table_of_the_synthetic_set(phantom_files, tmp_path):
    table = write_cases_table(phantom_files, "lits", tmp_path / "cases.tsv")
    assert list(table["case"]) == ["case_000", "case_001", "case_002"]
    again = read_cases_table(tmp_path / "cases.tsv")
    assert again.loc["case_001", "volume"].endswith("volume-1.nii.gz")
    assert again.loc["case_001", "label"].endswith("segmentation-1.nii.gz")
    volume = nib.load(again.loc["case_001", "volume"])
    assert again.loc["case_001", "shape"] == "x".join(map(str, volume.shape))
    assert again.loc["case_001", "orientation"] == nifti.orientation_codes(volume)
    assert len(again.loc["case_001", "sha256"]) == 64


def test_msd_layout_skips_resource_forks(tmp_path):
    for folder in ("imagesTr", "labelsTr"):
        (tmp_path / "Task03_Liver" / folder).mkdir(parents=True)
        for name in ("liver_3.nii.gz", "._liver_3.nii.gz"):
            (tmp_path / "Task03_Liver" / folder / name).write_bytes(b"")
    found = find_cases(tmp_path, "msd")
    assert list(found) == ["case_003"]
    assert found["case_003"][1].parent.name == "labelsTr"


def test_bad_cases_are_named(phantom_files, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(phantom_files, raw)
    (raw / "segmentation-2.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match="volume-2.nii.gz: no label file"):
        find_cases(raw, "lits")
    nib.save(nib.Nifti1Image(np.full(nib.load(raw / "volume-2.nii.gz").shape, 7, np.uint8), nib.load(raw / "volume-2.nii.gz").affine), raw / "segmentation-2.nii.gz")
    with pytest.raises(nifti.VolumeError, match=r"segmentation-2.nii.gz: unexpected label values \[7\]"):
        write_cases_table(raw, "lits", tmp_path / "cases.tsv")
    assert not (tmp_path / "cases.tsv").exists()
    with pytest.raises(FileNotFoundError, match="no volumes"):
        find_cases(tmp_path / "raw", "msd")


def test_fetch_synthetic_is_all_or_nothing(tmp_path):
    fetch("synthetic", tmp_path / "synthetic", synthetic_cases=2, synthetic_seed=1)
    assert len(list((tmp_path / "synthetic").glob("*.nii.gz"))) == 4
    with pytest.raises(NotImplementedError, match="data.source 'msd'"):
        fetch("msd", tmp_path / "msd", synthetic_cases=2, synthetic_seed=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synthetic"]
