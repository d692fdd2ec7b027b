"""What a model entry of the config sees and learns: its head, loss, input slices, sampling and, for a tumour stage,
its crops; with the study's choices as defaults."""

from __future__ import annotations

from dataclasses import dataclass, field

STUDY_LOSS = {"tversky": {"weight": 1.0, "alpha": 0.7, "beta": 0.3}}


@dataclass(frozen=True)
class Recipe:
    """What a model entry sees and learns, with the study's choices as defaults."""

    head: str = "sigmoid"
    loss: dict = field(default_factory=lambda: STUDY_LOSS)
    input_slices: int = 1  # 2.5D: neighbouring slices as channels
    tumour_oversample: float = 1.0
    background_fraction: float = 1.0
    crop: dict | None = None  # tumour stage: {size, margin_mm, jitter_mm, liver_hu}

    @classmethod
    def from_spec(cls, spec: dict) -> Recipe:
        sampling = spec.get("sampling", {})
        return cls(
            head=spec.get("head", "sigmoid"),
            loss=spec.get("loss", STUDY_LOSS),
            input_slices=spec.get("input_slices", 1),
            tumour_oversample=sampling.get("tumour_oversample", 1.0),
            background_fraction=sampling.get("background_fraction", 1.0),
            crop=spec.get("crop"),
        )

    @property
    def regions(self) -> tuple[str, ...]:
        return ("tumour",) if self.crop is not None else ("liver", "tumour")
