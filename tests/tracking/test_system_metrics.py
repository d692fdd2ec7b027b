"""System metrics of a training run in a real SQLite store: a run shorter than MLflow's sampling interval has them too,
a resumed run continues their steps, and a store gone by the end fails nothing."""

from mlflow.tracking import MlflowClient

from liverseg.tracking.runs import system_metrics
from tests.helpers import free_port


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


def test_a_store_gone_by_the_end_does_not_fail_the_block(monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    with system_metrics(f"http://127.0.0.1:{free_port()}", "0" * 32, resumed=False):
        pass
    assert "system metrics: the last sample was not logged" in capsys.readouterr().err
