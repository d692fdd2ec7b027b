"""Getting the raw data into `data/raw/<source>`: the embedded synthetic set (real sources follow)."""

from __future__ import annotations

import shutil
from pathlib import Path

from liverseg.data.synthetic import generate_dataset


def fetch(source: str, out_dir: Path, synthetic_cases: int, synthetic_seed: int) -> None:
    """Fill `out_dir` completely or not at all: the data are built in a sibling folder and moved into place."""
    if source != "synthetic":
        raise NotImplementedError(
            f"data.source '{source}': downloading the real data is not implemented yet; "
            "only 'synthetic' can run in this version"
        )
    out_dir = Path(out_dir)
    partial = out_dir.with_name(f".partial-{out_dir.name}")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        generate_dataset(partial, synthetic_cases, synthetic_seed)
        shutil.rmtree(out_dir, ignore_errors=True)
        partial.rename(out_dir)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
