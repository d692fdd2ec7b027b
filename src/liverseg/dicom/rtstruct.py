"""A label map as a DICOM RT Structure Set (pydicom; highdicom does not write one), which treatment-planning systems
read: one ROI per structure, drawn as closed planar contours on the source images.

A contour runs through the midpoints between a structure's pixel centres and its neighbours' (marching squares at
0.5, scikit-image), so the pixels whose centres lie inside it are the structure's, exactly; a hole is a contour inside
another, which readers fill by the even-odd rule. Only collinear points are dropped.
"""

from __future__ import annotations

import datetime

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, RTStructureSetStorage, generate_uid

from liverseg.dicom.structures import STRUCTURES, Algorithm, pixel_to_patient

SERIES_NUMBER = 902
# copied from the source images, so that the structure set belongs to their patient, study and frame of reference
FROM_SOURCE = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
    "FrameOfReferenceUID",
    "PositionReferenceIndicator",
)


def contours(mask: np.ndarray) -> list[np.ndarray]:
    """The closed outlines of a 2D mask as (column, row) points, not repeating the first one."""
    # imported here: skimage.measure takes a second to import, and every `liverseg segment` imports this module
    from skimage.measure import approximate_polygon, find_contours

    outlines = find_contours(np.pad(mask, 1).astype(np.float32), 0.5)
    return [approximate_polygon(line - 1, tolerance=0)[:-1, ::-1] for line in outlines]


def structure_set(frames: np.ndarray, sources: list, algorithm: Algorithm) -> Dataset:
    """The RT Structure Set of `frames` (label maps, one per source image, as `structures.source_frames` cuts them)."""
    now = datetime.datetime.now()
    ds = _header(sources[0], now)
    ds.SeriesDescription = f"liverseg {algorithm.name} structures"
    ds.ManufacturerModelName = algorithm.name
    ds.SoftwareVersions = algorithm.version
    ds.StructureSetLabel = "LIVERSEG"
    ds.StructureSetName = f"liverseg {algorithm.name}"[:64]
    ds.StructureSetDate, ds.StructureSetTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    frame_of_reference = sources[0].FrameOfReferenceUID
    ds.ReferencedFrameOfReferenceSequence = [_referenced_frame_of_reference(sources)]
    ds.StructureSetROISequence = [
        _item(
            ROINumber=s.number,
            ReferencedFrameOfReferenceUID=frame_of_reference,
            ROIName=s.label,
            ROIGenerationAlgorithm="AUTOMATIC",
            ROIGenerationDescription=f"liverseg {algorithm.name} {algorithm.version}",
        )
        for s in STRUCTURES
    ]
    ds.ROIContourSequence = [
        _item(
            ROIDisplayColor=list(s.colour),
            ReferencedROINumber=s.number,
            ContourSequence=_contour_sequence(s.mask(frames), sources),
        )
        for s in STRUCTURES
    ]
    ds.RTROIObservationsSequence = [
        _item(
            ObservationNumber=s.number,
            ReferencedROINumber=s.number,
            # the liver is an organ; a tumour outline is a finding for a physician to confirm, not a planning target
            RTROIInterpretedType="ORGAN" if s.number == 1 else "",
            ROIInterpreter="",
            RTROIIdentificationCodeSequence=[
                _item(
                    CodeValue=s.type.value, CodingSchemeDesignator=s.type.scheme_designator, CodeMeaning=s.type.meaning
                )
            ],
        )
        for s in STRUCTURES
    ]
    return ds


def _header(source, now: datetime.datetime) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = RTStructureSetStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = source.get("SpecificCharacterSet", "ISO_IR 192")
    ds.SOPClassUID = RTStructureSetStorage
    ds.InstanceCreationDate, ds.InstanceCreationTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    for keyword in FROM_SOURCE:
        setattr(ds, keyword, source.get(keyword, ""))
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = SERIES_NUMBER
    ds.InstanceNumber = 1
    ds.OperatorsName = ""
    ds.Manufacturer = "liverseg"
    return ds


def _referenced_frame_of_reference(sources: list) -> Dataset:
    images = [_image_reference(s) for s in sources]
    series = _item(SeriesInstanceUID=sources[0].SeriesInstanceUID, ContourImageSequence=images)
    # the study is referenced as a Detached Study Management SOP instance, as the standard's examples do
    study = _item(
        ReferencedSOPClassUID="1.2.840.10008.3.1.2.3.1",
        ReferencedSOPInstanceUID=sources[0].StudyInstanceUID,
        RTReferencedSeriesSequence=[series],
    )
    return _item(FrameOfReferenceUID=sources[0].FrameOfReferenceUID, RTReferencedStudySequence=[study])


def _contour_sequence(masks: np.ndarray, sources: list) -> Sequence:
    items = []
    for mask, source in zip(masks, sources):
        if not mask.any():
            continue
        to_patient = pixel_to_patient(source)
        for outline in contours(mask):
            pixels = np.column_stack([outline, np.zeros(len(outline)), np.ones(len(outline))])
            points = (to_patient @ pixels.T)[:3].T
            items.append(
                _item(
                    ContourImageSequence=[_image_reference(source)],
                    ContourGeometricType="CLOSED_PLANAR",
                    NumberOfContourPoints=len(points),
                    ContourData=[f"{v:.3f}" for v in points.ravel()],
                )
            )
    return Sequence(items)


def _image_reference(source) -> Dataset:
    return _item(ReferencedSOPClassUID=source.SOPClassUID, ReferencedSOPInstanceUID=source.SOPInstanceUID)


def _item(**elements) -> Dataset:
    item = Dataset()
    for keyword, value in elements.items():
        setattr(item, keyword, value)
    return item
