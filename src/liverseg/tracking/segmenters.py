"""Where `liverseg segment`, `export` and `evaluate` take a segmenter from: a model or cascade folder, or a segmenter
registered in MLflow (`models:/<entry>-segmenter@champion`). MLflow is imported for the second only: its import
takes over a second of every `segment` call."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from liverseg.inference.segmenter import SEGMENTER_FILE, Segmenter, export_segmenter

ALIAS = "champion"
SEGMENTER_SUFFIX = "-segmenter"


def download_segmenter(uri: str, tracking_uri: str | None, dest: Path) -> Path:
    """The segmenter folder of a registered `<entry>-segmenter` model, downloaded into `dest`."""
    tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not tracking_uri:
        raise ValueError(
            f"{uri}: say which MLflow store holds it, with --tracking-uri (for example "
            "sqlite:///experiments/synthetic/mlflow.db) or MLFLOW_TRACKING_URI"
        )
    import mlflow
    from mlflow.exceptions import MlflowException

    mlflow.set_tracking_uri(tracking_uri)
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dest)))
    except MlflowException as error:
        raise ValueError(f"{uri}: not found in {tracking_uri}: {error.message}") from None
    folder = local / "artifacts" / "segmenter"
    if not (folder / SEGMENTER_FILE).is_file():
        raise ValueError(
            f"{uri} is a model of single slices, not a whole segmenter; segmenters are registered as "
            f"<entry>{SEGMENTER_SUFFIX} (for example models:/unet_cascade{SEGMENTER_SUFFIX}@{ALIAS})"
        )
    return folder


def load_segmenter(model: str, device, tracking_uri: str | None = None, runtime: str = "torch") -> Segmenter:
    """A model or cascade folder, or a segmenter registered in MLflow (`models:/<entry>-segmenter@champion`); its
    networks run by `runtime` (onnx: a folder `liverseg export` wrote)."""
    if not model.startswith("models:/"):
        return Segmenter.load(Path(model), device, runtime)
    with tempfile.TemporaryDirectory() as folder:
        segmenter = Segmenter.load(download_segmenter(model, tracking_uri, Path(folder)), device, runtime)
    segmenter.histories = []  # they were in the downloaded folder, gone now
    return segmenter


def export_model(model: str, dest: Path, tracking_uri: str | None = None) -> Path:
    """`inference.segmenter.export_segmenter` of a model or cascade folder, or of a registered segmenter."""
    if not model.startswith("models:/"):
        return export_segmenter(Path(model), dest)
    with tempfile.TemporaryDirectory() as folder:
        return export_segmenter(download_segmenter(model, tracking_uri, Path(folder)), dest)
