"""Networks exported as ONNX and run by onnxruntime answer PyTorch's probabilities within 1e-4, at batch and spatial
sizes other than the export's (a 2D U-Net, a 2.5D tumour stage, a ResNet U-Net, a transformer encoder, a 3D DynUNet);
`export_segmenter` writes every stage and fold, and `Segmenter.load` runs them."""

import json

import pytest
import torch

from liverseg.inference.postprocess import PostSettings
from liverseg.inference.segmenter import SEGMENTER_FILE, Segmenter, export_segmenter, write_segmenter
from liverseg.models.checkpoint import load_model
from liverseg.models.exported import OnnxNetwork, example_input, export_onnx
from liverseg.models.heads import output_probabilities
from tests.helpers import write_checkpoint

CROP = {"size": 32, "margin_mm": 10.0, "jitter_mm": 5.0, "liver_hu": 100.0}
NETWORKS = {
    "unet": ({"kind": "unet", "base_channels": 4, "depth": 2}, [(1, 1, 32, 32), (3, 1, 64, 48)]),
    "tumour_2.5d": (
        {"kind": "unet", "base_channels": 4, "depth": 2, "input_slices": 3, "crop": CROP},
        [(2, 3, 32, 32), (1, 3, 48, 64)],
    ),
    "resnet18_unet": (
        {"kind": "smp", "arch": "Unet", "encoder": "resnet18", "encoder_weights": None, "head": "softmax"},
        [(2, 1, 64, 64), (1, 1, 96, 128)],
    ),
    "mit_b0_segformer": (
        {"kind": "smp", "arch": "Segformer", "encoder": "mit_b0", "encoder_weights": None},
        [(1, 1, 64, 64), (2, 1, 96, 64)],
    ),
    "dynunet_3d": (
        {"kind": "monai", "filters": [4, 4, 8], "patch": [4, 16, 16], "crop": CROP},
        [(1, 1, 4, 16, 16), (3, 1, 8, 32, 48)],
    ),
}


@pytest.mark.parametrize("name", list(NETWORKS))
def test_onnx_probabilities_equal_pytorchs_at_other_sizes(name, tmp_path):
    spec, shapes = NETWORKS[name]
    torch.manual_seed(0)
    model, recipe, size = load_model(write_checkpoint(tmp_path / "best.pt", spec), torch.device("cpu"))
    export_onnx(model, example_input(recipe, size), tmp_path / "best.onnx")
    exported = OnnxNetwork(tmp_path / "best.onnx")
    for shape in shapes:
        x = torch.randn(*shape)
        with torch.no_grad():
            expected = output_probabilities(model(x), recipe.head)
        got = output_probabilities(exported(x), recipe.head)
        assert got.shape == expected.shape
        assert float((got - expected).abs().max()) < 1e-4, shape


def test_an_exported_cascade_of_fold_ensembles_lists_and_loads_every_stage(tmp_path):
    """Two folds of a stage-1 U-Net and a 3D tumour stage: each fold exported, and the ONNX segmenter has the same
    stages, recipes and image sizes as the PyTorch one."""
    (tmp_path / "m").mkdir()
    folds = [write_checkpoint(tmp_path / "m" / f"fold_{k}.pt", NETWORKS["unet"][0]) for k in range(2)]
    tumour = write_checkpoint(tmp_path / "m" / "tumour.pt", NETWORKS["dynunet_3d"][0])
    stages = {"liver": folds, "tumour": [tumour]}
    write_segmenter(
        "cascade",
        tmp_path / "m" / SEGMENTER_FILE,
        stages,
        (-150, 250),
        PostSettings(),
        mirrored=("tumour",),
        min_lesion_peak=0.99,
    )
    export_segmenter(tmp_path / "m", tmp_path / "out")
    description = json.loads((tmp_path / "out" / SEGMENTER_FILE).read_text())
    assert description["onnx"] == {"liver": ["liver_fold0.onnx", "liver_fold1.onnx"], "tumour": "tumour.onnx"}
    cpu = torch.device("cpu")
    pytorch, onnx = Segmenter.load(tmp_path / "out", cpu), Segmenter.load(tmp_path / "out", cpu, "onnx")
    for role in ("liver", "tumour"):
        assert [type(m) for m in onnx.stages[role][0]] == [OnnxNetwork] * len(pytorch.stages[role][0])
        assert onnx.stages[role][1:] == pytorch.stages[role][1:]
    assert pytorch.flip_tta == onnx.flip_tta == {"liver": False, "tumour": True}, "the mirrored stage, exported"
    assert pytorch.min_lesion_peak == onnx.min_lesion_peak == 0.99, "the tumour stage's lesion peak, exported"
    assert pytorch.mirroring() == pytorch.flip_tta, "as described, unless the call says for every stage"
    assert pytorch.mirroring(True) == {"liver": True, "tumour": True}
    assert pytorch.mirroring(False) == {"liver": False, "tumour": False}
    with pytest.raises(FileNotFoundError, match="no ONNX stages; `liverseg export"):
        Segmenter.load(tmp_path / "m", cpu, "onnx")
