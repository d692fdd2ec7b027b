"""A model folder's segmenter: `segmenter.json`, written by the workflow beside the weights, and what it describes.

The description names the trained stages to apply (a stage-1 model, or a cascade's stage-1 model and tumour stage),
with their weights' paths relative to its folder (a list for an ensemble of cross-validation folds, whose
probabilities are averaged), the stages whose slices are averaged with their mirror's (`flip_tta`, as their model
entries say), a cascade's lowest lesion peak (`min_lesion_peak`, as its tumour stage's entry says), the HU window the
stages were trained with, the post-processing of the run and the quality limits that `liverseg segment` checks each
result against.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from liverseg.atomic import write_json
from liverseg.data import nifti
from liverseg.inference.postprocess import PostSettings, postprocessed
from liverseg.inference.predict import stage1_labels, tumour_stage
from liverseg.inference.quality import QualityLimits
from liverseg.labels import label_map, liver_mask
from liverseg.models.checkpoint import load_model, load_models
from liverseg.models.exported import example_input, export_onnx, load_onnx_models

SEGMENTER_FILE = "segmenter.json"
RUNTIMES = ("torch", "onnx")


def write_segmenter(
    name: str,
    out: Path,
    stages: dict[str, list[Path]],
    window,
    postprocess: PostSettings,
    liver_postprocess: PostSettings | None = None,
    mirrored: tuple[str, ...] = (),
    min_lesion_peak: float | None = None,
) -> None:
    """Write `segmenter.json`; the stages' weights are named relative to its folder, so the models folder can move,
    as one path, or a list of the folds of an ensemble. A cascade's stage-1 liver is post-processed as its stage-1
    model's own (`liver_postprocess`; `postprocess` when None) before the tumour stage sees it, whose lesions are
    kept where their highest probability reaches `min_lesion_peak` (None: all). The `mirrored` roles average each
    slice's probabilities with its mirror's."""

    def relative(path: Path) -> str:
        return Path(os.path.relpath(path, out.parent)).as_posix()

    description = {
        "name": name,
        "stages": {
            role: relative(paths[0]) if len(paths) == 1 else [relative(p) for p in paths]
            for role, paths in stages.items()
        },
        "flip_tta": {role: role in mirrored for role in stages},
        "window": [float(v) for v in window],
        "postprocess": dataclasses.asdict(postprocess),
        "quality": QualityLimits().to_dict(),  # the defaults `segment` checks each scan's result against
    }
    if "tumour" in stages:
        description["liver_postprocess"] = dataclasses.asdict(liver_postprocess or postprocess)
        description["min_lesion_peak"] = min_lesion_peak
    write_json(description, out)


def described_postprocess(folder: Path) -> PostSettings | None:
    """The post-processing a model or cascade folder's `segmenter.json` applies to its labels; None without one."""
    path = Path(folder) / SEGMENTER_FILE
    return PostSettings(**json.loads(path.read_text())["postprocess"]) if path.is_file() else None


def package_segmenter(folder: Path, dest: Path) -> Path:
    """A self-contained copy of a model folder's segmenter at `dest`: its description and each stage's weights as
    `<role>.pt` (a cascade's stages live in other models' folders)."""
    description = json.loads((folder / SEGMENTER_FILE).read_text())
    dest.mkdir(parents=True)
    for role, weights in description["stages"].items():
        folds = stage_weights(weights)
        names = [f"{role}.pt"] if len(folds) == 1 else [f"{role}_fold{k}.pt" for k in range(len(folds))]
        for path, name in zip(folds, names):
            shutil.copyfile(folder / path, dest / name)
        description["stages"][role] = names[0] if len(names) == 1 else names
    write_json(description, dest / SEGMENTER_FILE)
    return dest


def export_segmenter(folder: Path, dest: Path) -> Path:
    """`package_segmenter`'s copy at `dest`, with every stage (each fold of an ensemble) also as ONNX beside its
    weights (`<role>.onnx`, `<role>_fold<k>.onnx`), listed under `onnx` in the description."""
    package_segmenter(folder, dest)
    description = json.loads((dest / SEGMENTER_FILE).read_text())
    description["onnx"] = {}
    for role, weights in description["stages"].items():
        names = [Path(w).with_suffix(".onnx").name for w in stage_weights(weights)]
        for w, name in zip(stage_weights(weights), names):
            model, recipe, size = load_model(dest / w, torch.device("cpu"))
            export_onnx(model, example_input(recipe, size), dest / name)
        description["onnx"][role] = names[0] if isinstance(weights, str) else names
    write_json(description, dest / SEGMENTER_FILE)
    return dest


def stage_weights(weights: str | list[str]) -> list[str]:
    """A stage's weights in a description, as a list: one path, or the folds of an ensemble."""
    return [weights] if isinstance(weights, str) else list(weights)


@dataclass
class Segmenter:
    """The loaded stages of a model folder and how to apply them."""

    name: str
    stages: dict  # role -> (models: one, or the folds of an ensemble; recipe; image size)
    window: tuple[float, float]
    post: PostSettings
    liver_post: PostSettings  # a cascade's, on its stage-1 liver before the tumour stage (a stage-1 model: post)
    quality: QualityLimits
    histories: list[list[Path]]  # per stage, its folds' training histories, where they lie beside the weights
    flip_tta: dict[str, bool]  # role -> whether its slices are averaged with their mirror's
    min_lesion_peak: float | None  # a cascade's tumour stage keeps the lesions whose peak reaches it; None: all

    @classmethod
    def load(cls, folder: Path, device, runtime: str = "torch") -> Segmenter:
        """The segmenter of a folder, its networks run by PyTorch or, for a folder `liverseg export` wrote, by
        onnxruntime (`runtime` onnx)."""
        path = Path(folder) / SEGMENTER_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"{folder}: no {SEGMENTER_FILE}; give a model or cascade folder of a finished run "
                "(experiments/<experiment>/models/<name>/, written by the workflow's `segmenter` rule)"
            )
        if runtime not in RUNTIMES:
            raise ValueError(f"unknown runtime {runtime}; choose from {', '.join(RUNTIMES)}")
        description = json.loads(path.read_text())
        if runtime == "onnx" and "onnx" not in description:
            raise FileNotFoundError(f"{folder}: no ONNX stages; `liverseg export {folder} --out DIR` writes them")
        stages, histories = {}, []
        for role, weights in description["stages"].items():
            files = [Path(folder) / w for w in stage_weights(weights)]
            exports = [Path(folder) / w for w in stage_weights(description.get("onnx", {}).get(role, []))]
            for file in files + (exports if runtime == "onnx" else []):
                if not file.is_file():
                    raise FileNotFoundError(f"{path}: its {role} stage's file {file} is missing")
            stages[role] = load_onnx_models(exports, files) if runtime == "onnx" else load_models(files, device)
            histories.append([h for h in (file.parent / "history.csv" for file in files) if h.is_file()])
        return cls(
            description["name"],
            stages,
            tuple(description["window"]),
            PostSettings(**description["postprocess"]),
            PostSettings(**description.get("liver_postprocess", description["postprocess"])),  # older: the same
            QualityLimits.from_dict(description.get("quality", {})),  # older descriptions: the defaults
            histories,
            {role: bool(description.get("flip_tta", {}).get(role, False)) for role in stages},  # older: none
            description.get("min_lesion_peak"),  # older: every lesion
        )

    def unprocessed(self, scan: nib.Nifti1Image, device, flip_tta: bool | None = None, observe=None) -> np.ndarray:
        """Canonical (X, Y, Z) labels before the last post-processing, as the workflow's prediction rules write them:
        stage 1's; for a cascade, the tumour stage's tumours inside stage 1's post-processed liver. Each stage is
        mirrored as `mirroring(flip_tta)` says. `observe` sees the stage-1 liver probabilities batch by batch."""
        mirrored = self.mirroring(flip_tta)
        models, recipe, size = self.stages["liver"]
        labels = stage1_labels(models, recipe, size, scan, self.window, device, mirrored["liver"], observe)
        if self.cascade:
            models, recipe, _ = self.stages["tumour"]
            liver = liver_mask(self.postprocessed(labels, scan, self.liver_post))
            tumour = tumour_stage(
                models, recipe, scan, liver, self.window, device, mirrored["tumour"], self.min_lesion_peak
            )
            labels = label_map(liver, tumour)
        return labels

    @property
    def cascade(self) -> bool:
        return "tumour" in self.stages

    def with_min_lesion_peak(self, value: float) -> Segmenter:
        """This segmenter, its tumour stage keeping the lesions whose highest probability reaches `value` (0: every
        lesion) instead of the described lowest peak: the cut was judged on the run's own phantoms, a user's scans
        may call for another."""
        if not self.cascade:
            raise ValueError(f"{self.name}: a stage-1 model has no tumour stage whose lesions a lowest peak could keep")
        return dataclasses.replace(self, min_lesion_peak=value)

    def mirroring(self, flip_tta: bool | None = None) -> dict[str, bool]:
        """Whether each stage averages its slices with their mirror's: as described, unless `flip_tta` says for all."""
        return {role: mirrored if flip_tta is None else flip_tta for role, mirrored in self.flip_tta.items()}

    def postprocessed(
        self, labels: np.ndarray, scan: nib.Nifti1Image, settings: PostSettings | None = None
    ) -> np.ndarray:
        """The labels after the entry's post-processing, or after `settings`."""
        return postprocessed(labels, nifti.canonical_spacing(scan), settings or self.post)

    def labels(self, scan: nib.Nifti1Image, device, flip_tta: bool | None = None, observe=None) -> np.ndarray:
        """Canonical labels of a scan, post-processed (the workflow's prediction, post-processing and cascade rules
        in one)."""
        return self.postprocessed(self.unprocessed(scan, device, flip_tta, observe), scan)
