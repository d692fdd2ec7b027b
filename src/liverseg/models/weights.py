"""Pretrained encoder weights: fetched once into a cache folder before any training job, then read from there only.

Compute nodes of a cluster often have no internet, so training never downloads: a local rule fetches the file that
segmentation_models_pytorch would take from the Hugging Face hub (`model.safetensors` of the encoder's `smp-hub`
repository, at the revision smp pins), checks that it holds the encoder's weights, and keeps it as
`<cache>/<encoder>.<weights>.safetensors`.
"""

from __future__ import annotations

from pathlib import Path

from liverseg.data.download import DownloadError, download_part

HUB = "https://huggingface.co"


class WeightsUnavailable(RuntimeError):
    """Pretrained weights that are not in the cache and could not be fetched; the message says what to do."""


def weights_file(cache: Path, encoder: str, weights: str) -> Path:
    return Path(cache) / f"{encoder}.{weights}.safetensors"


def _settings(encoder: str, weights: str) -> dict:
    from segmentation_models_pytorch.encoders import encoders

    if encoder not in encoders:
        raise WeightsUnavailable(
            f"encoder '{encoder}': not one of segmentation_models_pytorch's own encoders, whose weights liverseg fetches"
        )
    available = encoders[encoder]["pretrained_settings"]
    if weights not in available:
        raise WeightsUnavailable(f"encoder '{encoder}' has no '{weights}' weights; available: {', '.join(available)}")
    return available[weights]


def weights_url(encoder: str, weights: str, endpoint: str = HUB) -> str:
    settings = _settings(encoder, weights)
    return f"{endpoint.rstrip('/')}/{settings['repo_id']}/resolve/{settings['revision']}/model.safetensors"


def encoder_state(path: Path, encoder: str) -> dict:
    """The state dict in `path`, checked against the encoder's own parameter names and shapes."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    from segmentation_models_pytorch.encoders import get_encoder

    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as error:
        raise WeightsUnavailable(f"{path}: not a readable safetensors file ({error})") from error
    expected = {name: tuple(value.shape) for name, value in get_encoder(encoder, weights=None).state_dict().items()}
    found = {name: tuple(value.shape) for name, value in state.items()}
    if found != expected:
        differ = sorted(set(found.items()) ^ set(expected.items()))[:3]
        raise WeightsUnavailable(
            f"{path}: these are not the weights of encoder '{encoder}' (first differences: {differ})"
        )
    return state


def fetch_weights(encoder: str, weights: str, out: Path, endpoint: str = HUB) -> Path:
    """`out`, downloaded unless it is already there, and kept only once it holds the encoder's weights."""
    out = Path(out)
    if out.exists():
        encoder_state(out, encoder)
        print(f"weights: {out} is already here and holds encoder '{encoder}'", flush=True)
        return out
    url = weights_url(encoder, weights, endpoint)
    try:
        part = download_part(url, out)
    except DownloadError as error:
        raise WeightsUnavailable(
            f"encoder '{encoder}' ({weights} weights): {error}. Without internet here, copy the file from a machine "
            f"that has it, or set encoder_weights: null to train from scratch"
        ) from error
    try:
        encoder_state(part, encoder)
    except WeightsUnavailable:
        part.unlink()
        raise
    part.rename(out)
    return out


def load_pretrained(model, encoder: str, path: Path, in_channels: int) -> None:
    """Load cached RGB weights into an smp model built for 3 channels, then adapt its first convolution to
    `in_channels` as smp does for pretrained weights (one channel: the sum of the RGB kernels)."""
    model.encoder.load_state_dict(encoder_state(path, encoder))
    model.encoder.set_in_channels(in_channels, pretrained=True)
