"""`liverseg ui` before anything ran: a clear error naming the store, no server started."""

import subprocess

from tests.helpers import tool_environment


def test_an_experiment_without_store_is_named_clearly(tmp_path):
    result = subprocess.run(
        ["liverseg", "ui", "nothing-yet"],
        cwd=tmp_path,
        env=tool_environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert (
        "experiments/nothing-yet/mlflow.db: no MLflow store; run the workflow for this experiment first"
        in result.stderr
    )
