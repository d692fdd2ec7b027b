"""Helpers shared by the tests (the fixtures live in conftest.py)."""

from pathlib import Path

from liverseg.models.checkpoint import make_checkpoint, save_checkpoint
from liverseg.models.networks import build_model


def write_checkpoint(path: Path, spec: dict, image_size: int = 32) -> Path:
    """An untrained model of `spec` saved as training saves one."""
    save_checkpoint(make_checkpoint(spec, build_model(spec, pretrained=False).state_dict(), image_size), path)
    return path
