import pytest
import torch

from liverseg.models.checkpoint import load_model, make_checkpoint, save_checkpoint
from liverseg.models.networks import UNet, build_model
from liverseg.models.recipe import Recipe


def test_classic_unet_shapes_and_width():
    model = build_model({"kind": "unet", "base_channels": 4, "depth": 3})
    assert isinstance(model, UNet)
    assert model(torch.zeros(2, 1, 32, 48)).shape == (2, 2, 32, 48)
    narrow = sum(p.numel() for p in model.parameters())
    wide = sum(p.numel() for p in build_model({"kind": "unet", "base_channels": 8, "depth": 3}).parameters())
    assert 3.5 < wide / narrow < 4.5, "parameters grow with the square of the width"
    up = [m for m in model.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    pools = [m for m in model.modules() if isinstance(m, torch.nn.MaxPool2d)]
    assert len(up) == 3 and len(pools) == 1


def test_resnet50_unet_takes_one_channel():
    model = build_model({"kind": "smp", "arch": "Unet", "encoder": "resnet50", "encoder_weights": None})
    assert model.encoder.conv1.in_channels == 1
    assert sum(p.numel() for p in model.encoder.parameters()) > 20e6  # a real ResNet50
    model.eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 1, 64, 64)).shape == (1, 2, 64, 64)


def test_recipe_sets_channels_in_and_out():
    model = build_model({"kind": "unet", "base_channels": 4, "depth": 2, "input_slices": 3, "head": "softmax"})
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32), "3 slices in; background, liver, tumour out"
    stage = build_model({"kind": "unet", "base_channels": 4, "depth": 2, "input_slices": 5, "crop": {"size": 64}})
    assert stage(torch.zeros(1, 5, 32, 32)).shape == (1, 1, 32, 32), "a tumour stage has one region: tumour"
    assert Recipe.from_spec({"kind": "unet", "crop": {}}).regions == ("tumour",)
    assert Recipe.from_spec({"kind": "unet"}).loss == {"tversky": {"weight": 1.0, "alpha": 0.7, "beta": 0.3}}


def test_pretrained_first_convolution_is_adapted_not_reinitialised(monkeypatch):
    """smp adapts pretrained RGB weights to k input slices; checked with weights written here (no download)."""
    import segmentation_models_pytorch as smp

    rgb = smp.create_model("Unet", encoder_name="resnet18", encoder_weights=None, in_channels=3, classes=2)
    weights = rgb.encoder.conv1.weight.detach().clone()
    from segmentation_models_pytorch.encoders import _utils

    five = smp.create_model("Unet", encoder_name="resnet18", encoder_weights=None, in_channels=3, classes=2)
    five.encoder.conv1.weight.data.copy_(weights)
    _utils.patch_first_conv(five.encoder, 5, pretrained=True)
    adapted = five.encoder.conv1.weight.detach()
    assert adapted.shape[1] == 5
    assert torch.allclose(adapted[:, 3], weights[:, 0] * 3 / 5) and torch.allclose(adapted[:, 1], weights[:, 1] * 3 / 5)


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown model kind 'vnet'"):
        build_model({"kind": "vnet"})


@pytest.mark.parametrize("norm, independent", [("instance", True), ("batch", False)])
def test_instance_norm_segments_each_image_by_itself_in_training_too(norm, independent):
    """With instance norm an image's output does not depend on the rest of its batch, in training as in evaluation."""
    torch.manual_seed(0)
    model = build_model({"kind": "unet", "base_channels": 4, "depth": 2, "norm": norm}).train()
    batch = torch.rand(4, 1, 32, 32)
    alone, together = model(batch[:1]), model(torch.cat([batch[:1], batch[1:] * 3]))[:1]
    assert torch.allclose(alone, together, atol=1e-5) == independent


def test_a_loaded_2d_model_predicts_channels_last_with_the_default_layout_s_probabilities(tmp_path):
    """Prediction loads 2D networks channels-last on the CPU (faster oneDNN kernels); the layout changes the order of
    summation only, so the logits stay those of the network as trained."""
    spec = {"kind": "unet", "base_channels": 4, "depth": 2, "input_slices": 3}
    torch.manual_seed(0)
    trained = build_model(spec, pretrained=False).eval()
    save_checkpoint(make_checkpoint(spec, trained.state_dict(), 32), tmp_path / "best.pt")
    loaded, _, _ = load_model(tmp_path / "best.pt", torch.device("cpu"))
    convolution = next(m for m in loaded.modules() if isinstance(m, torch.nn.Conv2d))
    assert convolution.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        expected = trained(x)
        assert torch.allclose(loaded(x.contiguous(memory_format=torch.channels_last)), expected, atol=1e-5)
