"""Pretrained encoder weights: fetched from a loopback hub into the cache, read from there only, refused when wrong."""

from urllib.parse import urlparse

import pytest
import torch
from safetensors.torch import save_file
from segmentation_models_pytorch.encoders import get_encoder

from liverseg.models.networks import build_model
from liverseg.models.weights import WeightsUnavailable, fetch_weights, weights_url

SPEC = {"kind": "smp", "arch": "Unet", "encoder": "resnet18", "encoder_weights": "imagenet"}


def _hub(tmp_path, encoder="resnet18", served_as="resnet18"):
    """A folder laid out as the hub's resolve URLs, holding `encoder`'s (randomly initialised) weights as `served_as`'s."""
    torch.manual_seed(1)
    state = {k: v.contiguous() for k, v in get_encoder(encoder, weights=None).state_dict().items()}
    path = tmp_path / "hub" / urlparse(weights_url(served_as, "imagenet", "http://hub")).path.lstrip("/")
    path.parent.mkdir(parents=True)
    save_file(state, str(path))
    return tmp_path / "hub", path, state


def test_fetched_once_then_training_reads_the_cache(tmp_path, serve):
    root, served, state = _hub(tmp_path)
    url, log = serve(root, served.relative_to(root).as_posix())
    endpoint = url.split("/smp-hub/")[0]
    out = tmp_path / "cache" / "resnet18.imagenet.safetensors"
    fetch_weights("resnet18", "imagenet", out, endpoint)
    assert out.read_bytes() == served.read_bytes() and not out.with_name(out.name + ".part").exists()
    assert log.read_text().count("GET") == 1
    fetch_weights("resnet18", "imagenet", out, endpoint)
    assert log.read_text().count("GET") == 1, "a cached file is checked, not fetched again"

    model = build_model({**SPEC, "input_slices": 3}, weights_path=out)
    assert torch.equal(model.encoder.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])
    assert torch.equal(model.encoder.conv1.weight, state["conv1.weight"])
    one = build_model(SPEC, weights_path=out)  # one CT channel: smp's adaptation sums the RGB kernels
    assert torch.allclose(one.encoder.conv1.weight, state["conv1.weight"].sum(1, keepdim=True))


def test_offline_with_an_empty_cache_names_the_encoder_and_the_fix(tmp_path):
    out = tmp_path / "cache" / "resnet18.imagenet.safetensors"
    with pytest.raises(WeightsUnavailable) as error:
        fetch_weights("resnet18", "imagenet", out, "http://127.0.0.1:9")  # the discard port: nothing listens
    message = str(error.value)
    assert "encoder 'resnet18' (imagenet weights)" in message and "encoder_weights: null" in message
    assert str(out.resolve()) in message, "where a file fetched elsewhere goes"
    assert not any(out.parent.iterdir())
    with pytest.raises(WeightsUnavailable, match="run the workflow's fetch_weights rule"):
        build_model(SPEC, weights_path=out)
    assert build_model({**SPEC, "encoder_weights": None}) is not None, "training from scratch needs nothing"


def test_weights_of_another_encoder_are_refused_and_not_kept(tmp_path, serve):
    root, served, _ = _hub(tmp_path, encoder="resnet34", served_as="resnet18")
    url, _ = serve(root, served.relative_to(root).as_posix())
    out = tmp_path / "cache" / "resnet18.imagenet.safetensors"
    with pytest.raises(WeightsUnavailable, match="not the weights of encoder 'resnet18'"):
        fetch_weights("resnet18", "imagenet", out, url.split("/smp-hub/")[0])
    assert not any(out.parent.iterdir())
    with pytest.raises(WeightsUnavailable, match="has no 'instagram' weights"):
        weights_url("resnet18", "instagram")


@pytest.mark.parametrize("arch", ["Unet", "Segformer"])
@pytest.mark.parametrize("slices", [1, 3])
def test_a_transformer_encoder_takes_its_fetched_weights_as_stage1_model_and_tumour_stage(
    tmp_path, serve, arch, slices
):
    """SegFormer's MiT-B0 (the study's future direction): its weights through the same fetch as a ResNet's, its
    patch embedding adapted to the input slices, at the slice and crop sizes the configs use."""
    root, served, state = _hub(tmp_path, encoder="mit_b0", served_as="mit_b0")
    url, _ = serve(root, served.relative_to(root).as_posix())
    out = fetch_weights("mit_b0", "imagenet", tmp_path / "mit_b0.imagenet.safetensors", url.split("/smp-hub/")[0])
    spec = {"kind": "smp", "arch": arch, "encoder": "mit_b0", "encoder_weights": "imagenet", "input_slices": slices}
    for entry, size, regions in ((spec, 128, 2), ({**spec, "crop": {"size": 96}}, 96, 1)):
        model = build_model(entry, weights_path=out).eval()
        first = model.encoder.patch_embed1.proj.weight
        assert first.shape[1] == slices
        if slices == 3:
            assert torch.equal(first, state["patch_embed1.proj.weight"]), (
                "three slices take the RGB kernels as they are"
            )
        assert torch.equal(model.encoder.block1[0].attn.q.weight, state["block1.0.attn.q.weight"])
        with torch.no_grad():
            assert model(torch.zeros(2, slices, size, size)).shape == (2, regions, size, size)
