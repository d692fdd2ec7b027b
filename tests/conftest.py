import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from hypothesis import settings

# property-based tests: the same examples on every machine by default (CI); HYPOTHESIS_PROFILE=explore draws new ones
settings.register_profile("ci", derandomize=True, deadline=None, database=None, max_examples=100)
settings.register_profile("explore", deadline=None, max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def phantom_files(tmp_path_factory):
    """Three synthetic cases in the LiTS layout, shared by the tests that only read them."""
    from liverseg.data.synthetic import generate_dataset

    out = tmp_path_factory.mktemp("raw")
    generate_dataset(out, cases=3, seed=11)
    return out


def tool_environment() -> dict:
    """Environment for subprocesses: this interpreter's scripts (liverseg, snakemake, dvc) first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture
def tool_env():
    return tool_environment()


def snakemake(project, *args, env, timeout=1200):
    """The workflow run from `project`, as a user runs it from the checkout: outputs go to project/experiments/<name>."""
    command = ["snakemake", "-s", str(ROOT / "Snakefile"), *args]
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=timeout)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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


SEGMENT_CONFIG = ROOT / "tests" / "configs" / "segment.yaml"
EDGE_CASES = [f"case_{n:03d}" for n in range(5)]


@pytest.fixture(scope="session")
def segment_experiment(tmp_path_factory):
    """The small segment experiment run through the workflow, on five phantoms of which four have their liver cut by
    the scan's edges (first slice, last slice, both, in-plane), with the cascade rule run on every case: its folder.
    `liverseg segment` and the scan zoo are tested with its models."""
    from tests.scan_zoo import write_edge_cases

    root = tmp_path_factory.mktemp("segment-run")
    write_edge_cases(root / "raw", cases=5, seed=21)
    cascades = [f"results/unet_cascade/pred/{case}.nii.gz" for case in EDGE_CASES]
    for targets in ([], cascades):
        options = ["--cores", "2", "--resources", "gpu=1", "--configfile", str(SEGMENT_CONFIG)]
        run = snakemake(root, *targets, *options, env=tool_environment())
        assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-5000:]
    return root / "experiments" / "segment"


SERVER = Path(__file__).with_name("range_server.py")


@pytest.fixture
def serve(tmp_path):
    """Start the loopback server on a folder; yields (url of a file, request log); stops its process group."""
    started = []

    def start(root: Path, name: str, cut_first: int | None = None):
        log, port_file = tmp_path / "requests.log", tmp_path / "port"
        command = [sys.executable, str(SERVER), "--root", str(root), "--log", str(log), "--port-file", str(port_file)]
        if cut_first is not None:
            command += ["--cut-first", str(cut_first)]
        started.append(subprocess.Popen(command, start_new_session=True))
        deadline = time.monotonic() + 30
        while not port_file.exists():
            assert time.monotonic() < deadline, "the loopback server did not start"
            time.sleep(0.05)
        return f"http://127.0.0.1:{port_file.read_text()}/{name}", log

    yield start
    for process in started:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
