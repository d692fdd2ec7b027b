"""Training as the config says: schedule knobs, determinism, resuming, and what the MLflow run records."""

import json
import socket

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

from liverseg.data.slices import save_slices
from liverseg.devices import cpu_has_native_bf16
from liverseg.models.networks import build_model
from liverseg.tracking import runs as tracking_runs
from liverseg.training import resume
from liverseg.training.augment import AugmentSettings
from liverseg.training.dataset import Batches, SliceSet
from liverseg.training.loop import recompute_batch_norm
from liverseg.training.settings import TrainSettings
from liverseg.training.train import train_model

MODEL = {"kind": "unet", "base_channels": 4, "depth": 2}
STILL = AugmentSettings(rotation_degrees=0, flip_lr=0.0, intensity_scale=(1.0, 1.0))


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    """Runs write their artifacts under the working folder (`mlartifacts/`), as workflow jobs do in the experiment's."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def slice_files(tmp_path_factory):
    """Two small cases: a bright square of liver holding a darker tumour, on a dark background with noise."""
    folder, rng, files = tmp_path_factory.mktemp("slices"), np.random.default_rng(0), []
    for name in ("train", "val"):
        labels = np.zeros((8, 32, 32), np.uint8)
        labels[:, 8:24, 8:24] = 1
        labels[::2, 12:18, 12:18] = 2
        image = np.where(labels == 1, 0.7, np.where(labels == 2, 0.4, 0.1)) + rng.normal(0, 0.05, labels.shape)
        save_slices({"image": image.astype(np.float16), "label": labels}, folder / f"{name}.npz")
        files.append(folder / f"{name}.npz")
    return files


def _train(tmp_path, slice_files, name="unet", **settings):
    out = tmp_path / name
    history = train_model(
        name,
        MODEL,
        TrainSettings(batch_size=4, device="cpu", **settings),
        STILL,
        [slice_files[0]],
        [slice_files[1]],
        out,
        f"sqlite:///{tmp_path / 'mlflow.db'}",
        "knobs",
    )
    return history, torch.load(out / "best.pt", weights_only=False)["state_dict"]


def _distance(a: dict, b: dict) -> float:
    return float(sum((a[k].float() - b[k].float()).norm() ** 2 for k in a if k.endswith("weight")) ** 0.5)


def test_early_stopping_stops_after_patience_epochs_without_improvement(tmp_path, slice_files):
    history, _ = _train(tmp_path, slice_files, epochs=6, lr=0.0, early_stopping=2)
    assert history["epoch"].tolist() == [1, 2, 3], "a learning rate of 0 never improves on epoch 1"
    history, _ = _train(tmp_path, slice_files, name="full", epochs=4, lr=0.0)
    assert len(history) == 4, "without early stopping every epoch runs"
    assert (history["data_seconds"] > 0).all() and (history["compute_seconds"] > history["data_seconds"]).all()
    assert np.allclose(history["data_seconds"] + history["compute_seconds"], history["epoch_seconds"])
    assert pd.read_csv(tmp_path / "full" / "history.csv")["epoch"].tolist() == [1, 2, 3, 4]


def test_gradient_clipping_and_weight_decay_change_the_weights(tmp_path, slice_files):
    torch.manual_seed(0)
    start = build_model(MODEL).state_dict()  # train_model seeds torch with the same seed before building its model
    _, plain = _train(tmp_path, slice_files, name="plain", epochs=1, lr=1e-2)
    _, clipped = _train(tmp_path, slice_files, name="clipped", epochs=1, lr=1e-2, grad_clip_norm=1e-12)
    # Adam divides by the gradients' scale; clipped to 1e-12 they fall below its epsilon, so the steps nearly vanish
    assert _distance(clipped, start) < 0.01 * _distance(plain, start)
    _, decayed = _train(tmp_path, slice_files, name="decayed", epochs=1, lr=1e-2, optimizer="adamw", weight_decay=10.0)
    norm = lambda state: sum(float(v.float().norm() ** 2) for k, v in state.items() if k.endswith("weight"))  # noqa: E731
    assert norm(decayed) < 0.9 * norm(plain)


def test_plateau_settings_reach_the_scheduler(tmp_path, slice_files):
    # no loss can improve by a relative 10x, so with patience 0 every epoch halves the rate, down to min_lr
    history, _ = _train(
        tmp_path, slice_files, epochs=4, lr=1e-3, plateau_patience=0, plateau_threshold=10.0, plateau_min_lr=4e-4
    )
    assert history["lr"].tolist() == pytest.approx([1e-3, 5e-4, 4e-4, 4e-4])


def test_the_kept_model_is_the_moving_average_of_the_weights(tmp_path, slice_files):
    """Two steps (8 slices, batches of 4): the average after them is decay * w1 + (1 - decay) * w2, weights and
    batch-norm statistics alike; decay 1 keeps the weights after the first step, decay 0 the last ones."""
    _, plain = _train(tmp_path, slice_files, name="plain", epochs=1, lr=1e-2)
    _, first = _train(tmp_path, slice_files, name="first", epochs=1, lr=1e-2, ema_decay=1.0)
    _, last = _train(tmp_path, slice_files, name="last", epochs=1, lr=1e-2, ema_decay=0.0)
    _, mixed = _train(tmp_path, slice_files, name="mixed", epochs=1, lr=1e-2, ema_decay=0.7)
    floats = [k for k in plain if plain[k].is_floating_point()]
    assert any("running_var" in k for k in floats)
    assert all(torch.equal(last[k], plain[k]) for k in floats)
    assert _distance(first, plain) > 0.01 * _distance(plain, {k: torch.zeros_like(v) for k, v in plain.items()})
    for k in floats:
        torch.testing.assert_close(mixed[k], 0.7 * first[k] + 0.3 * plain[k], rtol=1e-5, atol=1e-6)


def test_the_kept_model_is_the_mean_of_the_weights_after_each_epoch_from_swa_start(tmp_path, slice_files, monkeypatch):
    """Stopped after epoch 3 (as a kill would), the run's saved state holds the weights after epochs 1 and 2 of the same
    trajectory as without averaging, and their mean from swa_start = 1: the averaging changes no step."""
    states = {}
    for name, at_epoch, settings in [("w1", 2, {}), ("w2", 3, {}), ("swa", 3, {"swa_start": 1})]:
        _interrupted(tmp_path, slice_files, name, monkeypatch, at_epoch=at_epoch, epochs=3, lr=1e-2, **settings)
        states[name] = torch.load(tmp_path / name / "resume.pt", weights_only=False)
    w1, w2, swa = states["w1"]["model"], states["w2"]["model"], states["swa"]
    assert all(torch.equal(swa["model"][k], w2[k]) for k in w2), "the same steps as without averaging"
    mean = {k.removeprefix("module."): v for k, v in swa["swa"].items() if k.startswith("module.")}
    assert int(swa["swa"]["n_averaged"]) == 2
    weights = [k for k in w1 if k.endswith(("weight", "bias"))]
    assert weights and all(torch.allclose(mean[k], (w1[k] + w2[k]) / 2, atol=1e-7) for k in weights)
    # its batch-norm statistics are its own, computed over the training set: neither the last epoch's running ones nor
    # the fresh ones (zero mean) the average started from
    stats = [k for k in w1 if k.endswith("running_mean")]
    assert stats and all(not torch.allclose(mean[k], w2[k]) and mean[k].abs().sum() > 0 for k in stats)
    assert swa["best_checkpoint"]["state_dict"].keys() == w1.keys(), "a plain model's checkpoint"


def test_batch_norm_statistics_are_computed_again_over_the_plain_training_set():
    images = torch.rand(12, 8, 8, dtype=torch.float16)
    data = SliceSet(images, torch.zeros(12, 8, 8, dtype=torch.uint8), torch.arange(12)[:, None], None, None)
    batches = Batches(data, ("liver",), 4, torch.device("cpu"), STILL)
    norm = torch.nn.BatchNorm2d(1, momentum=0.3).eval()
    recompute_batch_norm(norm, batches)
    assert norm.running_mean.item() == pytest.approx(images.float().mean().item(), abs=1e-6), "each batch alike"
    assert norm.momentum == 0.3 and norm.training, "its momentum back; left in training mode, as update_bn does"


@pytest.mark.parametrize("settings", [{"ema_decay": 0.9, "swa_start": 1}, {"epochs": 2, "swa_start": 3}])
def test_swa_start_is_checked(settings):
    with pytest.raises(ValueError, match="swa_start"):
        TrainSettings(**{"epochs": 4, **settings})


def test_settings_from_the_config_section():
    section = {"epochs": 3, "plateau": {"factor": 0.1, "patience": 4, "cooldown": 1}, "threads": 8, "early_stopping": 5}
    settings = TrainSettings.from_config(section)
    assert (settings.epochs, settings.plateau_factor, settings.plateau_patience, settings.plateau_cooldown) == (
        3,
        0.1,
        4,
        1,
    )
    assert settings.early_stopping == 5 and settings.grad_clip_norm is None and settings.optimizer == "adam"


def test_same_config_and_seed_train_identically(tmp_path, slice_files):
    """On the CPU, with the same thread count: identical histories and weights (times aside)."""
    augment = AugmentSettings(zoom=(0.9, 1.1), noise_std=0.05, lesion_paste=0.5)
    runs = []
    for name in ("first", "second"):
        history = train_model(
            name,
            MODEL,
            TrainSettings(epochs=2, batch_size=4, lr=1e-2, device="cpu"),
            augment,
            [slice_files[0]],
            [slice_files[1]],
            tmp_path / name,
            f"sqlite:///{tmp_path / 'mlflow.db'}",
            "determinism",
        )
        runs.append(
            (
                history.drop(columns=["epoch_seconds", "data_seconds", "compute_seconds", "val_seconds"]),
                torch.load(tmp_path / name / "best.pt", weights_only=False),
            )
        )
    pd.testing.assert_frame_equal(runs[0][0], runs[1][0], check_exact=True)
    assert all(torch.equal(runs[0][1]["state_dict"][k], runs[1][1]["state_dict"][k]) for k in runs[0][1]["state_dict"])
    other = train_model(
        "other",
        MODEL,
        TrainSettings(epochs=2, batch_size=4, lr=1e-2, device="cpu", seed=1),
        augment,
        [slice_files[0]],
        [slice_files[1]],
        tmp_path / "other",
        f"sqlite:///{tmp_path / 'mlflow.db'}",
        "determinism",
    )
    assert not np.allclose(other["train_loss"], runs[0][0]["train_loss"]), "another seed, another run"


def _interrupted(tmp_path, slice_files, name, monkeypatch, at_epoch, **settings):
    """Train until the metrics of `at_epoch` are logged, then stop as a kill would (the state of the epoch before stays)."""
    original = tracking_runs.log_metrics

    def log_or_stop(client, run_id, metrics, step=None):
        if step == at_epoch:
            raise KeyboardInterrupt
        original(client, run_id, metrics, step)

    monkeypatch.setattr(tracking_runs, "log_metrics", log_or_stop)
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path, slice_files, name=name, **settings)
    monkeypatch.setattr(tracking_runs, "log_metrics", original)


@pytest.mark.parametrize("average", [{"ema_decay": 0.9}, {"swa_start": 2}])  # either average is part of the state
def test_an_interrupted_run_resumes_where_it_stopped_and_ends_as_if_never_stopped(
    tmp_path, slice_files, monkeypatch, capsys, average
):
    settings = dict(epochs=4, lr=1e-2, **average)
    plain, plain_weights = _train(tmp_path, slice_files, name="plain", **settings)
    _interrupted(tmp_path, slice_files, "resumed", monkeypatch, at_epoch=3, **settings)
    assert torch.load(tmp_path / "resumed" / "resume.pt", weights_only=False)["epoch"] == 2
    (tmp_path / "resumed" / "best.pt").unlink()  # Snakemake deletes the declared outputs before running again
    resumed, resumed_weights = _train(tmp_path, slice_files, name="resumed", **settings)
    assert "resuming after epoch 2" in capsys.readouterr().out
    times = ["epoch_seconds", "data_seconds", "compute_seconds", "val_seconds"]
    pd.testing.assert_frame_equal(plain.drop(columns=times), resumed.drop(columns=times), check_exact=True)
    assert all(torch.equal(plain_weights[k], resumed_weights[k]) for k in plain_weights)
    # the best epoch came before the kill, so the resumed best.pt was written from the saved state
    assert torch.load(tmp_path / "resumed" / "best.pt", weights_only=False)["epoch"] < 3
    assert not (tmp_path / "resumed" / "resume.pt").exists(), "a finished run leaves no state behind"
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("knobs").experiment_id], "tags.model = 'resumed'")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED", "the same MLflow run went on"
    assert [m.step for m in client.get_metric_history(runs[0].info.run_id, "val_loss")] == [1, 2, 3, 4]


def test_a_changed_config_starts_afresh(tmp_path, slice_files, monkeypatch, capsys):
    _interrupted(tmp_path, slice_files, "stale", monkeypatch, at_epoch=2, epochs=3, lr=1e-2)
    history, _ = _train(tmp_path, slice_files, name="stale", epochs=3, lr=5e-3)
    assert "written for another config or data set; starting afresh" in capsys.readouterr().out
    assert history["epoch"].tolist() == [1, 2, 3] and history["lr"].iloc[0] == 5e-3


def test_the_best_model_is_registered_and_loads_through_its_alias(tmp_path, slice_files):
    _, weights = _train(tmp_path, slice_files, name="unet", epochs=2, lr=1e-2)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    version = MlflowClient(uri).get_model_version_by_alias("unet", "champion")
    model = mlflow.pyfunc.load_model("models:/unet@champion")
    batch = np.random.default_rng(0).random((3, 1, 160, 160), dtype=np.float32)  # trained at 32 px
    probabilities = model.predict(batch)
    assert probabilities.shape == (3, 2, 160, 160) and ((probabilities >= 0) & (probabilities <= 1)).all()
    reference = build_model(MODEL)
    reference.load_state_dict(weights)
    with torch.no_grad():
        expected = torch.sigmoid(reference.eval()(torch.from_numpy(batch))).numpy()
    assert np.allclose(probabilities, expected, atol=1e-6), "the registered model is the best epoch's"
    signature = model.metadata.signature.inputs.to_dict()[0]["tensor-spec"]
    assert signature["dtype"] == "float32" and list(signature["shape"]) == [-1, 1, -1, -1]
    assert (
        version.run_id
        == MlflowClient(uri)
        .search_runs([MlflowClient(uri).get_experiment_by_name("knobs").experiment_id])[0]
        .info.run_id
    )


def test_the_run_records_where_it_ran_its_data_and_its_curves(tmp_path, slice_files):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    train_model(
        "unet",
        MODEL,
        TrainSettings(epochs=1, batch_size=4, device="cpu"),
        STILL,
        [slice_files[0]],
        [slice_files[1]],
        tmp_path / "unet",
        uri,
        "record",
        config={"experiment": "record", "split": {"val_fraction": 0.2, "seed": 3}},
    )
    client = MlflowClient(uri)
    run = client.search_runs([client.get_experiment_by_name("record").experiment_id])[0]
    assert run.data.tags["host"] == socket.gethostname() and run.data.tags["device"] == "cpu"
    assert run.data.tags["dataset_digest"] == resume.data_digest([slice_files[0]])
    assert run.data.params["config.split.seed"] == "3" and run.data.params["train.batch_size"] == "4"
    inputs = {d.tags[0].value: json.loads(d.dataset.profile) for d in run.inputs.dataset_inputs}
    assert inputs == {"training": {"cases": 1, "slices": 8}, "validation": {"cases": 1, "slices": 8}}
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"learning_curves.png", "history.csv", "checkpoint"} <= artifacts


def test_cpu_bf16_without_native_bfloat16_trains_exactly_as_float32(tmp_path, slice_files, monkeypatch):
    """A CPU that would emulate bfloat16 keeps float32: the same weights, bit for bit."""
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx2": True})
    _, plain = _train(tmp_path, slice_files, name="plain", epochs=1, lr=1e-2)
    _, asked = _train(tmp_path, slice_files, name="asked", epochs=1, lr=1e-2, cpu_bf16=True)
    assert all(torch.equal(plain[k], asked[k]) for k in plain)
    assert _precision(tmp_path, "asked") == "float32"


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no native bfloat16 (AMX or AVX-512 BF16)")
def test_cpu_bf16_trains_in_bfloat16_and_keeps_float32_weights(tmp_path, slice_files, monkeypatch):
    seen = []
    forward = torch.nn.Conv2d.forward
    monkeypatch.setattr(torch.nn.Conv2d, "forward", lambda self, x: seen.append(out := forward(self, x)) or out)
    _, plain = _train(tmp_path, slice_files, name="plain", epochs=1, lr=1e-2)
    assert {t.dtype for t in seen} == {torch.float32}
    seen.clear()
    history, mixed = _train(tmp_path, slice_files, name="mixed", epochs=1, lr=1e-2, cpu_bf16=True)
    assert {t.dtype for t in seen} == {torch.bfloat16}, "training and validation convolutions compute in bfloat16"
    assert all(v.dtype == plain[k].dtype for k, v in mixed.items()), "the weights stay float32"
    assert np.isfinite(history[["train_loss", "val_loss"]].to_numpy()).all()
    assert any(not torch.equal(plain[k], mixed[k]) for k in plain)
    assert (_precision(tmp_path, "plain"), _precision(tmp_path, "mixed")) == ("float32", "bfloat16")


def _precision(tmp_path, name: str) -> str:
    """The precision the MLflow run of a `_train` records."""
    run_id = json.loads((tmp_path / name / "run.json").read_text())["run_id"]
    return MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(run_id).data.params["precision"]
