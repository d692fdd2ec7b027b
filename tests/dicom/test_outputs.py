"""The DICOM Segmentation and RT Structure Set of a label map: valid by dicom3tools' dciodvfy, of the source series'
patient and study, and read back (highdicom, pydicom) to the voxels of the label map, image by image, for a series
with shuffled file names and a tilted one."""

import subprocess

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
from skimage.draw import polygon2mask

from liverseg.data.nifti import VolumeError
from liverseg.dicom.export import SUFFIXES, dicom_objects, save_dataset
from liverseg.dicom.series import choose_series, read_series
from liverseg.dicom.structures import Algorithm
from tests.dicom_series import AFFINE, Study, oblique, write_ct_series
from tests.helpers import ct_volume, program

ALGORITHM = Algorithm("unet_cascade", "9.9.9")


@pytest.fixture(scope="module", params=["axial", "tilted"])
def exported(request, tmp_path_factory):
    """A labelled phantom written as a series (tilted by 20 degrees or not), its label map exported from the series."""
    folder = tmp_path_factory.mktemp(request.param)
    hu, labels = ct_volume((48, 40, 10))
    labels[20:22, 16:18, 3:6] = 0  # a vessel through the liver: a hole in its outline
    labels[2:5, 2:4, 4] = 1  # a second, separate piece of liver
    affine = AFFINE if request.param == "axial" else oblique(AFFINE, 20)
    study = Study()
    files = write_ct_series(nib.Nifti1Image(hu, affine), folder / "series", study)
    series, _ = choose_series(folder / "series")
    objects = dicom_objects(labels, read_series(series).affine, series, SUFFIXES, ALGORITHM)
    paths = {kind: folder / f"scan{suffix}" for kind, suffix in SUFFIXES.items()}
    for kind, dataset in objects.items():
        save_dataset(dataset, paths[kind])
    return paths, files, labels, study


def sources(files):
    return [pydicom.dcmread(f, stop_before_pixels=True) for f in files]


@pytest.mark.parametrize("kind", list(SUFFIXES))
def test_dciodvfy_finds_no_error(exported, kind):
    paths, *_ = exported
    checked = subprocess.run([program("dciodvfy", "dicom3tools"), str(paths[kind])], capture_output=True, text=True)
    errors = [line for line in (checked.stdout + checked.stderr).splitlines() if line.startswith("Error")]
    assert not errors, "\n".join(errors)


def test_the_segmentation_reads_back_to_the_label_map_on_every_source_image(exported):
    paths, files, labels, study = exported
    seg = hd.seg.segread(paths["dicom-seg"])
    images = sources(files)
    uids = [s.SOPInstanceUID for s in images]
    pixels = seg.get_pixels_by_source_instance(uids, segment_numbers=[1, 2])
    for k in range(len(files)):  # file k holds slice k of the label map
        assert np.array_equal(pixels[k, :, :, 0], labels[:, :, k].T >= 1)
        assert np.array_equal(pixels[k, :, :, 1], labels[:, :, k].T == 2)
    by_uid = {s.SOPInstanceUID: s for s in images}
    for frame in seg.PerFrameFunctionalGroupsSequence:
        source = by_uid[frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID]
        position = frame.PlanePositionSequence[0].ImagePositionPatient
        assert np.allclose(np.array(position, float), np.array(source.ImagePositionPatient, float), atol=1e-3)
    referenced = {i.ReferencedSOPInstanceUID for i in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert referenced == set(uids), "every source image referenced"
    assert (seg.StudyInstanceUID, seg.PatientID, seg.FrameOfReferenceUID) == (
        study.uid,
        study.patient_id,
        study.frame_of_reference,
    )
    types = [(s.SegmentLabel, s.SegmentedPropertyTypeCodeSequence[0]) for s in seg.SegmentSequence]
    assert [(label, c.CodingSchemeDesignator, c.CodeValue) for label, c in types] == [
        ("Liver", "SCT", "10200004"),
        ("Liver tumour", "SCT", "108369006"),
    ]
    algorithm = seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0]
    assert (algorithm.AlgorithmName, algorithm.AlgorithmVersion) == ("liverseg unet_cascade", "9.9.9")


def rasterised(contours, image) -> np.ndarray:
    """A structure's contours on one image, filled by the even-odd rule (a contour inside another is a hole)."""
    orientation = np.array(image.ImageOrientationPatient, float)
    row_spacing, column_spacing = np.array(image.PixelSpacing, float)
    mask = np.zeros((image.Rows, image.Columns), bool)
    for contour in contours:
        points = np.array(contour.ContourData, float).reshape(-1, 3) - np.array(image.ImagePositionPatient, float)
        assert np.allclose(points @ np.cross(orientation[:3], orientation[3:]), 0, atol=1e-2), "on the image's plane"
        rows, columns = points @ orientation[3:] / row_spacing, points @ orientation[:3] / column_spacing
        mask ^= polygon2mask(mask.shape, np.column_stack([rows, columns]))
    return mask


def test_the_structure_set_reads_back_to_the_label_map_on_every_source_image(exported):
    paths, files, labels, study = exported
    rt = pydicom.dcmread(paths["rtstruct"])
    images = sources(files)
    assert (rt.StudyInstanceUID, rt.PatientID, rt.Modality) == (study.uid, study.patient_id, "RTSTRUCT")
    referenced = rt.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert [i.ReferencedSOPInstanceUID for i in referenced.ContourImageSequence] == [s.SOPInstanceUID for s in images]
    assert [r.ROIName for r in rt.StructureSetROISequence] == ["Liver", "Liver tumour"]
    codes = [o.RTROIIdentificationCodeSequence[0].CodeValue for o in rt.RTROIObservationsSequence]
    assert codes == ["10200004", "108369006"]
    for roi, mask_of in zip(rt.ROIContourSequence, (lambda k: labels[:, :, k] >= 1, lambda k: labels[:, :, k] == 2)):
        for k, image in enumerate(images):
            on_image = [
                c
                for c in roi.ContourSequence
                if c.ContourImageSequence[0].ReferencedSOPInstanceUID == image.SOPInstanceUID
            ]
            assert all(c.ContourGeometricType == "CLOSED_PLANAR" for c in on_image)
            assert np.array_equal(rasterised(on_image, image), mask_of(k).T)


def test_a_label_map_off_the_series_grid_is_refused_by_name(tmp_path):
    hu, labels = ct_volume((48, 40, 10))
    write_ct_series(nib.Nifti1Image(hu, AFFINE), tmp_path / "series", Study())
    series, _ = choose_series(tmp_path / "series")
    shifted = AFFINE.copy()
    shifted[0, 3] += 0.8  # one voxel along the rows
    with pytest.raises(VolumeError, match=f"{tmp_path / 'series'}: image .* does not lie on the label map's grid"):
        dicom_objects(labels, shifted, series, ["dicom-seg"], ALGORITHM)
