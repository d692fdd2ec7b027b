"""A label map as a DICOM Segmentation (highdicom): one binary segment per structure, each frame derived from the source
image it lies on (referenced by its SOP Instance UID, at its plane position); frames without the structure are left
out, as highdicom does by default."""

from __future__ import annotations

import highdicom as hd
import numpy as np
from pydicom.sr.codedict import codes

from liverseg.dicom.structures import STRUCTURES, Algorithm

SERIES_NUMBER = 901  # beside the scanner's series numbers, which count from 1


def segmentation(frames: np.ndarray, sources: list, algorithm: Algorithm):
    """The Segmentation of `frames` (label maps, one per source image, as `structures.source_frames` cuts them)."""
    identification = hd.AlgorithmIdentificationSequence(
        name=f"liverseg {algorithm.name}", family=codes.cid7162.ArtificialIntelligence, version=algorithm.version
    )
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=s.number,
            segment_label=s.label,
            segmented_property_category=s.category,
            segmented_property_type=s.type,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=identification,
            anatomic_regions=None if s.type == codes.SCT.Liver else [codes.SCT.Liver],
            display_color=hd.color.CIELabColor.from_rgb(*s.colour),
        )
        for s in STRUCTURES
    ]
    masks = np.stack([s.mask(frames) for s in STRUCTURES], axis=-1)
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=masks,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=SERIES_NUMBER,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="liverseg",
        manufacturer_model_name=algorithm.name,
        software_versions=algorithm.version,
        device_serial_number=f"{algorithm.name}-{algorithm.version}",
        content_label="LIVERSEG",
        content_description=f"Liver and liver tumours by liverseg {algorithm.name}",
    )
    seg.SeriesDescription = f"liverseg {algorithm.name} segmentation"
    return seg
