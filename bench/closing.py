"""Time of the post-processing's closing (liver and tumour, 5 mm per axial slice, as the default config) on a
512x512xN scan holding a liver-sized label map, in the mask's box against the whole volume as before; the two must
give the same voxels. Writes bench/results/closing.md.

    python bench/closing.py [--slices 300]
"""

import argparse
import os
import platform
import time

import numpy as np
from measure import write_result
from scipy import ndimage

from liverseg.inference.postprocess import close_labels, footprint
from liverseg.labels import label_map, liver_mask, tumour_mask

SPACING = (0.7, 0.7, 1.0)
RADIUS_MM = 5.0


def scan_labels(slices: int) -> np.ndarray:
    """A liver ellipsoid of about 1.6 l with a ragged edge and holes, and three tumours, in a 512x512 scan."""
    x, y, z = np.ogrid[:512, :512, :slices]
    liver = ((x - 170) / 110) ** 2 + ((y - 250) / 95) ** 2 + ((z - slices / 2) / 75) ** 2 <= 1
    liver &= np.random.default_rng(0).random(liver.shape) > 0.05
    tumour = np.zeros_like(liver)
    for cx, cy, r in ((150, 230, 18), (200, 280, 9), (130, 300, 4)):
        tumour |= ((x - cx) ** 2 + (y - cy) ** 2 + ((z - slices / 2) * 1.4) ** 2) <= r**2
    return label_map(liver | tumour, tumour & liver)


def whole_volume_closing(labels: np.ndarray) -> np.ndarray:
    """The closing as it was: each mask padded by its edges and closed in the whole volume."""
    structure = footprint(RADIUS_MM, SPACING)
    reach = [(s // 2, s // 2) for s in structure.shape]

    def close(mask):
        closed = ndimage.binary_closing(np.pad(mask, reach, mode="edge"), structure=structure)
        return closed[tuple(slice(r, r + n) for (r, _), n in zip(reach, mask.shape))]

    return label_map(close(liver_mask(labels)), close(tumour_mask(labels)))


def timed(function, labels):
    started = time.perf_counter()
    out = function(labels)
    return out, time.perf_counter() - started


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--slices", type=int, default=300)
    a = p.parse_args()
    labels = scan_labels(a.slices)
    whole, whole_s = timed(whole_volume_closing, labels)
    boxed, boxed_s = timed(lambda lab: close_labels(lab, SPACING, RADIUS_MM), labels)
    same = np.array_equal(whole, boxed)
    share = liver_mask(labels).any(axis=(0, 1)).mean()
    lines = [
        f"# closing, 512x512x{a.slices}, {RADIUS_MM} mm per axial slice at {SPACING} mm",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; liver "
        f"{np.count_nonzero(liver_mask(labels)) * np.prod(SPACING) / 1000:.0f} ml on {share:.0%} of the slices",
        "",
        "| closing | seconds |",
        "|---|---|",
        f"| whole volume (before) | {whole_s:.2f} |",
        f"| mask's box (now) | {boxed_s:.2f} |",
        "",
        f"Speed-up {whole_s / boxed_s:.1f}x; the same voxels: {same}.",
        "",
    ]
    write_result("closing", "\n".join(lines))
    if not same:
        raise SystemExit("the closing in the mask's box differs from the whole volume's")


if __name__ == "__main__":
    main()
