"""Device choice and mixed precision: bfloat16 where the GPU has it, float16 with loss scaling otherwise; on the CPU,
bfloat16 for training only, where the cores have it natively.

No GPU exists here: the CUDA capability query is the one thing replaced."""

import torch

from liverseg.devices import amp_dtype, autocast, select_device, to_device, training_memory_format


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


def test_cpu_bf16_only_where_the_cpu_has_it_natively(monkeypatch):
    cpu = torch.device("cpu")
    for capabilities, expected in (
        ({"amx_bf16": True}, torch.bfloat16),
        ({"avx512_bf16": True}, torch.bfloat16),
        ({"avx512_f": True}, None),
    ):
        monkeypatch.setattr(torch.cpu, "get_capabilities", lambda capabilities=capabilities: capabilities)
        assert amp_dtype(cpu, cpu_bf16=True) == expected
        assert amp_dtype(cpu) is None, "prediction on the CPU stays float32"
        layout = torch.channels_last if expected else torch.contiguous_format
        assert training_memory_format(cpu, cpu_bf16=True) == layout, "float32 training keeps the default layout"
    assert amp_dtype(torch.device("mps"), cpu_bf16=True) is None


def test_to_device_on_the_cpu_is_a_plain_conversion():
    cpu, values = torch.device("cpu"), torch.arange(6, dtype=torch.float16).reshape(2, 3)
    moved = to_device(values, cpu, torch.float32)
    assert moved.dtype == torch.float32 and torch.equal(moved, values.float())
    assert to_device(values, cpu) is values, "nothing copied where nothing changes"
