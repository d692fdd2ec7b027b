"""The series of a DICOM folder: the one to segment in a study of several (localizer, arterial, venous), by choice or by
UID, read in slice order whatever the files' names, and clear refusals."""

import nibabel as nib
import numpy as np
import pytest

from liverseg.data.nifti import VolumeError
from liverseg.dicom.series import choose_series, read_series
from tests.dicom_series import AFFINE, Study, coronal_localizer, oblique, write_ct_series, write_study_export
from tests.helpers import ct_volume


@pytest.fixture(scope="module")
def study_folder(tmp_path_factory):
    """A study exported into one folder: a localizer, an arterial phase of 6 slices, a venous phase of 10."""
    folder = tmp_path_factory.mktemp("study")
    hu, _ = ct_volume((40, 32, 10))
    _, arterial, venous = write_study_export(folder, hu)
    return folder, hu, arterial, venous


def series_uid(files) -> str:
    import pydicom

    return str(pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID)


def test_a_study_folder_segments_its_axial_ct_series_with_most_images_and_says_why(study_folder):
    folder, hu, _, venous = study_folder
    chosen, why = choose_series(folder)
    assert chosen.uid == series_uid(venous)
    assert len(chosen.files) == 10 and "3 DICOM series" in why and "venous" in why and "--series" in why
    assert "scout" in why and "arterial" in why, "the series left out are named"
    scan = read_series(chosen)
    assert np.array_equal(np.asanyarray(scan.dataobj), np.round(hu)), "slices in position order, not file-name order"
    assert np.allclose(scan.affine, AFFINE, atol=1e-3)


def test_a_series_uid_picks_another_series_and_an_unknown_one_is_refused_with_the_list(study_folder):
    folder, hu, arterial, _ = study_folder
    chosen, why = choose_series(folder, series_uid(arterial))
    assert why is None and np.array_equal(np.asanyarray(read_series(chosen).dataobj), np.round(hu[:, :, :6]))
    with pytest.raises(VolumeError, match=r"holds no DICOM series 1\.2\.3 \(it holds ") as refused:
        choose_series(folder, "1.2.3")
    assert all(f"'{name}'" in str(refused.value) for name in ("scout", "arterial", "venous"))


def test_a_folder_without_an_axial_ct_series_is_refused(tmp_path):
    study = Study()
    coronal_localizer(tmp_path, study)
    coronal_localizer(tmp_path, study, seed=1)
    with pytest.raises(VolumeError, match=f"{tmp_path}: none of its 2 DICOM series is an axial CT series"):
        choose_series(tmp_path)


def test_a_tilted_series_counts_as_axial_and_keeps_its_geometry(tmp_path):
    hu, _ = ct_volume((40, 32, 8))
    tilted = oblique(AFFINE, 20)
    write_ct_series(nib.Nifti1Image(hu, tilted), tmp_path / "tilted", Study())
    write_ct_series(nib.Nifti1Image(hu[:, :, :4], AFFINE), tmp_path / "tilted", Study(), 4, "short", seed=3)
    chosen, _ = choose_series(tmp_path / "tilted")
    assert len(chosen.files) == 8
    assert np.allclose(read_series(chosen).affine, tilted, atol=1e-3)
