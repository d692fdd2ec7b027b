"""DICOM CT series written from a NIfTI image as a scanner writes them (pydicom, CT Image Storage with the patient, study,
series, frame-of-reference, plane and pixel modules), to the tests' taste: file names that say nothing of the order,
shuffled instance numbers, oblique planes, several series of one study in one folder."""

import uuid
from dataclasses import dataclass, field

import nibabel as nib
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])
AFFINE = np.array([[0.8, 0, 0, -20.0], [0, 0.7, 0, 15.0], [0, 0, 2.5, 40.0], [0, 0, 0, 1]])  # the tests' series


@dataclass
class Study:
    """The patient and study the series of a test belong to."""

    uid: str = field(default_factory=generate_uid)
    frame_of_reference: str = field(default_factory=generate_uid)
    patient_id: str = "LIVERSEG-TEST-1"

    def attributes(self) -> dict:
        return {
            "PatientName": "Test^Phantom",
            "PatientID": self.patient_id,
            "PatientBirthDate": "19700101",
            "PatientSex": "O",
            "StudyInstanceUID": self.uid,
            "StudyDate": "20261201",
            "StudyTime": "101500",
            "ReferringPhysicianName": "",
            "StudyID": "1",
            "AccessionNumber": "A1",
            "FrameOfReferenceUID": self.frame_of_reference,
            "PositionReferenceIndicator": "",
        }


def oblique(affine: np.ndarray, degrees: float) -> np.ndarray:
    """`affine` tilted about the patient's left-right axis, as a gantry tilt tilts the slices."""
    a = np.radians(degrees)
    tilt = np.eye(4)
    tilt[1:3, 1:3] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    return tilt @ affine


def write_ct_series(
    image: nib.Nifti1Image,
    folder,
    study: Study,
    number=2,
    description="venous",
    seed=0,
    image_type="AXIAL",
    modality="CT",
) -> list:
    """One file per slice of `image` (its first axis along the images' rows) in `folder`, named at random; returns the
    files in slice order. The voxels are stored as unsigned integers with an intercept of -1024, as scanners do;
    `modality` MR stores them as MR images."""
    storage = {"CT": CTImageStorage, "MR": MRImageStorage}[modality]
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    series = generate_uid()
    data = np.asanyarray(image.dataobj)
    spacing = np.linalg.norm(image.affine[:3, :3], axis=0)
    lps = RAS_TO_LPS @ image.affine[:3]
    numbers = rng.permutation(data.shape[2]) + 1
    files = []
    for k in range(data.shape[2]):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = storage
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.SOPClassUID = storage
        for keyword, value in study.attributes().items():
            setattr(ds, keyword, value)
        ds.Modality, ds.SeriesInstanceUID, ds.SeriesNumber = modality, series, number
        ds.SeriesDescription = description
        ds.PatientPosition, ds.Laterality = "FFS", ""
        ds.Manufacturer = "liverseg tests"
        ds.InstanceNumber = int(numbers[k])
        ds.ImageType = ["ORIGINAL", "PRIMARY", image_type]
        ds.PatientOrientation = ""
        ds.ContentDate, ds.ContentTime = "20261201", "101500"
        ds.AcquisitionNumber = 1
        ds.KVP = 120
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*lps[:, 0] / spacing[0], *lps[:, 1] / spacing[1])]
        ds.ImagePositionPatient = [f"{v:.4f}" for v in lps @ [0, 0, k, 1]]
        ds.PixelSpacing = [f"{spacing[1]:.4f}", f"{spacing[0]:.4f}"]  # between rows, between columns
        ds.SliceThickness = f"{spacing[2]:.4f}"
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = data.shape[1], data.shape[0]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "-1024", "1", "HU"
        ds.PixelData = np.round(data[:, :, k].T + 1024).clip(0, 65535).astype(np.uint16).tobytes()
        path = folder / f"{uuid.UUID(int=int(rng.integers(2**62)))}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return files


def coronal_localizer(folder, study: Study, seed=0) -> list:
    """One coronal image of the body, as a scout view is stored."""
    affine = np.array([[0.8, 0, 0, -20.0], [0, 0, 1.0, 30.0], [0, -2.0, 0, 60.0], [0, 0, 0, 1]])
    hu = np.full((40, 12, 1), 40.0, np.float32)
    return write_ct_series(nib.Nifti1Image(hu, affine), folder, study, 1, "scout", seed, "LOCALIZER")


def write_study_export(folder, hu: np.ndarray) -> tuple[Study, list, list]:
    """A study exported into one folder: a localizer, an arterial phase of `hu`'s first 6 slices and a venous phase of
    all; returns the study and the arterial and venous files."""
    study = Study()
    coronal_localizer(folder, study)
    arterial = write_ct_series(nib.Nifti1Image(hu[:, :, :6], AFFINE), folder, study, 2, "arterial", seed=1)
    venous = write_ct_series(nib.Nifti1Image(hu, AFFINE), folder, study, 3, "venous", seed=2)
    return study, arterial, venous
