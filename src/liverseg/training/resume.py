"""Training that survives a kill: the whole state at the end of every epoch, in `<model folder>/resume.pt`.

The file is not a declared output of the train rule (Snakemake deletes those before it runs a job again), and it holds
everything the next epoch depends on: weights, optimiser, scheduler, loss scaler, random-number states, history, the
best epoch's checkpoint and the MLflow run. It is tied to a fingerprint of the model entry, its settings and the bytes of
its training and validation data, so a changed config or data set starts afresh instead of resuming a stale run. A
finished training deletes it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from liverseg.atomic import atomic_path

FILE = "resume.pt"


def data_digest(files: list[Path]) -> str:
    """sha256 over the contents of the data files, in order."""
    digest = hashlib.sha256()
    for path in files:
        with open(path, "rb") as stream:
            digest.update(hashlib.file_digest(stream, "sha256").digest())
    return digest.hexdigest()


def fingerprint(params: dict, data: str) -> str:
    """What a run's epochs depend on: its parameters and the digest of its data files."""
    return hashlib.sha256(
        json.dumps({"params": params, "data": data}, sort_keys=True, default=str).encode()
    ).hexdigest()


def load_state(out_dir: Path, key: str) -> dict | None:
    """The saved state if it belongs to this run; a stale one is deleted, and the log says why."""
    path = Path(out_dir) / FILE
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state.get("fingerprint") != key:
        print(f"{path}: written for another config or data set; starting afresh", flush=True)
        path.unlink()
        return None
    print(f"{path}: resuming after epoch {state['epoch']} in MLflow run {state['run_id']}", flush=True)
    return state


def save_state(out_dir: Path, state: dict) -> None:
    with atomic_path(Path(out_dir) / FILE) as partial:
        torch.save(state, partial)


def discard(out_dir: Path) -> None:
    (Path(out_dir) / FILE).unlink(missing_ok=True)
