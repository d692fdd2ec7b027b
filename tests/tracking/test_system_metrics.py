"""System metrics of a training run in a real SQLite store: a run shorter than MLflow's sampling interval has them too,
and a resumed run continues their steps."""

from mlflow.tracking import MlflowClient

from liverseg.tracking.runs import system_metrics


def test_a_block_shorter_than_the_interval_logs_one_sample_and_a_resumed_one_the_next(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "30")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    run_id = client.create_run(client.create_experiment("short")).info.run_id
    with system_metrics(uri, run_id, resumed=False):
        pass
    with system_metrics(uri, run_id, resumed=True):
        pass
    history = client.get_metric_history(run_id, "system/cpu_utilization_percentage")
    assert [m.step for m in history] == [0, 1] and all(0 <= m.value <= 100 for m in history)
    assert "system/system_memory_usage_megabytes" in client.get_run(run_id).data.metrics
