"""Helpers shared by the tests: the checkout and its test configs, the tools run as users run them, small NIfTI
files and checkpoints. The fixtures live in conftest.py."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from liverseg.models.checkpoint import make_checkpoint, save_checkpoint
from liverseg.models.networks import build_model

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "tests" / "configs"
TINY = CONFIGS / "tiny.yaml"
SEGMENT_CONFIG = CONFIGS / "segment.yaml"
RESUME = CONFIGS / "resume.yaml"
EDGE_CASES = [f"case_{n:03d}" for n in range(5)]  # the segment experiment's cases (conftest.segment_experiment)
CASCADES = ["unet_cascade", "unet_cascade_3d"]  # the segment experiment's, with a 2.5D and a 3D tumour stage
ORIENTATIONS = ["RAS", "LPS", "LAS", "RPI", "ASR", "SLP"]


def tool_environment() -> dict:
    """Environment for subprocesses: this interpreter's scripts (liverseg, snakemake, dvc) first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def unavailable(reason: str):
    """A test that cannot run here for want of a program or a server: skipped, with the reason, except in CI
    (CI=true), where `.ci/run` installs everything and a green run must mean that the test ran."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true, and {reason}", pytrace=False)
    pytest.skip(reason)


def vendored_viewer() -> Path:
    """NiiVue's vendored build (`unavailable` without it: the viewer's pages cannot be written)."""
    from liverseg.reporting.viewer import VENDORED

    if not VENDORED.is_file():
        unavailable(f"{VENDORED} is missing (`liverseg fetch-viewer` downloads NiiVue; .ci/run does)")
    return VENDORED


def program(name: str, package: str) -> str:
    """The path of a program a test runs (`unavailable` without it)."""
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} is not installed (Debian's {package}; .ci/run installs it where it runs as root)")
    return path


def snakemake(project, *args, env, timeout=1200):
    """The workflow run from `project`, as a user runs it from the checkout: outputs go to project/experiments/<name>."""
    command = ["snakemake", "-s", str(ROOT / "Snakefile"), *args]
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=timeout)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_answers(url: str, server: subprocess.Popen, what: str, timeout: float = 180, log=None) -> None:
    """Poll `url` until it answers; fail, with the tail of `log` (a file) where given, if `server` exits first or
    `timeout` seconds pass."""
    import time
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=5).close()
            return
        except OSError as error:
            if server.poll() is not None or time.monotonic() > deadline:
                tail = Path(log).read_text()[-2000:] if log else ""
                raise AssertionError(f"{what} did not answer {url}: {tail}") from error
            time.sleep(0.2)


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def ct_volume(shape=(24, 20, 6), seed=0) -> tuple[np.ndarray, np.ndarray]:
    """A small CT-like volume in HU (air, soft tissue, a brighter liver block with a tumour) and its label map."""
    rng = np.random.default_rng(seed)
    hu = np.full(shape, -1000.0, np.float32)
    x, y = shape[0] // 6, shape[1] // 6
    hu[x:-x, y:-y] = 40 + rng.normal(0, 10, hu[x:-x, y:-y].shape)
    labels = np.zeros(shape, np.uint8)
    labels[2 * x : 4 * x, 2 * y : 4 * y, 1:-1] = 1
    labels[2 * x : 3 * x, 2 * y : 3 * y, 2:-2] = 2
    hu[labels == 1] += 60
    return hu, labels


def write_case(folder: Path, number: int, hu=None, labels=None, affine=None) -> tuple[Path, Path]:
    """A case in the LiTS layout: volume-N.nii.gz (int16 HU) and segmentation-N.nii.gz."""
    default_hu, default_labels = ct_volume(seed=number)
    hu = default_hu if hu is None else hu
    labels = default_labels if labels is None else labels
    affine = np.diag([0.8, 0.8, 2.5, 1.0]) if affine is None else affine
    folder.mkdir(parents=True, exist_ok=True)
    volume = write_nifti(
        folder / f"volume-{number}.nii.gz", hu.astype(np.int16) if np.isfinite(hu).all() else hu, affine
    )
    return volume, write_nifti(folder / f"segmentation-{number}.nii.gz", labels, affine)


def axis_affine(codes, spacing=(0.8, 0.9, 2.5)):
    """An affine whose voxel axes point along the given axis codes."""
    ornt = nib.orientations.axcodes2ornt(codes)
    affine = np.zeros((4, 4))
    for axis, (target, flip) in enumerate(ornt):
        affine[int(target), axis] = flip * spacing[axis]
    affine[:3, 3] = [10.0, -20.0, 30.0]
    affine[3, 3] = 1
    return affine


def truncated(path):
    """Cut a file to half its bytes, as an interrupted copy leaves it."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def write_checkpoint(path: Path, spec: dict, image_size: int = 32) -> Path:
    """An untrained model of `spec` saved as training saves one."""
    save_checkpoint(make_checkpoint(spec, build_model(spec, pretrained=False).state_dict(), image_size), path)
    return path
