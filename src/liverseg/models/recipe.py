"""What a model entry of the config sees and learns: its head, loss, input slices, sampling and, for a tumour stage,
its crops; with the study's choices as defaults.

A 3D entry (`kind: monai`) sees patches of the liver's box instead of slices: `patch` (slices, rows, columns), drawn
`patches_per_case` times per case and epoch, a share `tumour_fraction` of them centred on a tumour voxel (nnU-Net
forces a third of its patches onto foreground), and is applied by sliding window (`sliding_window`: overlap, blending
and windows per forward pass).
"""

from __future__ import annotations

from dataclasses import dataclass, field

STUDY_LOSS = {"tversky": {"weight": 1.0, "alpha": 0.7, "beta": 0.3}}
# MONAI's sliding_window_inference settings; Gaussian blending weighs each window's centre over its edges, as nnU-Net
SLIDING_WINDOW = {"overlap": 0.5, "mode": "gaussian", "batch_size": 4}


@dataclass(frozen=True)
class Recipe:
    """What a model entry sees and learns, with the study's choices as defaults."""

    head: str = "sigmoid"
    loss: dict = field(default_factory=lambda: STUDY_LOSS)
    input_slices: int = 1  # 2.5D: neighbouring slices as channels
    neighbour_mm: float | None = None  # 2.5D: neighbours the slices nearest this far apart; None: adjacent slices
    tumour_oversample: float = 1.0
    small_lesion_oversample: float | None = None  # slices holding a lesion under 10 mm; None: as tumour slices
    background_fraction: float = 1.0
    crop: dict | None = None  # tumour stage: {size, margin_mm, jitter_mm, liver_hu}
    patch: tuple[int, int, int] | None = None  # 3D entries only
    patches_per_case: int = 8
    tumour_fraction: float = 0.5
    sliding_window: dict = field(default_factory=lambda: SLIDING_WINDOW)

    @classmethod
    def from_spec(cls, spec: dict) -> Recipe:
        sampling = spec.get("sampling", {})
        return cls(
            head=spec.get("head", "sigmoid"),
            loss=spec.get("loss", STUDY_LOSS),
            input_slices=spec.get("input_slices", 1),
            neighbour_mm=spec.get("neighbour_mm"),
            tumour_oversample=sampling.get("tumour_oversample", 1.0),
            small_lesion_oversample=sampling.get("small_lesion_oversample"),
            background_fraction=sampling.get("background_fraction", 1.0),
            crop=spec.get("crop"),
            patch=tuple(spec["patch"]) if "patch" in spec else None,
            patches_per_case=sampling.get("patches_per_case", 8),
            tumour_fraction=sampling.get("tumour_fraction", 0.5),
            sliding_window={**SLIDING_WINDOW, **spec.get("sliding_window", {})},
        )

    @property
    def volumetric(self) -> bool:
        return self.patch is not None

    @property
    def regions(self) -> tuple[str, ...]:
        return ("tumour",) if self.crop is not None else ("liver", "tumour")
