"""MLflow runs in the project's store (SQLite by default, or a tracking server on a cluster)."""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

# an experiment of model training (the MLflow 3 UI shows runs, not GenAI traces, for it)
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}


@contextmanager
def store_lock(uri: str):
    """Serialise creating a SQLite store, its experiments and registered models: concurrent writers fail there."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    lock_path = Path(uri.removeprefix("sqlite:///") + ".lock")
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def flatten(params: dict, prefix: str = "") -> dict[str, str]:
    flat = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        flat.update(flatten(value, f"{name}.") if isinstance(value, dict) else {name: str(value)})
    return flat


def _git_commit() -> str | None:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def artifact_location(uri: str, artifact_root: Path) -> str | None:
    """The experiment's own folder for a local store; a tracking server's choice (its artifact proxy) otherwise."""
    return None if uri.startswith(("http://", "https://")) else Path(artifact_root).absolute().as_uri()


def _experiment_id(client: MlflowClient, name: str, location: str | None) -> str:
    """The experiment's id, created on first use; on a tracking server, jobs of other nodes may create it meanwhile."""
    if found := client.get_experiment_by_name(name):
        return found.experiment_id
    try:
        return client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_TAGS)
    except MlflowException:
        if found := client.get_experiment_by_name(name):
            return found.experiment_id
        raise


def start_run(
    uri: str, experiment: str, run_name: str, params: dict, artifact_root: Path, tags: dict | None = None
) -> tuple[MlflowClient, str]:
    """A new run with its parameters and tags; the experiment is created on first use."""
    with store_lock(uri):  # opening a client creates (migrates) the store: one process at a time
        client = MlflowClient(tracking_uri=uri)
        experiment_id = _experiment_id(client, experiment, artifact_location(uri, artifact_root))
    tags = {"mlflow.runName": run_name, "model": run_name, **(tags or {})}
    # MLflow derives the commit from sys.argv[0], which under Snakemake is not the project's code
    if commit := _git_commit():
        tags["mlflow.source.git.commit"] = commit
    run = client.create_run(experiment_id, run_name=run_name, tags=tags)
    for key, value in flatten(params).items():
        client.log_param(run.info.run_id, key, value[:6000])
    return client, run.info.run_id


def log_metrics(client: MlflowClient, run_id: str, metrics: dict[str, float], step: int | None = None) -> None:
    for key, value in metrics.items():
        if value == value:  # MLflow rejects NaN in some stores: leave undefined values out
            client.log_metric(run_id, key, float(value), step=step or 0)


def log_data(client: MlflowClient, run_id: str, files: list[Path], slices: int, context: str, digest: str) -> None:
    """The run's data set as an MLflow input (the Inputs of the run page): its files, their digest and size."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    dataset = Dataset(
        name=f"{context} slices",
        digest=digest[:32],
        source_type="local",
        source=json.dumps({"uri": str(Path(files[0]).parent.absolute()), "files": [Path(f).name for f in files]}),
        profile=json.dumps({"cases": len(files), "slices": slices}),
    )
    client.log_inputs(run_id, datasets=[DatasetInput(dataset, tags=[InputTag("mlflow.data.context", context)])])


@contextmanager
def system_metrics(uri: str, run_id: str, resumed: bool):
    """MLflow's system metrics (CPU, memory, disk, network, GPU) logged under `system/` while the block runs, every
    10 s (MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL), and once more as the block ends; a resumed run continues their
    steps."""
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    monitor = SystemMetricsMonitor(run_id, resume_logging=resumed, tracking_uri=uri)
    monitor.start()
    try:
        yield
    finally:
        monitor.finish()
        # MLflow's monitor drops the samples of its last, unfinished interval, so a run shorter than one interval
        # would have none: log what it holds, or a sample taken now
        try:
            last = monitor.aggregate_metrics()
            if not last:
                monitor.collect_metrics()
                last = monitor.aggregate_metrics()
            monitor.publish_metrics(last)
            monitor.mlflow_logger.flush()
        except Exception as error:  # auxiliary: a store that went away must not fail a finished training
            print(f"system metrics: the last sample was not logged ({error})", file=sys.stderr, flush=True)


def log_evaluation(summary, run_files: dict[str, tuple[list[Path], bool]]) -> None:
    """Add each entry's final evaluation to the MLflow runs of its last trained stage (each fold's, for an ensemble):
    `run_files` gives an entry's run files and whether they are the entry's own; where not, as for a cascade's tumour
    stage, the metrics are prefixed by the entry's name."""
    for row in summary.to_dict(orient="records"):
        files, own = run_files[row["model"]]
        prefix = "eval_" if own else f"eval_{row['model']}_"
        numbers = {prefix + k: v for k, v in row.items() if k not in ("model", "epochs")}
        for file in files:
            run = json.loads(Path(file).read_text())
            log_metrics(MlflowClient(tracking_uri=run["tracking_uri"]), run["run_id"], numbers)
