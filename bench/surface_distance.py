"""Time and peak memory of the surface distances on a 512x512x900 volume holding a liver-sized pair of masks.

Compared in the same run with the same distances computed on the whole volume (no cropping to the masks' box), which
is what a straightforward implementation does. Writes bench/results/surface_distance.md.

    python bench/surface_distance.py [--slices 900]
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
from measure import peak_of, python

HERE = Path(__file__).resolve().parent
SPACING = (0.7, 0.7, 1.0)

SETUP = """
import numpy as np
from scipy import ndimage
from liverseg.evaluation.surface import surface, surface_distances
masks = np.load({path!r})
pred, ref = masks["pred"], masks["ref"]
"""
CROPPED = "print(surface_distances(pred, ref, {spacing}))"
WHOLE = """
ps, rs = surface(pred), surface(ref)
to_ref = ndimage.distance_transform_edt(~rs, sampling={spacing})[ps]
to_pred = ndimage.distance_transform_edt(~ps, sampling={spacing})[rs]
print(np.concatenate([to_ref, to_pred]).mean())
"""


def liver_masks(slices: int) -> dict[str, np.ndarray]:
    """Two ellipsoids of liver size (about 1.6 l) offset by a few mm, in a 512x512 field of view."""
    x, y, z = np.ogrid[:512, :512, :slices]
    centre_z = slices / 2

    def ellipsoid(dx):
        return ((x - 200 - dx) / 130) ** 2 + ((y - 230) / 100) ** 2 + ((z - centre_z) / 120) ** 2 < 1

    return {"pred": ellipsoid(4), "ref": ellipsoid(0)}


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--slices", type=int, default=900)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "masks.npz"
        np.savez(path, **liver_masks(a.slices))
        setup = SETUP.format(path=str(path))
        base_mib, base_s = peak_of(python(setup))
        rows = [("loading the masks only", base_mib, base_s)]
        for name, code in (("whole volume (baseline)", WHOLE), ("masks' box (liverseg)", CROPPED)):
            mib, seconds = peak_of(python(setup + code.format(spacing=SPACING)))
            rows.append((name, mib, seconds))
    table = "\n".join(
        [
            f"# surface distances, two liver-sized masks in 512x512x{a.slices} (spacing {SPACING} mm)",
            "",
            "| computed on | peak RSS (MiB) | wall time (s) |",
            "|---|---|---|",
            *[f"| {name} | {mib:,.0f} | {seconds:.1f} |" for name, mib, seconds in rows],
            "",
        ]
    )
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "surface_distance.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
