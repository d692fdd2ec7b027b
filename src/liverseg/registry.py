"""A training run's best model in the MLflow Model Registry, under the model's name, with the alias `champion`.

It is an MLflow pyfunc: it takes a batch of normalised slices, (N, input_slices, H, W) float32 in [0, 1] (the HU
window of the run, as `preprocess` writes them), and returns the probability of each nested region, (N, regions, H, W)
(liver and tumour for a stage-1 model, tumour for a tumour stage), for any batch size and any image size the model
accepts (sides a multiple of its divisor). The package's code travels with the model, so loading it needs torch and
segmentation_models_pytorch but not this checkout:

    mlflow.set_tracking_uri("sqlite:///experiments/synthetic/mlflow.db")
    model = mlflow.pyfunc.load_model("models:/unet@champion")
    probabilities = model.predict(slices)
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import torch
from mlflow.models import ModelSignature
from mlflow.types import Schema, TensorSpec

import liverseg
from liverseg.tracking import store_lock

ALIAS = "champion"


class SliceSegmenter(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        from liverseg.predict import load_model

        self.model, self.recipe, _ = load_model(Path(context.artifacts["checkpoint"]), torch.device("cpu"))

    def predict(self, context, model_input, params=None):
        from liverseg.losses import region_probabilities

        with torch.no_grad():
            logits = self.model(torch.as_tensor(np.asarray(model_input, dtype=np.float32)))
        return region_probabilities(logits, self.recipe.head).numpy()


def register_best(tracking_uri: str, run_id: str, name: str, checkpoint: Path, input_slices: int, regions: int) -> int:
    """Log `checkpoint` as the run's pyfunc model, register it as `name` and point the alias at it; its version."""
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, input_slices, -1, -1))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, regions, -1, -1))]),
    )
    mlflow.set_tracking_uri(tracking_uri)
    with store_lock(tracking_uri), mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=SliceSegmenter(),
            artifacts={"checkpoint": str(checkpoint)},
            code_paths=[str(Path(liverseg.__file__).parent)],
            signature=signature,
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "segmentation-models-pytorch", "numpy"],
            registered_model_name=name,
        )
        version = int(info.registered_model_version)
        mlflow.MlflowClient(tracking_uri).set_registered_model_alias(name, ALIAS, version)
    return version
