"""Whether the input pipeline keeps a GPU busy: slices per second the data path serves against what the training step
consumes, for each model of config.yaml, same run.

The data path (`liverseg.training.dataset.Batches`) gathers each batch's 2.5D stacks from the training set held in
host memory, moves them to the device and augments them there. So on a GPU the host only gathers and copies; the
augmentation and the step run on the device. Measured on this run's device:

- host gather: the batches' stacks and labels indexed out of a set of the model's input size (all the host does per
  batch on a GPU);
- data path: the whole of Batches, augmentation with the model's config included, on this device;
- step: forward, loss, backward and Adam's update at the config's batch size, in the precision training uses here
  (bench/train_flops.py's step);
- steps fed by the data path: the step on its batches, each prepared in turn with the steps, and ahead in a thread
  (what the epoch loop does on a GPU, so that the host's share of the next batch overlaps the device's step).

And on paper, for a GPU where none is lent: the step's FLOPs per slice (torch.utils.flop_counter) at `--gpu-tflops`
(bfloat16 dense; 989 is an H100 or H200 SXM) times `--gpu-share` (the share of it that a convolutional network of these
sizes reaches; an assumption, stated in the table). The GPU never waits where host gather / GPU step >= 1. Writes
bench/results/input_pipeline.md.

    python bench/input_pipeline.py [--slices 2048] [--fed 256] [--gpu-tflops 989] [--gpu-share 0.3]
"""

import argparse
import os
from pathlib import Path

import numpy as np
import torch
import yaml
from measure import write_result
from train_flops import Step, elapsed, model_inputs

from liverseg.devices import cpu_has_native_bf16, machine_description, select_device, training_memory_format
from liverseg.models.neighbours import neighbour_index
from liverseg.models.recipe import Recipe
from liverseg.training.augment import AugmentSettings
from liverseg.training.dataset import Batches, SliceSet
from liverseg.training.prefetch import prefetch

ROOT = Path(__file__).resolve().parents[1]
REPEATS = 3  # timed passes; the best is kept


def slice_set(n: int, size: int, input_slices: int, crops: bool, seed: int = 0) -> SliceSet:
    """n slices of cases of 64 slices: a liver disc holding a lesion on textured background, as the sets hold them."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    liver = (yy - 0.5) ** 2 + (xx - 0.45) ** 2 < 0.09
    lesion = (yy - 0.5) ** 2 + (xx - 0.4) ** 2 < 0.005
    label = np.where(lesion, 2, np.where(liver, 1, 0)).astype(np.uint8)
    images = 0.4 + 0.2 * liver + 0.05 * rng.standard_normal((n, size, size))
    lengths = [64] * (n // 64) + [n % 64] * (n % 64 > 0)
    box = torch.full((n,), 0.8) if crops else None
    return SliceSet(
        images=torch.from_numpy(images.astype(np.float16)),
        labels=torch.from_numpy(np.broadcast_to(label, (n, size, size)).copy()),
        stacks=torch.from_numpy(neighbour_index(lengths, input_slices)),
        box_half=box,
        box_jitter=None if box is None else torch.full((n,), 0.1),
    )


def gather(data: SliceSet, order: torch.Tensor, batch: int) -> None:
    """What the host does for each batch on a GPU: index the stacks and labels out of the set."""
    for start in range(0, len(order), batch):
        index = order[start : start + batch]
        _ = data.images[data.stacks[index]], data.labels[index]


def serve(batches: Batches, order: torch.Tensor) -> None:
    """The whole data path: batches moved to the device and augmented there."""
    for _ in batches(order, torch.Generator().manual_seed(0)):
        pass
    if batches.device.type == "cuda":
        torch.cuda.synchronize()


def fed(batches: Batches, order: torch.Tensor, step: Step, ahead: bool) -> None:
    """Training steps on the data path's batches: prepared in turn with the steps, or `ahead` in a thread (as the
    epoch loop does on a GPU)."""
    served = batches(order, torch.Generator().manual_seed(0))
    for x, y in prefetch(served) if ahead else served:
        step.on(x, y)
    if batches.device.type == "cuda":
        torch.cuda.synchronize()


def rate(work, *args) -> float:
    """Slices per second of `work(data or batches, order, ...)`, the best of REPEATS after a warm-up."""
    work(*args)
    return len(args[1]) / min(elapsed(lambda: work(*args)) for _ in range(REPEATS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=2048, help="slices in the set, and in one timed pass")
    parser.add_argument("--gpu-tflops", type=float, default=989.0, help="the GPU on paper: bfloat16 dense TFLOP/s")
    parser.add_argument("--gpu-share", type=float, default=0.3, help="the share of it that a step reaches, on paper")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per model")
    parser.add_argument("--fed", type=int, default=256, help="slices of the timed passes of steps fed by the data path")
    args = parser.parse_args()
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    device, batch = select_device(config["train"]["device"]), config["train"]["batch_size"]
    cpu_bf16 = config["train"].get("cpu_bf16", False)
    rows = []
    for name, spec, size in model_inputs(config):
        augment = AugmentSettings.from_config({**config["augment"], **config["models"][name].get("augment", {})})
        recipe = Recipe.from_spec(spec)
        data = slice_set(args.slices, size, recipe.input_slices, "crop" in spec)
        order = torch.randperm(args.slices, generator=torch.Generator().manual_seed(0))
        batches = Batches(data, recipe.regions, batch, device, augment, training_memory_format(device, cpu_bf16))

        step = Step(spec, size, batch, cpu_bf16 and cpu_has_native_bf16(), device)
        flops = step.flops() / batch
        gpu_rate = args.gpu_tflops * 1e12 * args.gpu_share / flops
        host, measured = rate(gather, data, order, batch), batch / step.seconds(args.steps)
        consumed = measured if device.type == "cuda" else gpu_rate  # what a GPU's step takes, seen or on paper
        epoch = order[: args.fed]
        in_turn, ahead = rate(fed, batches, epoch, step, False), rate(fed, batches, epoch, step, True)
        rows.append(
            f"| {name} | {recipe.input_slices}x{size}x{size} | {host:,.0f} | {rate(serve, batches, order):,.0f} "
            f"| {measured:,.1f} | {in_turn:,.1f} | {ahead:,.1f} | {ahead / in_turn:.2f} | {flops / 1e9:.2f} "
            f"| {gpu_rate:,.0f} | {host / consumed:.2f} |"
        )
    table = "\n".join(
        [
            "# Input pipeline against the training step: does the GPU wait?",
            "",
            f"{machine_description()}, device {device}, torch {torch.__version__}, batches of {batch}, "
            f"{args.slices} slices a pass (best of {REPEATS}). GPU on paper: {args.gpu_tflops:,.0f} TFLOP/s bfloat16 dense "
            f"at a share of {args.gpu_share:.2f}.",
            "",
            f"| model | input | host gather (slices/s) | data path on {device.type} (slices/s) "
            f"| step on {device.type} (slices/s) | steps fed in turn (slices/s) | fed ahead (slices/s) | ahead / in turn "
            "| GFLOP per slice | GPU step on paper (slices/s) | host gather / GPU step |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            "Host gather / GPU step >= 1: the host keeps the GPU fed; below 1 it may wait. The GPU step is the one "
            "measured here on a GPU, else the paper rate, which counts FLOPs only: a small network at a small batch is "
            "bound by kernel launches, so it is an upper bound. The data path against the step says what share of a "
            "training step the data takes (on a GPU, the augmentation runs on it, between the steps). 'Fed': steps "
            f"on the data path's batches ({args.fed} slices a pass), the next batch prepared in turn with the steps "
            "or ahead in a thread (`liverseg.training.prefetch`, what the epoch loop does on a GPU).",
            "",
        ]
    )
    write_result("input_pipeline", table)


if __name__ == "__main__":
    main()
