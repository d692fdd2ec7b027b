"""Three models trained at once by the real workflow, all writing to one SQLite MLflow store: no run, metric or
registered model is lost."""

import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.helpers import RESUME, snakemake, tool_environment

pytestmark = pytest.mark.workflow


def test_three_models_trained_in_parallel_keep_complete_runs(tmp_path):
    config = yaml.safe_load(RESUME.read_text())
    config["experiment"] = "parallel"
    config["train"]["epochs"] = 3
    config["models"] = {name: {"kind": "unet", "base_channels": 4, "depth": 2} for name in ("first", "second", "third")}
    path = tmp_path / "parallel.yaml"
    path.write_text(yaml.safe_dump(config))
    targets = [f"models/{name}/best.pt" for name in config["models"]]
    result = snakemake(
        tmp_path, *targets, "--cores", "3", "--resources", "gpu=3", "--configfile", str(path), env=tool_environment()
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert log.count("rule train:") == 3

    client = MlflowClient(f"sqlite:///{tmp_path / 'experiments' / 'parallel' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("liverseg-parallel").experiment_id])
    assert sorted(run.info.run_name for run in runs) == ["first", "second", "third"]
    assert max(run.info.start_time for run in runs) < min(run.info.end_time for run in runs), "the three ran at once"
    for run in runs:
        assert run.info.status == "FINISHED"
        for metric in ("train_loss", "val_loss", "val_dice", "lr", "data_seconds"):
            assert [m.step for m in client.get_metric_history(run.info.run_id, metric)] == [1, 2, 3], (
                run.info.run_name,
                metric,
            )
        assert client.get_model_version_by_alias(run.info.run_name, "champion").run_id == run.info.run_id
