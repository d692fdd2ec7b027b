"""Training steps of config.yaml's models in FLOP/s against this process's large matrix products (the machine's
practical peak): in float32 with the default (NCHW) layout that training keeps there and with channels-last, and in
bfloat16 mixed precision (`train.cpu_bf16`, on a CPU that has bfloat16 natively), channels-last; and the step that
training takes (bfloat16 channels-last where native, else float32 NCHW) compiled by `torch.compile` (inductor), with the
seconds its first step took to compile.

A step is the forward, the loss in float32, the backward and Adam's update on one batch of the training size; its
FLOPs are counted by torch.utils.flop_counter over the forward and backward (Adam's few per weight are left out). Each
step is timed as the median of several after two warm-up steps. Target: the ResNet50 U-Net's step at >= 0.5 of the
float32 matrix product's FLOP/s. Writes bench/results/train_flops.md.

    python bench/train_flops.py [--steps 5]
"""

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
import yaml
from measure import write_result
from torch.utils.flop_counter import FlopCounterMode

from liverseg.devices import autocast, cpu_has_native_bf16, machine_description, training_memory_format
from liverseg.models.networks import build_model
from liverseg.models.recipe import Recipe
from liverseg.training.dataset import region_targets
from liverseg.training.losses import CombinedLoss

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")


def matmul_rate(dtype: torch.dtype, n: int = 4096, repeats: int = 5) -> float:
    """FLOP/s of an n x n matrix product in `dtype`, the best of `repeats`."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    best = min(elapsed(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best


def elapsed(work) -> float:
    """Seconds that `work()` takes."""
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def model_inputs(config: dict):
    """(name, spec without its train and augment settings, training image size) of each model of a config."""
    for name, spec in config["models"].items():
        size = spec.get("crop", {}).get("size", config["preprocess"]["image_size"])
        yield name, {k: v for k, v in spec.items() if k not in ("train", "augment")}, size


class Step:
    """One training step of a config model on a random batch of its training size, on `device` (mixed precision there
    as training has it)."""

    def __init__(
        self,
        spec: dict,
        image_size: int,
        batch_size: int,
        cpu_bf16: bool,
        device: torch.device = CPU,
        layout: torch.memory_format | None = None,
        compiled: bool = False,
    ):
        torch.manual_seed(0)
        recipe = Recipe.from_spec(spec)
        self.device, self.cpu_bf16, layout = device, cpu_bf16, layout or training_memory_format(device, cpu_bf16)
        self.model = build_model(spec).to(device, memory_format=layout).train()
        if compiled:
            self.model = torch.compile(self.model)
        self.loss_fn = CombinedLoss(recipe.loss, recipe.head)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        x = torch.randn(batch_size, recipe.input_slices, image_size, image_size)
        self.x = x.to(device).contiguous(memory_format=layout)
        labels = torch.randint(0, 3, (batch_size, image_size, image_size))
        self.y = region_targets(labels, recipe.regions).to(device)

    def forward_backward(self, x: torch.Tensor, y: torch.Tensor) -> None:
        with autocast(self.device, self.cpu_bf16):
            loss = self.loss_fn(self.model(x).float(), y)
        loss.backward()

    def on(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """One step on this batch, queued on the device."""
        self.optimizer.zero_grad(set_to_none=True)
        self.forward_backward(x, y)
        self.optimizer.step()

    def __call__(self) -> None:
        self.on(self.x, self.y)
        if self.device.type == "cuda":
            torch.cuda.synchronize()  # the step's own time, not its launch

    def flops(self) -> int:
        with FlopCounterMode(display=False) as counter:
            self.forward_backward(self.x, self.y)
        return counter.get_total_flops()

    def seconds(self, steps: int) -> float:
        for _ in range(2):
            self()
        return statistics.median(elapsed(self) for _ in range(steps))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per model and precision")
    args = parser.parse_args()
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    batch, native = config["train"]["batch_size"], cpu_has_native_bf16()
    peak32 = matmul_rate(torch.float32)
    peak16 = matmul_rate(torch.bfloat16) if native else float("nan")
    rows, rates = [], {}
    for name, spec, size in model_inputs(config):
        flops = Step(spec, size, batch, False).flops()
        nchw = flops / Step(spec, size, batch, False).seconds(args.steps)
        f32 = flops / Step(spec, size, batch, False, layout=torch.channels_last).seconds(args.steps)
        bf16 = flops / Step(spec, size, batch, True).seconds(args.steps) if native else float("nan")
        eager = bf16 if native else nchw  # the step training takes, in its layout
        compiled = Step(spec, size, batch, native, compiled=True)
        compiling = elapsed(compiled)
        fused = flops / compiled.seconds(args.steps)
        rows.append(
            f"| {name} | {Recipe.from_spec(spec).input_slices}x{size}x{size} | {flops / 1e9:,.1f} | {nchw / 1e9:,.0f} "
            f"| {f32 / 1e9:,.0f} | {f32 / peak32:.2f} | {f32 / nchw:.2f} | {bf16 / 1e9:,.0f} | {bf16 / peak32:.2f} "
            f"| {bf16 / peak16:.2f} | {bf16 / f32:.2f} | {fused / 1e9:,.0f} | {fused / eager:.2f} "
            f"| {compiling:.0f} |"
        )
        rates[name] = max(f32, bf16 if native else 0.0)
    best = rates["resnet50_unet"] / peak32
    table = "\n".join(
        [
            "# Training steps in FLOP/s against the machine's matrix product",
            "",
            f"{machine_description()}, torch {torch.__version__}, batches of {batch}, median of {args.steps} steps. "
            f"Matrix product 4096x4096: float32 {peak32 / 1e9:,.0f} GFLOP/s, bfloat16 "
            + (f"{peak16 / 1e9:,.0f} GFLOP/s." if native else "not native on this CPU (not measured)."),
            "",
            "| model | input | GFLOP per step | float32 NCHW GFLOP/s | float32 channels-last GFLOP/s "
            "| / float32 matmul | channels-last / NCHW | bf16 mixed GFLOP/s | / float32 matmul | / bf16 matmul "
            "| bf16 / float32 channels-last | compiled GFLOP/s | compiled / eager | compiling (s) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            f"ResNet50 U-Net, the faster precision: {best:.2f} of the float32 matrix product "
            f"({'meets' if best >= 0.5 else 'MISSES'} the target of 0.5).",
            "",
        ]
    )
    write_result("train_flops", table)


if __name__ == "__main__":
    main()
