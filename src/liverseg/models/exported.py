"""A trained network as ONNX, for CPU inference without PyTorch's kernels: its export (batch and every spatial size
dynamic) and an onnxruntime session called as the torch module was, a tensor in and logits out.

The export takes torch.onnx's TorchScript exporter: the torch.export-based one (torch 2.14.1, onnxscript 0.7.2) bakes
the export's batch size into the reshapes of a transformer encoder (Segformer's mit_b0), whose ONNX file then fails
at any other batch size.

The weights file beside it (`best.pt`'s format) still says what the network is (its recipe and image size); the ONNX
file holds the computation only.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from liverseg.atomic import atomic_path
from liverseg.models.checkpoint import check_one_entry, recipe_of
from liverseg.models.recipe import Recipe

INPUT, OUTPUT = "image", "logits"
OPSET = 18


def example_input(recipe: Recipe, image_size: int) -> torch.Tensor:
    """Inputs of the size the network was trained at: slice stacks, or 3D patches; two of them, since the exporter
    would take a batch of one for a constant."""
    if recipe.volumetric:
        return torch.zeros(2, 1, *recipe.patch)
    return torch.zeros(2, recipe.input_slices, image_size, image_size)


def export_onnx(model: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    """Write `model` (in eval mode, on the CPU) as one ONNX file whose batch and spatial sizes are free."""
    sizes = {0: "batch", **{axis: f"size_{axis}" for axis in range(2, example.ndim)}}
    with atomic_path(path) as partial, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation notes
        torch.onnx.export(
            model.cpu().eval(),
            (example,),
            str(partial),
            input_names=[INPUT],
            output_names=[OUTPUT],
            dynamic_axes={INPUT: sizes, OUTPUT: sizes},
            opset_version=OPSET,
            dynamo=False,
            external_data=False,
            verbose=False,
        )


class OnnxNetwork:
    """An exported network run by onnxruntime on the CPU with PyTorch's thread count; called with a tensor on any
    device, it answers logits on that device."""

    def __init__(self, path: Path):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.log_severity_level = 3  # errors only
        self.path = Path(path)
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        (logits,) = self.session.run([OUTPUT], {INPUT: x.detach().float().cpu().contiguous().numpy()})
        return torch.from_numpy(logits).to(x.device)


def load_onnx_models(onnx_paths: list[Path], weight_paths: list[Path]) -> tuple[list[OnnxNetwork], Recipe, int]:
    """The ONNX exports of several trainings of one model entry, as `checkpoint.load_models` loads their weights:
    the networks, their recipe and image size (read from the weights files)."""
    recipes = [recipe_of(path) for path in weight_paths]
    check_one_entry(weight_paths, recipes)
    return [OnnxNetwork(path) for path in onnx_paths], *recipes[0]
