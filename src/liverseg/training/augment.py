"""Batched augmentation on the training device, drawn afresh every time a slice is seen.

One sampling grid per sample moves image and labels together (labels by nearest neighbour, so no new label values
appear): the study's rotations and flips, optional zoom and elastic deformation, and for crop sets the jittered box.
Optional changes of tissue contrast follow (fat turned to soft tissue as in a lean patient, the liver against its
surroundings, lesions against their liver, a smooth bias), then intensity changes on the image alone: the study's
scaling, then an optional shift, gamma, Gaussian blur and noise, so that models learn shapes and contrasts rather than
one scanner's exact grey values and texture. A tumour stage can also paste lesions from one sample into another's
liver (TumorCP, Yang et al., MICCAI 2021), so that few patients still show it lesions in many places, sizes of liver
and surroundings, and draw small synthetic lesions into it, which few scans hold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from liverseg.devices import to_device
from liverseg.labels import liver_mask, parenchyma_mask, tumour_mask


@dataclass(frozen=True)
class AugmentSettings:
    rotation_degrees: float = 15.0  # uniform in [-d, d]
    flip_lr: float = 0.5  # probability of a left-right flip
    flip_ap: float = 0.0  # probability of an anterior-posterior flip
    intensity_scale: tuple[float, float] = (0.9, 1.1)
    zoom: tuple[float, float] = (1.0, 1.0)  # > 1 magnifies
    intensity_shift: float = 0.0  # uniform in [-s, s], in units of the HU window
    gamma: tuple[float, float] = (1.0, 1.0)
    blur_sigma: tuple[float, float] = (0.0, 0.0)  # pixels
    noise_std: float = 0.0  # each sample's noise level is uniform in [0, noise_std]
    lesion_paste: float = 0.0  # probability that a sample receives the lesions of another sample of the batch
    elastic_px: float = 0.0  # elastic deformation: sd of the displacement, in pixels, at a 5x5 grid of control points
    # tissue contrasts, as a contrast phase changes them: the liver (with its lesions) moved against its surroundings
    # by up to this much, in units of the HU window; each lesion's difference from its liver scaled in this range
    # (fainter or stronger, never inverted); a smooth additive bias of up to this amplitude
    liver_shift: float = 0.0
    lesion_contrast: tuple[float, float] = (1.0, 1.0)
    bias: float = 0.0
    # a lean patient: in a sample drawn with probability `lean`, the fat outside the liver (grey values above 0 and
    # below `lean_fat`, in units of the HU window) rises by a draw from `lean_shift` to soft tissue, as between the
    # organs of a patient with little fat. It teaches a stage-1 model that a lean belly's soft tissue is not liver, and
    # can cost it an unenhanced liver, whose HU the risen fat reaches (docs/robustness.md): the default's U-Net has it
    lean: float = 0.0
    lean_fat: float = 0.3
    lean_shift: tuple[float, float] = (0.2, 0.45)
    # synthetic small lesions (a tumour stage's): each of a sample's `small_lesion_count` places holds, with
    # probability `small_lesions`, a sphere drawn into its liver, its radius in pixels of the model's input and its
    # difference from the liver (hypo- or hyperdense) in units of the HU window drawn from these ranges
    small_lesions: float = 0.0
    small_lesion_count: int = 2
    small_lesion_radius_px: tuple[float, float] = (1.0, 3.5)
    small_lesion_contrast: tuple[float, float] = (0.04, 0.2)

    @classmethod
    def from_config(cls, section: dict) -> AugmentSettings:
        """From the config's augment section, without its `seed` (the preview's)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in section.items() if k != "seed"})


def _uniform(generator: torch.Generator, n: int, bounds) -> torch.Tensor:
    lo, hi = bounds
    return lo + (hi - lo) * torch.rand(n, generator=generator)


def random_affine(n: int, settings: AugmentSettings, generator: torch.Generator) -> torch.Tensor:
    """(n, 2, 3) affine_grid matrices: rotation, flips and zoom about the centre."""
    angle = torch.deg2rad(_uniform(generator, n, (-settings.rotation_degrees, settings.rotation_degrees)))
    zoom = _uniform(generator, n, settings.zoom)
    # grid x runs along the last array axis (anterior-posterior), grid y along the first (left-right)
    flip_ap = torch.where(torch.rand(n, generator=generator) < settings.flip_ap, -1.0, 1.0)
    flip_lr = torch.where(torch.rand(n, generator=generator) < settings.flip_lr, -1.0, 1.0)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos * flip_ap, -sin * flip_lr
    theta[:, 1, 0], theta[:, 1, 1] = sin * flip_ap, cos * flip_lr
    return theta


def compose(outer: torch.Tensor, inner: torch.Tensor) -> torch.Tensor:
    """The affine that applies `inner` to output coordinates, then `outer`: outer(inner(u))."""
    square = lambda t: torch.cat([t, torch.tensor([0.0, 0.0, 1.0]).expand(len(t), 1, 3)], dim=1)  # noqa: E731
    return (square(outer) @ square(inner))[:, :2]


def elastic_field(n: int, shape: tuple[int, int], displacement_px: float, generator: torch.Generator) -> torch.Tensor:
    """(n, H, W, 2) smooth random displacements in grid units: normal at 5x5 control points, bicubic in between."""
    h, w = shape
    coarse = torch.randn(n, 2, 5, 5, generator=generator) * displacement_px
    coarse[:, 0] *= 2 / w  # grid x runs along the last axis; one pixel is 2 / side in grid units
    coarse[:, 1] *= 2 / h
    return F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)


def warp(images: torch.Tensor, labels: torch.Tensor, theta: torch.Tensor, field: torch.Tensor | None = None):
    """Resample (N, C, H, W) images bilinearly and (N, H, W) labels by nearest neighbour on the same grids: the affine
    `theta`, plus a displacement `field` (N, H, W, 2) if given."""
    grid = F.affine_grid(to_device(theta, images.device, images.dtype), list(images.shape), align_corners=False)
    if field is not None:
        grid = grid + to_device(field, grid.device, grid.dtype)
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    labels = F.grid_sample(
        labels[:, None].to(images.dtype), grid, mode="nearest", padding_mode="zeros", align_corners=False
    )
    return images, labels[:, 0].round().to(torch.uint8)


def _liver_mean(images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each sample's mean grey value per channel over its liver without tumour, and whether it has such liver."""
    liver = parenchyma_mask(labels)[:, None].to(images.dtype)
    count = liver.sum((2, 3))
    return (images * liver).sum((2, 3)) / count.clamp(min=1), count[:, 0] > 0


def paste_lesions(images: torch.Tensor, labels: torch.Tensor, probability: float, generator: torch.Generator):
    """Each chosen sample receives the lesions of a sample of the batch that has some, centred on a random pixel of its
    own liver and cut to that liver.

    The pasted pixels (the lesions and one ring of the donor's liver around them, so that their blurred rim comes along) keep the donor's
    contrast to its own liver: they are shifted by the difference of the two livers' mean grey values. With 2.5D input
    every channel is pasted over the same pixels, so the lesions' neighbouring slices come along too.
    """
    n, h, w = labels.shape
    donor_lesions = tumour_mask(labels).flatten(1).to(images.dtype)
    has_lesion = donor_lesions.sum(1) > 0
    if not has_lesion.any():
        return images, labels
    donor = to_device(
        torch.multinomial(has_lesion.float().cpu(), n, replacement=True, generator=generator), images.device
    )
    chosen = to_device(torch.rand(n, generator=generator) < probability, images.device)
    liver = liver_mask(labels)
    own_mean, own_has = _liver_mean(images, labels)
    donor_mean, donor_has = _liver_mean(images[donor], labels[donor])
    chosen &= own_has & donor_has
    # whole-pixel moves, from the donor's lesion centroid to a random liver pixel: pixels are copied, not resampled
    rows, cols = torch.arange(h, device=images.device), torch.arange(w, device=images.device)
    weights = donor_lesions[donor].reshape(n, h, w)
    centroid = (
        torch.stack([(weights.sum(2) * rows).sum(1), (weights.sum(1) * cols).sum(1)], 1) / weights.sum((1, 2))[:, None]
    )
    target = torch.multinomial((liver.flatten(1) | ~own_has[:, None]).float().cpu(), 1, generator=generator)[:, 0]
    target = to_device(torch.stack([target // w, target % w], 1), centroid.device, centroid.dtype)
    move = torch.round(target - centroid)
    theta = torch.zeros(n, 2, 3, device=images.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, 0, 2], theta[:, 1, 2] = -2 * move[:, 1] / w, -2 * move[:, 0] / h  # grid x runs along the last axis
    moved_images, moved_labels = warp(images[donor], labels[donor], theta)
    lesion = tumour_mask(moved_labels) & liver & chosen[:, None, None]
    # the rim only where both livers are: a lesion at its liver's edge brings no fat or gas along
    rim = (
        F.max_pool2d(lesion[:, None].to(images.dtype), 3, stride=1, padding=1).bool()
        & (liver & liver_mask(moved_labels))[:, None]
    )
    pasted = moved_images + (own_mean - donor_mean)[:, :, None, None]
    return torch.where(rim, pasted, images), torch.where(lesion, torch.full_like(labels, 2), labels)


def draw_small_lesions(images: torch.Tensor, labels: torch.Tensor, settings: AugmentSettings, generator):
    """Synthetic small lesions (Hu et al., "Label-free liver tumor segmentation", CVPR 2023), which the phantoms and
    the scans hold too few of to learn from: spheres of a few pixels added to the liver, hypo- or hyperdense, with an
    edge blurred over a pixel as partial volume blurs it, on top of the liver's own grain and texture.

    Centres lie in the liver without tumour, a radius and a pixel away from its edge. With 2.5D input the middle
    channel, which the labels belong to, cuts each sphere through its widest part and the neighbouring slices through
    narrower ones (or miss it: a lesion one slice deep), never wider: a vessel, which the stage must not mark, runs on
    through its neighbours as wide. Only the middle channel's disc is labelled tumour."""
    n, channels, h, w = images.shape
    count = settings.small_lesion_count
    active = torch.rand(n, count, generator=generator) < settings.small_lesions
    radius = _uniform(generator, n * count, settings.small_lesion_radius_px).reshape(n, count)
    contrast = _uniform(generator, n * count, settings.small_lesion_contrast).reshape(n, count)
    contrast = torch.where(torch.rand(n, count, generator=generator) < 0.5, -contrast, contrast)
    neighbour_share = torch.rand(n, count, generator=generator)  # of the radius, in the slices beside the middle one
    # room for the widest sphere: the liver without tumour, eroded by its radius and a pixel
    reach = math.ceil(settings.small_lesion_radius_px[1]) + 1
    parenchyma = parenchyma_mask(labels)[:, None].to(images.dtype)
    room = -F.max_pool2d(-parenchyma, 2 * reach + 1, stride=1, padding=reach)[:, 0] > 0.5
    has_room = room.flatten(1).any(1).cpu()
    active &= has_room[:, None]
    if not active.any():
        return images, labels
    weights = (room.flatten(1) | ~to_device(has_room, room.device)[:, None]).float().cpu()
    centre = torch.multinomial(weights, count, replacement=True, generator=generator)  # (n, count) flat pixels
    device, dtype = images.device, images.dtype
    centre, active = to_device(centre, device)[..., None, None], to_device(active, device)
    radius, contrast = to_device(radius, device, dtype), to_device(contrast, device, dtype)
    rows = torch.arange(h, device=device, dtype=dtype)[:, None]
    cols = torch.arange(w, device=device, dtype=dtype)[None, :]
    distance = ((rows - centre // w) ** 2 + (cols - centre % w) ** 2).sqrt()  # (n, count, H, W)

    def disc(r: torch.Tensor) -> torch.Tensor:  # (n, count) radii -> (n, count, H, W) weights, 0.5 at the radius
        return (r[..., None, None] - distance + 0.5).clamp(0, 1)

    amount = (active * contrast)[..., None, None]
    middle = (amount * disc(radius)).sum(1)
    beside = (amount * disc(radius * to_device(neighbour_share, device, dtype))).sum(1)
    change = torch.stack([middle if c == channels // 2 else beside for c in range(channels)], 1)
    lesion = ((distance <= radius[..., None, None]) & active[..., None, None]).any(1) & (labels == 1)
    return images + change * parenchyma, torch.where(lesion, torch.full_like(labels, 2), labels)


def _gaussian_blur(images: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur with one sigma per sample, as one grouped convolution per axis; the sigmas on the host,
    where their largest is read without waiting for the device."""
    radius = max(1, math.ceil(3 * float(sigma.max())))
    x = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(
        -(x[None] ** 2) / (2 * to_device(sigma, images.device, images.dtype)[:, None].clamp(min=1e-3) ** 2)
    )
    kernel = kernel / kernel.sum(1, keepdim=True)
    n, c, h, w = images.shape
    kernel = kernel.repeat_interleave(c, 0)  # one kernel per (sample, channel) group
    flat = images.reshape(1, n * c, h, w)
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="replicate"), kernel[:, None, None, :], groups=n * c)
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="replicate"), kernel[:, None, :, None], groups=n * c)
    return flat.reshape(n, c, h, w)


def _per_sample(images: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """(N,) values of the samples, shaped to broadcast over (N, C, H, W) images on their device."""
    return to_device(values, images.device, images.dtype)[:, None, None, None]


def _soft(mask: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """(N, H, W) mask -> (N, 1, H, W) weights blurred as partial volume blurs an edge: 0.5 at the label's edge, 1
    inside. A change of contrast that stopped sharply at the edge would draw the label's outline into the image, and
    one fading outside only would move the edge the image shows off the label's."""
    return _gaussian_blur(mask[:, None].to(images.dtype), torch.full((len(mask),), 0.7))


def _smooth_field(n: int, shape: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """(n, 1, H, W) fields of largest magnitude about 1: bicubic interpolation of 4x4 normal draws."""
    coarse = torch.randn(n, 1, 4, 4, generator=generator)
    field = F.interpolate(coarse, size=shape, mode="bicubic", align_corners=True)
    return field / field.abs().amax((2, 3), keepdim=True).clamp(min=1e-6)


def tissue_contrast(
    images: torch.Tensor, labels: torch.Tensor, settings: AugmentSettings, generator: torch.Generator
) -> torch.Tensor:
    """Fat turned to soft tissue (a lean patient), the liver moved against its surroundings, its lesions made fainter
    or stronger, a smooth bias added."""
    n = len(images)
    if settings.lean > 0:
        chosen = (torch.rand(n, generator=generator) < settings.lean).to(images.dtype)
        rise = _per_sample(images, chosen * _uniform(generator, n, settings.lean_shift))
        fat = (images > 0) & (images < settings.lean_fat) & ~liver_mask(labels)[:, None]
        # blurred like a partial-volume edge, so that no outline is drawn where the fat meets other tissue
        images = images + rise * _gaussian_blur(fat.to(images.dtype), torch.full((n,), 0.7))
    if settings.lesion_contrast != (1.0, 1.0):
        liver_mean, has_liver = _liver_mean(images, labels)
        factor = _per_sample(
            images, torch.where(has_liver.cpu(), _uniform(generator, n, settings.lesion_contrast), 1.0)
        )
        lesion = _soft(tumour_mask(labels), images)
        # the lesion's smooth difference from its liver is scaled, not the noise on it: a faint lesion keeps the
        # scan's grain instead of turning smooth, which would give it away
        difference = _gaussian_blur(images - liver_mean[:, :, None, None], torch.ones(n))
        images = images + (factor - 1) * difference * lesion
    if settings.liver_shift > 0:
        shift = _per_sample(images, _uniform(generator, n, (-settings.liver_shift, settings.liver_shift)))
        images = images + shift * _soft(liver_mask(labels), images)
    if settings.bias > 0:
        field = to_device(_smooth_field(n, tuple(images.shape[-2:]), generator), images.device, images.dtype)
        images = images + field * _per_sample(images, _uniform(generator, n, (0, settings.bias)))
    return images


def jitter_intensity(images: torch.Tensor, settings: AugmentSettings, generator: torch.Generator) -> torch.Tensor:
    n = len(images)
    images = images * _per_sample(images, _uniform(generator, n, settings.intensity_scale))
    images = images + _per_sample(images, _uniform(generator, n, (-settings.intensity_shift, settings.intensity_shift)))
    if settings.gamma != (1.0, 1.0):
        images = images.clamp(min=0) ** _per_sample(images, _uniform(generator, n, settings.gamma))
    if settings.blur_sigma[1] > 0:
        images = _gaussian_blur(images, _uniform(generator, n, settings.blur_sigma))
    if settings.noise_std > 0:
        noise = (
            torch.randn(images.shape, generator=generator)
            * _uniform(generator, n, (0, settings.noise_std))[:, None, None, None]
        )
        images = images + to_device(noise, images.device, images.dtype)
    return images


def augment_batch(
    images: torch.Tensor,
    labels: torch.Tensor,
    settings: AugmentSettings,
    generator: torch.Generator,
    view: torch.Tensor | None = None,
):
    """Random variants of (N, C, H, W) images and (N, H, W) labels; `view` (N, 2, 3) first picks each sample's box."""
    theta = random_affine(len(images), settings, generator)
    if view is not None:
        theta = compose(view, theta)
    field = None
    if settings.elastic_px > 0:
        field = elastic_field(len(images), tuple(images.shape[-2:]), settings.elastic_px, generator)
    images, labels = warp(images, labels, theta, field)
    if settings.lesion_paste > 0:
        images, labels = paste_lesions(images, labels, settings.lesion_paste, generator)
    if settings.small_lesions > 0:
        images, labels = draw_small_lesions(images, labels, settings, generator)
    images = tissue_contrast(images, labels, settings, generator)
    return jitter_intensity(images, settings, generator), labels


def augment_volumes(
    images: torch.Tensor, labels: torch.Tensor, settings: AugmentSettings, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random variants of (N, 1, D, H, W) patches and (N, D, H, W) labels for a 3D model: each patch's rotation, flips,
    zoom and elastic field act in-plane, the same on all its slices (slices are thicker than pixels, so the axial
    plane is the one a scan's anatomy turns in), and its intensity changes are drawn once for the whole patch.
    Lesion pasting, synthetic small lesions and tissue contrast stay with the slice models."""
    n, _, depth, h, w = images.shape
    theta = random_affine(n, settings, generator).repeat_interleave(depth, 0)
    field = None
    if settings.elastic_px > 0:
        field = elastic_field(n, (h, w), settings.elastic_px, generator).repeat_interleave(depth, 0)
    flat_images, flat_labels = warp(images.reshape(n * depth, 1, h, w), labels.reshape(n * depth, h, w), theta, field)
    # the patch's slices as channels: one draw per patch, as jitter_intensity draws one per sample
    images = jitter_intensity(flat_images.reshape(n, depth, h, w), settings, generator)
    return images[:, None], flat_labels.reshape(n, depth, h, w)


def draw_preview(slice_files, preview, settings: AugmentSettings, seed: int, count: int = 4) -> None:
    """Originals above augmented variants, for the slices with most tumour (then liver), one per case."""
    from liverseg.data.slices import load_slices
    from liverseg.reporting.figures import augmentation_preview, slice_interest

    shown = []
    for path in slice_files:
        case = load_slices(path)
        k = int(np.argmax(slice_interest(case["label"], (1, 2))))
        shown.append((slice_interest(case["label"][k : k + 1], (1, 2))[0], case["image"][k], case["label"][k]))
    shown = sorted(shown, key=lambda item: -item[0])[:count]
    images = torch.from_numpy(np.stack([s[1] for s in shown]).astype(np.float32))[:, None]
    labels = torch.from_numpy(np.stack([s[2] for s in shown]))
    out_images, out_labels = augment_batch(images, labels, settings, torch.Generator().manual_seed(seed))
    augmentation_preview(
        [(image[0].numpy(), label.numpy()) for image, label in zip(images, labels)],
        [(image[0].numpy(), label.numpy()) for image, label in zip(out_images, out_labels)],
        preview,
    )
