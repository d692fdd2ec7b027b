"""Device choice and mixed precision: bfloat16 where the GPU has it, float16 with loss scaling otherwise, none on CPU.

No GPU exists here: the CUDA capability query is the one thing replaced."""

import torch

from liverseg.devices import amp_dtype, autocast, select_device


def test_cpu_computes_in_float32():
    cpu = torch.device("cpu")
    assert amp_dtype(cpu) is None
    with autocast(cpu):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    assert select_device("cpu") == cpu


def test_cuda_prefers_bfloat16(monkeypatch):
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    assert amp_dtype(cuda) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    assert amp_dtype(cuda) == torch.float16
