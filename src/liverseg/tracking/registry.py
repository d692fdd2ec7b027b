"""A training run's best model in the MLflow Model Registry, under the model's name, with the alias `champion`.

It is an MLflow pyfunc: it takes a batch of normalised slices, (N, input_slices, H, W) float32 in [0, 1] (the HU
window of the run, as `preprocess` writes them; a 2.5D model's neighbours as its entry's `neighbour_mm` places them),
and returns the probability of each nested region, (N, regions, H, W)
(liver and tumour for a stage-1 model, tumour for a tumour stage), for any batch size and any image size the model
accepts (sides a multiple of its divisor); a 3D model takes (N, 1, D, H, W) volumes and returns (N, regions, D, H, W). The package's code travels with the model, so loading it needs torch and
segmentation_models_pytorch but not this checkout:

    mlflow.set_tracking_uri("sqlite:///experiments/synthetic/mlflow.db")
    model = mlflow.pyfunc.load_model("models:/unet@champion")
    probabilities = model.predict(slices)

Each model and cascade of a finished run is also registered whole, as `<entry>-segmenter` (alias `champion`): its
stages' weights with their HU window and post-processing, what `liverseg segment models:/<entry>-segmenter@champion`
applies to a scan. As a pyfunc it takes a CT volume in HU on canonical (RAS+) axes, with its voxel spacing in mm as
the parameter `spacing`, and returns the label map (0 background, 1 liver, 2 tumour).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import torch
from mlflow.models import ModelSignature
from mlflow.types import ParamSchema, ParamSpec, Schema, TensorSpec

import liverseg
from liverseg.inference.segmenter import (
    SEGMENTER_FILE,
    Segmenter,
    package_segmenter,
    stage_weights,
)
from liverseg.models.checkpoint import load_model
from liverseg.models.heads import region_probabilities
from liverseg.models.recipe import Recipe
from liverseg.tracking import runs
from liverseg.tracking.runs import store_lock
from liverseg.tracking.segmenters import ALIAS, SEGMENTER_SUFFIX


class SliceSegmenter(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        self.model, self.recipe, _ = load_model(Path(context.artifacts["checkpoint"]), torch.device("cpu"))

    def predict(self, context, model_input, params=None):
        with torch.no_grad():
            logits = self.model(torch.as_tensor(np.asarray(model_input, dtype=np.float32)))
        return region_probabilities(logits, self.recipe.head).numpy()


class ScanSegmenter(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        self.segmenter = Segmenter.load(Path(context.artifacts["segmenter"]), torch.device("cpu"))

    def predict(self, context, model_input, params=None):
        import nibabel as nib

        spacing = [float(v) for v in (params or {}).get("spacing", [1.0, 1.0, 1.0])]
        scan = nib.Nifti1Image(np.asarray(model_input, dtype=np.float32), np.diag([*spacing, 1.0]))
        return self.segmenter.labels(scan, torch.device("cpu"))


def _log_and_register(tracking_uri: str, run_id: str, name: str, python_model, artifacts: dict, signature) -> int:
    """Log a pyfunc model (with this package's code) in the run, register it as `name` and point the alias at it."""
    mlflow.set_tracking_uri(tracking_uri)
    with store_lock(tracking_uri), mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=python_model,
            artifacts=artifacts,
            code_paths=[str(Path(liverseg.__file__).parent)],
            signature=signature,
            pip_requirements=[
                f"torch=={torch.__version__.split('+')[0]}",
                "segmentation-models-pytorch",
                "monai",
                "numpy",
                "nibabel",
                "scipy",
            ],
            registered_model_name=name,
        )
        version = int(info.registered_model_version)
        mlflow.MlflowClient(tracking_uri).set_registered_model_alias(name, ALIAS, version)
    return version


def register_best(tracking_uri: str, run_id: str, name: str, checkpoint: Path, recipe: Recipe) -> int:
    """Log `checkpoint` as the run's pyfunc model, register it as `name` and point the alias at it; its version."""
    spatial = (-1, -1, -1) if recipe.volumetric else (-1, -1)
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, recipe.input_slices, *spatial))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, len(recipe.regions), *spatial))]),
    )
    return _log_and_register(tracking_uri, run_id, name, SliceSegmenter(), {"checkpoint": str(checkpoint)}, signature)


def register_segmenter(tracking_uri: str, experiment: str, entry: str, folder: Path) -> dict:
    """Register a model or cascade folder's segmenter as `<entry>-segmenter`, in a run of its own whose tags name the
    training runs of its stages; the registered name, version and run."""
    description = json.loads((folder / SEGMENTER_FILE).read_text())
    tags = {"kind": "segmenter"}
    for role, weights in description["stages"].items():
        run_files = [(folder / path).parent / "run.json" for path in stage_weights(weights)]
        run_ids = [json.loads(path.read_text())["run_id"] for path in run_files if path.is_file()]
        if run_ids:
            tags[f"{role}_run"] = ",".join(run_ids)  # the folds' runs, for an ensemble
    name = f"{entry}{SEGMENTER_SUFFIX}"
    client, run_id = runs.start_run(
        tracking_uri, experiment, name, {"segmenter": description}, Path("mlartifacts"), tags
    )
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1, -1))]),
        outputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, -1, -1))]),
        params=ParamSchema([ParamSpec("spacing", "double", [1.0, 1.0, 1.0], shape=(-1,))]),
    )
    try:
        with tempfile.TemporaryDirectory() as temporary:
            packed = package_segmenter(folder, Path(temporary) / "segmenter")
            version = _log_and_register(
                tracking_uri, run_id, name, ScanSegmenter(), {"segmenter": str(packed)}, signature
            )
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return {"name": name, "version": version, "alias": ALIAS, "run_id": run_id, "tracking_uri": tracking_uri}
