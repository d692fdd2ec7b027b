"""The label convention of LiTS and the Medical Segmentation Decathlon's Task03_Liver: 0 background, 1 liver,
2 tumour. Tumours lie inside the liver, so the liver is label 1 or 2 wherever it is measured, as LiTS scores it.

The masks work on numpy arrays and torch tensors alike.
"""

import numpy as np

BACKGROUND, LIVER, TUMOUR = 0, 1, 2
VALID = frozenset({BACKGROUND, LIVER, TUMOUR})


def liver_mask(labels):
    """The liver with its tumours."""
    return labels >= LIVER


def tumour_mask(labels):
    return labels == TUMOUR


def parenchyma_mask(labels):
    """The liver without its tumours."""
    return labels == LIVER


def label_map(liver: np.ndarray, tumour: np.ndarray) -> np.ndarray:
    """The uint8 label map of a liver mask and a tumour mask; a tumour voxel is tumour (and so liver) wherever it is.
    Written in uint8 throughout: `np.where` with a Python int makes an int64 volume first, 30x slower on a scan."""
    labels = np.asarray(liver, dtype=bool).astype(np.uint8)
    np.copyto(labels, np.uint8(TUMOUR), where=np.asarray(tumour, dtype=bool))
    return labels


REGIONS = {"liver": liver_mask, "tumour": tumour_mask}  # the nested regions a model predicts, outermost first
