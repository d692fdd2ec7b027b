"""`liverseg ui`: the MLflow UI on an experiment's store, on this machine only by default.

MLflow records artifact locations as absolute paths when runs are created, so a project folder that was moved (or
copied elsewhere) would show its runs with links into the old place. Before serving, the locations that point into
another folder's `mlartifacts/` are pointed at this experiment's own, where the artifacts now are.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

ARTIFACTS = "mlartifacts"
# every column where MLflow 3 keeps an absolute artifact location
LOCATION_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("logged_models", "artifact_location"),
    ("model_versions", "storage_location"),
)


def here_uri(experiment_dir: Path) -> str:
    return (experiment_dir / ARTIFACTS).absolute().as_uri()


def relocate_artifacts(experiment_dir: Path) -> int:
    """Point the store's artifact locations at `experiment_dir/mlartifacts`; the number of rows changed."""
    store = experiment_dir / "mlflow.db"
    if not store.is_file():
        raise FileNotFoundError(f"{store}: no MLflow store; run the workflow for this experiment first")
    here = here_uri(experiment_dir)
    with sqlite3.connect(store) as db:
        tables = {name for (name,) in db.execute("select name from sqlite_master where type = 'table'")}
        olds = {
            location
            for (location,) in db.execute("select artifact_location from experiments")
            if location.endswith(f"/{ARTIFACTS}") and location != here
        }
        changed = 0
        for old in olds:
            for table, column in LOCATION_COLUMNS:
                if table in tables:
                    changed += db.execute(
                        f"update {table} set {column} = ? || substr({column}, ?) where substr({column}, 1, ?) = ?",
                        (here, len(old) + 1, len(old), old),
                    ).rowcount
    return changed


def serve(experiment_dir: Path, host: str, port: int) -> None:
    """Relocate the artifact links if needed, then replace this process with `mlflow ui` on the store."""
    moved = relocate_artifacts(experiment_dir)
    if moved:
        print(
            f"{experiment_dir}: {moved} artifact locations pointed at {experiment_dir / ARTIFACTS} (the folder moved)"
        )
    with sqlite3.connect(experiment_dir / "mlflow.db") as db:
        ours = db.execute(
            "select experiment_id, name from experiments where artifact_location = ?", (here_uri(experiment_dir),)
        )
        for experiment_id, name in ours:  # the runs table (MLflow's UI would open in its GenAI mode)
            print(
                f"{name}: http://{host}:{port}/#/experiments/{experiment_id}?workflowType=machine_learning", flush=True
            )
    store = f"sqlite:///{(experiment_dir / 'mlflow.db').absolute()}"
    os.execvp("mlflow", ["mlflow", "ui", "--backend-store-uri", store, "--host", host, "--port", str(port)])
