"""Slices per second of the batched augmentation against a per-sample scipy pipeline in a DataLoader, same run.

Both do the default experiment's augmentation of 128x128 slices with their labels: rotation, left-right flip and zoom
(image bilinear, labels nearest), intensity scale and shift, gamma, Gaussian blur and noise. The baseline is what a
per-sample pipeline does (scipy.ndimage, or torchvision's v2 transforms, per slice, in torch's DataLoader with one
worker per core); liverseg draws one
affine grid per sample and warps the whole batch at once (`liverseg.training.augment.augment_batch`). Targets: at least 10x
the baseline, and at least 3,000 slices per second on 2 cores. Writes bench/results/augment_speed.md.

    python bench/augment_speed.py [--slices 2048]
"""

import argparse
import os
import time

import numpy as np
import torch
from measure import write_result
from scipy import ndimage
from torch.utils.data import DataLoader, Dataset

from liverseg.training.augment import AugmentSettings, augment_batch

SETTINGS = AugmentSettings(
    rotation_degrees=15,
    flip_lr=0.5,
    intensity_scale=(0.9, 1.1),
    zoom=(0.9, 1.15),
    intensity_shift=0.05,
    gamma=(0.8, 1.25),
    blur_sigma=(0.0, 1.0),
    noise_std=0.04,
)
BATCH = 16  # the default experiment's batch size


def slices(n: int, size: int = 128):
    """Liver-like discs with a lesion, with some texture: what the augmentation sees."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:size, :size]
    images = rng.uniform(0.0, 0.3, (n, size, size)).astype(np.float32)
    labels = np.zeros((n, size, size), np.uint8)
    liver = (y - 60) ** 2 + (x - 56) ** 2 < 40**2
    labels[:, liver], images[:, liver] = 1, 0.6
    labels[:, (y - 50) ** 2 + (x - 60) ** 2 < 8**2] = 2
    return images, labels


class PerSample(Dataset):
    """The per-sample baseline: scipy.ndimage on one slice at a time."""

    def __init__(self, images, labels, seed=0):
        self.images, self.labels, self.seed = images, labels, seed

    def __len__(self):
        return len(self.images)

    def __getitem__(self, k):
        rng = np.random.default_rng([self.seed, k])
        s = SETTINGS
        image, label = self.images[k], self.labels[k]
        angle, zoom = rng.uniform(-s.rotation_degrees, s.rotation_degrees), rng.uniform(*s.zoom)
        theta = np.deg2rad(angle)
        matrix = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]) / zoom
        if rng.random() < s.flip_lr:
            matrix = matrix @ np.diag([-1.0, 1.0])
        centre = (np.array(image.shape) - 1) / 2
        offset = centre - matrix @ centre
        image = ndimage.affine_transform(image, matrix, offset, order=1)
        label = ndimage.affine_transform(label, matrix, offset, order=0)
        image = image * rng.uniform(*s.intensity_scale) + rng.uniform(-s.intensity_shift, s.intensity_shift)
        image = np.clip(image, 0, None) ** rng.uniform(*s.gamma)
        image = ndimage.gaussian_filter(image, rng.uniform(*s.blur_sigma))
        image = image + rng.normal(0, rng.uniform(0, s.noise_std), image.shape)
        return torch.from_numpy(image.astype(np.float32))[None], torch.from_numpy(label)


class TorchvisionPerSample(PerSample):
    """The same steps with torchvision's transforms, one slice at a time (image and mask as one TVTensor pair)."""

    def __init__(self, images, labels, seed=0):
        from torchvision.transforms import v2

        super().__init__(images, labels, seed)
        s = SETTINGS
        self.geometric = v2.Compose(
            [
                v2.RandomHorizontalFlip(s.flip_lr),
                v2.RandomAffine(degrees=s.rotation_degrees, scale=s.zoom, interpolation=v2.InterpolationMode.BILINEAR),
            ]
        )

    def __getitem__(self, k):
        from torchvision import tv_tensors
        from torchvision.transforms.v2 import functional

        rng, s = np.random.default_rng([self.seed, k]), SETTINGS
        image, mask = self.geometric(
            tv_tensors.Image(torch.from_numpy(self.images[k])[None]), tv_tensors.Mask(torch.from_numpy(self.labels[k]))
        )
        image = image * rng.uniform(*s.intensity_scale) + rng.uniform(-s.intensity_shift, s.intensity_shift)
        image = image.clamp(min=0) ** rng.uniform(*s.gamma)
        sigma = rng.uniform(*s.blur_sigma)
        if sigma > 0.05:
            image = functional.gaussian_blur(image, kernel_size=2 * int(np.ceil(3 * sigma)) + 1, sigma=sigma)
        return image + torch.randn(image.shape) * rng.uniform(0, s.noise_std), mask


def per_sample_rate(dataset) -> float:
    """A second pass of a DataLoader with one worker per core (the first starts the workers)."""
    loader = DataLoader(dataset, batch_size=BATCH, num_workers=len(os.sched_getaffinity(0)), persistent_workers=True)
    for _ in loader:
        pass
    started = time.perf_counter()
    for _ in loader:
        pass
    return len(dataset) / (time.perf_counter() - started)


def batched_rate(images, labels) -> float:
    x, y, generator = torch.from_numpy(images)[:, None], torch.from_numpy(labels), torch.Generator().manual_seed(0)
    augment_batch(x[:BATCH], y[:BATCH], SETTINGS, generator)  # warm-up
    started = time.perf_counter()
    for start in range(0, len(x), BATCH):
        augment_batch(x[start : start + BATCH], y[start : start + BATCH], SETTINGS, generator)
    return len(x) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=2048)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    torch.set_num_threads(cores)
    images, labels = slices(args.slices)
    ours = batched_rate(images, labels)
    baselines = {
        f"per-sample scipy.ndimage in a DataLoader ({cores} workers)": per_sample_rate(PerSample(images, labels)),
        f"per-sample torchvision v2 in a DataLoader ({cores} workers)": per_sample_rate(
            TorchvisionPerSample(images, labels)
        ),
    }
    verdicts = [
        f"Against {name.split(' in ')[0]}: {ours / rate:.1f}x, {'meets' if ours / rate >= 10 else 'MISSES'} the 10x target."
        for name, rate in baselines.items()
    ]
    table = "\n".join(
        [
            "# Augmentation speed: batched on the device against per-sample scipy in a DataLoader",
            "",
            f"{args.slices} slices of 128x128, batches of {BATCH}, {cores} CPU cores, torch {torch.__version__}, no GPU.",
            "",
            "| pipeline | slices per second |",
            "|---|---|",
            *[f"| {name} | {rate:,.0f} |" for name, rate in baselines.items()],
            f"| liverseg.training.augment.augment_batch (one batch at a time, {cores} threads) | {ours:,.0f} |",
            "",
            *verdicts,
            f"{ours:,.0f} slices per second: {'meets' if ours >= 3000 else 'MISSES'} the 3,000 target.",
            "",
        ]
    )
    write_result("augment_speed", table)


if __name__ == "__main__":
    main()
