import os
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def phantom_files(tmp_path_factory):
    """Three synthetic cases in the LiTS layout, shared by the tests that only read them."""
    from liverseg.data.synthetic import generate_dataset

    out = tmp_path_factory.mktemp("raw")
    generate_dataset(out, cases=3, seed=11)
    return out


@pytest.fixture
def tool_env():
    """Environment for subprocesses: this interpreter's scripts (liverseg, snakemake, dvc) first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path
