"""A PACS round trip through a real Orthanc: `liverseg segment dicomweb://... --study UID` fetches the study's CT series
to segment over DICOMweb, and its Segmentation lands in Orthanc, in the same study; clear errors, and nothing stored,
for a server that cannot be reached, a study without a CT series and a refused store. The segmenter is an untrained
U-Net: what is tested is the way there and back, not the labels."""

import io
import subprocess
import urllib.request

import nibabel as nib
import pydicom
import pytest

from liverseg.inference.postprocess import PostSettings
from liverseg.inference.segmenter import SEGMENTER_FILE, write_segmenter
from tests.dicom_series import AFFINE, Study, write_ct_series, write_study_export
from tests.helpers import ct_volume, free_port, tool_environment, write_checkpoint
from tests.orthanc_server import get, orthanc, upload


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory):
    folder = tmp_path_factory.mktemp("segmenter")
    weights = write_checkpoint(folder / "best.pt", {"kind": "unet", "base_channels": 4, "depth": 2})
    write_segmenter("tiny", folder / SEGMENTER_FILE, {"liver": [weights]}, (-150, 250), PostSettings())
    return folder


@pytest.fixture(scope="module")
def study_files(tmp_path_factory):
    """A study's export: a localizer, an arterial phase of 6 slices and a venous one of 10; the venous files."""
    folder = tmp_path_factory.mktemp("export")
    hu, _ = ct_volume((48, 40, 10))
    study, _, venous = write_study_export(folder, hu)
    return study, sorted(folder.iterdir()), venous


def segment(*args):
    command = ["liverseg", "segment", *map(str, args), "--threads", "2"]
    return subprocess.run(command, env=tool_environment(), capture_output=True, text=True, timeout=600)


def study_series(base: str, study: Study) -> dict:
    """Modality -> the series' Orthanc ids, of the study in Orthanc."""
    found = {}
    for orthanc_study in get(base, "/studies?expand"):
        if orthanc_study["MainDicomTags"]["StudyInstanceUID"] == study.uid:
            for series in orthanc_study["Series"]:
                modality = get(base, f"/series/{series}")["MainDicomTags"]["Modality"]
                found.setdefault(modality, []).append(series)
    return found


def test_the_segmentation_of_the_venous_series_is_stored_into_its_study(segmenter, study_files, tmp_path):
    study, files, venous = study_files
    with orthanc(tmp_path / "pacs") as (base, url):
        upload(base, files)
        result = segment(segmenter, url, "--study", study.uid, "--out", tmp_path / "out")
        assert result.returncode == 0, result.stderr[-3000:]
        assert "the axial CT series with most images" in result.stdout and "'venous'" in result.stdout
        series = study_series(base, study)
        assert len(series["SEG"]) == 1 and len(series["CT"]) == 3
        instance = get(base, f"/series/{series['SEG'][0]}")["Instances"][0]
        with urllib.request.urlopen(f"{base}/instances/{instance}/file", timeout=30) as answer:
            stored = pydicom.dcmread(io.BytesIO(answer.read()))
    local = pydicom.dcmread(tmp_path / "out" / f"{study.uid}.seg.dcm")
    assert stored.SOPInstanceUID == local.SOPInstanceUID and stored.StudyInstanceUID == study.uid
    venous_uid = pydicom.dcmread(venous[0], stop_before_pixels=True).SeriesInstanceUID
    assert stored.ReferencedSeriesSequence[0].SeriesInstanceUID == venous_uid
    assert (tmp_path / "out" / f"{study.uid}.nii.gz").is_file()


def test_an_unreachable_server_is_named_and_nothing_is_written(segmenter, tmp_path):
    url = f"dicomweb://127.0.0.1:{free_port()}/dicom-web"
    result = segment(segmenter, url, "--study", "1.2.3", "--out", tmp_path / "out")
    assert result.returncode == 1
    assert f"{url}: cannot reach the DICOMweb server" in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_study_without_a_ct_series_is_refused(segmenter, tmp_path):
    study = Study()
    hu, _ = ct_volume((48, 40, 10))
    mr = write_ct_series(nib.Nifti1Image(hu, AFFINE), tmp_path / "mr", study, modality="MR")
    with orthanc(tmp_path / "pacs") as (base, url):
        upload(base, mr)
        result = segment(segmenter, url, "--study", study.uid, "--out", tmp_path / "out")
        assert result.returncode == 1
        assert f"{url}: study {study.uid} holds no CT series (it holds MR)" in result.stderr
        assert set(study_series(base, study)) == {"MR"}


def test_a_refused_store_is_named_and_leaves_the_study_as_it_was(segmenter, study_files, tmp_path):
    study, files, _ = study_files
    with orthanc(tmp_path / "pacs", refuse_seg=True) as (base, url):
        upload(base, files)
        result = segment(segmenter, url, "--study", study.uid, "--out", tmp_path / "out")
        assert result.returncode == 1
        assert f"{url}: " in result.stderr and "refused" in result.stderr, result.stderr[-3000:]
        assert set(study_series(base, study)) == {"CT"}, "nothing stored"
