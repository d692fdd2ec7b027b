"""Networks built from a config entry (what each entry sees and learns is its recipe, `liverseg.models.recipe`).

`unet`: the classic U-Net (Ronneberger et al.) with batch normalisation and a configurable width.
`smp`: any segmentation_models_pytorch architecture; the study's model is `arch: Unet, encoder: resnet50`.
`monai`: MONAI's DynUNet (nnU-Net's network) in 3D, one level per entry of `filters`, on patches of `patch` voxels
(slices, rows, columns).
An entry with `crop` is a tumour stage: it sees crops of the liver's box and segments tumours only.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from liverseg.models.heads import output_channels
from liverseg.models.recipe import Recipe
from liverseg.models.weights import WeightsUnavailable, load_pretrained

# instance norm normalises each image by itself, so evaluation does not depend on running averages over batches
NORMS = {"batch": nn.BatchNorm2d, "instance": lambda channels: nn.InstanceNorm2d(channels, affine=True)}


def _double_conv(c_in: int, c_out: int, norm: str = "batch") -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        NORMS[norm](c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        NORMS[norm](c_out),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """Double 3x3 convolutions, max-pooling down, transposed convolutions up, skip connections."""

    def __init__(
        self, in_channels: int = 1, classes: int = 2, base_channels: int = 64, depth: int = 4, norm: str = "batch"
    ):
        super().__init__()
        widths = [base_channels * 2**level for level in range(depth + 1)]
        self.down = nn.ModuleList([_double_conv(in_channels, widths[0], norm)])
        self.down.extend(_double_conv(widths[i], widths[i + 1], norm) for i in range(depth))
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in reversed(range(depth))
        )
        self.merge = nn.ModuleList(_double_conv(2 * widths[i], widths[i], norm) for i in reversed(range(depth)))
        self.head = nn.Conv2d(widths[0], classes, 1)
        self.divisor = 2**depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level, block in enumerate(self.down):
            x = block(x if level == 0 else self.pool(x))
            skips.append(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips[:-1])):
            x = merge(torch.cat([skip, up(x)], dim=1))
        return self.head(x)


def build_model(spec: dict, pretrained: bool = True, weights_path: Path | None = None) -> nn.Module:
    """A model from its config entry; `pretrained=False` ignores encoder_weights (weights come from a checkpoint).

    Pretrained smp encoders are read from `weights_path`, the cached file the workflow fetched before training
    (`liverseg.models.weights`); nothing is downloaded here. With several input slices the first convolution's RGB weights
    are adapted to the channel count, as smp does.
    """
    recipe = Recipe.from_spec(spec)
    in_channels, classes = recipe.input_slices, output_channels(recipe.head, len(recipe.regions))
    if spec["kind"] == "unet":
        return UNet(
            in_channels, classes, spec.get("base_channels", 64), spec.get("depth", 4), spec.get("norm", "batch")
        )
    if spec["kind"] == "smp":
        import segmentation_models_pytorch as smp

        weights = spec.get("encoder_weights") if pretrained else None
        if weights is None:
            return smp.create_model(
                spec.get("arch", "Unet"),
                encoder_name=spec["encoder"],
                encoder_weights=None,
                in_channels=in_channels,
                classes=classes,
            )
        if weights_path is None or not Path(weights_path).exists():
            raise WeightsUnavailable(
                f"encoder '{spec['encoder']}' asks for {weights} weights, but they are not in the cache "
                f"({weights_path or 'no file given'}): run the workflow's fetch_weights rule where the internet is "
                "reachable (snakemake runs it before training), or set encoder_weights: null to train from scratch"
            )
        model = smp.create_model(
            spec.get("arch", "Unet"), encoder_name=spec["encoder"], encoder_weights=None, in_channels=3, classes=classes
        )
        load_pretrained(model, spec["encoder"], Path(weights_path), in_channels)
        return model
    if spec["kind"] == "monai":
        return dyn_unet(spec, in_channels, classes)
    raise ValueError(f"unknown model kind {spec['kind']!r} (expected 'unet', 'smp' or 'monai')")


def dyn_unet(spec: dict, in_channels: int, classes: int) -> nn.Module:
    """A 3D DynUNet: 3x3x3 convolutions, instance norm, each level below the first halving every side."""
    from monai.networks.nets import DynUNet

    filters = list(spec.get("filters", [8, 16, 32]))
    divisor = 2 ** (len(filters) - 1)
    if any(side % divisor for side in spec["patch"]):
        raise ValueError(f"patch {spec['patch']}: every side must be a multiple of {divisor} for {len(filters)} levels")
    strides = [1] + [2] * (len(filters) - 1)
    model = DynUNet(
        spatial_dims=3,
        in_channels=in_channels,
        out_channels=classes,
        kernel_size=[3] * len(filters),
        strides=strides,
        upsample_kernel_size=strides[1:],
        filters=filters,
        norm_name="instance",
        res_block=spec.get("res_block", False),
    )
    model.divisor = divisor
    return model


def input_divisor(model: nn.Module) -> int:
    """Image sides must be multiples of this number."""
    return getattr(model, "divisor", 32)
