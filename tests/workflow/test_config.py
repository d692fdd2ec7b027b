"""The config schema stops bad settings before any job runs, and both shipped configs plan a valid workflow."""

import re
import subprocess

import pytest
import yaml

from tests.helpers import ROOT

README_CORES = 8  # snakemake --cores 8 --resources gpu=1


def dry_run(tmp_path, config, env):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    command = [
        "snakemake",
        "-n",
        "-s",
        str(ROOT / "Snakefile"),
        "--directory",
        str(tmp_path),
        "--configfile",
        str(path),
        "--cores",
        str(README_CORES),
    ]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def default_config():
    return yaml.safe_load((ROOT / "config.yaml").read_text())


@pytest.mark.parametrize(
    "section, key, value, message",
    [
        ("train", "epochs", -1, "epochs"),
        ("train", "batch_size", "sixteen", "batch_size"),
        ("models", "unet", {"kind": "vnet"}, "vnet"),
        ("tversky", "alpha", 1.5, "alpha"),
        ("models", "tumour_unet", {"kind": "unet", "input_slices": 2}, "input_slices"),
        ("models", "tumour_unet", {"kind": "unet", "crop": {"size": 96}}, "margin_mm"),
        ("preprocess", "image_size", 100, "image_size"),
        ("models", "tumour_unet", {"kind": "unet", "augment": {"lesion_pastes": 0.5}}, "lesion_pastes"),
        ("train", "ema_decay", 1.0, "ema_decay"),
        ("train", "swa_start", 0, "swa_start"),
        ("models", "unet", {"kind": "unet", "min_lesion_peak": 0.999}, "'crop' is a dependency of 'min_lesion_peak'"),
        (
            "models",
            "tumour_unet",
            {"kind": "unet", "crop": {"size": 96, "margin_mm": 10.0, "jitter_mm": 10.0}, "min_lesion_peak": "best"},
            "'best' is not valid under any of the given schemas",
        ),
    ],
)
def test_bad_settings_stop_with_the_key_named(tmp_path, tool_env, section, key, value, message):
    config = default_config()
    if section == "tversky":
        config["models"]["unet"]["loss"] = {"tversky": {key: value}}
    else:
        config[section][key] = value
    result = dry_run(tmp_path, config, tool_env)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "Error validating config file" in output
    assert f"On instance[{section!r}]" in output or "On instance['models']['unet']['loss']['tversky']" in output
    assert message in output
    assert not (tmp_path / "data").exists() and not (tmp_path / "results").exists()


def test_cascade_must_pair_a_stage1_model_with_a_tumour_stage(tmp_path, tool_env):
    config = default_config()
    config["cascades"] = {"wrong": {"liver": "tumour_unet", "tumour": "unet"}}
    result = dry_run(tmp_path, config, tool_env)
    assert result.returncode != 0
    assert "cascade 'wrong' needs a stage-1 model as liver" in result.stdout + result.stderr


def test_unknown_key_is_refused(tmp_path, tool_env):
    config = default_config()
    config["train"]["learning_rate"] = 0.01
    result = dry_run(tmp_path, config, tool_env)
    assert result.returncode != 0 and "'learning_rate' was unexpected" in result.stdout + result.stderr


def job_field(block: str, name: str) -> str:
    """A field of one job as a dry run prints it (`    threads: 4`)."""
    return re.search(rf"^    {name}: (\S+)", block, re.M)[1]


@pytest.mark.parametrize(
    "config_file, first",
    [("config.yaml", "synthesise"), ("config/ablation.yaml", "synthesise"), ("config/study.yaml", "download")],
)
def test_shipped_configs_plan_the_workflow(tmp_path, tool_env, config_file, first):
    config = yaml.safe_load((ROOT / config_file).read_text())
    result = dry_run(tmp_path, config, tool_env)
    assert result.returncode == 0, result.stderr[-3000:]
    for rule in (first, "ingest", "split", "augment", "train", "aggregate"):
        assert f"rule {rule}:" in result.stdout or f"checkpoint {rule}:" in result.stdout
    if first == "download":  # nothing of config.yaml's synthetic experiment is merged into the study
        assert "synthe" not in result.stdout
        assert '"size": 256' in result.stdout and '"size": 96' not in result.stdout  # the study's tumour stage alone
        # the ImageNet encoder is fetched by a local job before training, which reads the cached file only
        weights = tmp_path / "pretrained" / "resnet50.imagenet.safetensors"
        assert "rule fetch_weights:" in result.stdout and f"--out {weights}" in result.stdout
        assert f"--weights-file {weights}" in result.stdout
        return
    assert "download" not in result.stdout
    train_jobs = [
        line for line in result.stdout.splitlines() if line.startswith("Shell command: python -m liverseg train")
    ]
    trained = {line.split("--name ")[1].split()[0]: line for line in train_jobs}
    if config_file == "config.yaml":  # the tumour stage's own augment setting reaches its training job only
        pastes = {name: '"lesion_paste": 0.5' in line for name, line in trained.items()}
        assert pastes == {"unet": False, "resnet50_unet": False, "tumour_unet": True}
        # the section's noise on the stage-1 models only: it washes out lesions of a few voxels (docs/robustness.md)
        noises = {name: re.search(r'"noise_std": ([\d.]+)', line)[1] for name, line in trained.items()}
        assert noises == {"unet": "0.04", "resnet50_unet": "0.04", "tumour_unet": "0.0"}
        # the lean belly on the U-Net alone: it cost the ResNet50 U-Net the liver on other designs (docs/robustness.md)
        leans = {name: re.search(r'"lean": ([\d.]+)', line)[1] for name, line in trained.items()}
        assert leans == {"unet": "0.3", "resnet50_unet": "0.0", "tumour_unet": "0.0"}
        epochs = {name: re.search(r'"epochs": (\d+)', line)[1] for name, line in trained.items()}
        assert epochs == {"unet": "10", "resnet50_unet": "3", "tumour_unet": "20"}  # each model's own over train's 5
        # the U-Net keeps the mean of its last epochs; the tumour stage its moving average
        averages = {name: set(re.findall(r'"(swa_start|ema_decay)": ([\d.]+)', line)) for name, line in trained.items()}
        assert averages == {
            "unet": {("swa_start", "6")},
            "resnet50_unet": set(),
            "tumour_unet": {("ema_decay", "0.99")},
        }
        # the U-Net and the tumour stage side by side in the README's --cores on a machine without a GPU, the
        # ResNet50 U-Net alone on all of them; trainings ahead of every other job (priority 0), the one on all the
        # cores above the other two together (the scheduler sums the priorities of the jobs it starts at once), then
        # the tumour stage, which every cascade waits on
        jobs = [block.split("Shell command:")[0] for block in result.stdout.split("rule train:")[1:]]
        threads = {job_field(block, "wildcards"): int(job_field(block, "threads")) for block in jobs}
        priority = {job_field(block, "wildcards"): int(job_field(block, "priority")) for block in jobs}
        shared = default_config()["train"]["threads"]
        assert threads == {"model=unet": shared, "model=tumour_unet": shared, "model=resnet50_unet": README_CORES}
        assert priority["model=resnet50_unet"] > priority["model=tumour_unet"] + priority["model=unet"], priority
        assert priority["model=tumour_unet"] > priority["model=unet"] > 0, priority
        assert all('"threads"' not in line for line in trained.values())  # the scheduler's, not the training's
    else:  # the ablation's 3D, transformer and blob-loss tumour stages and the transformer as a stage-1 model
        assert {"tumour_unet", "tumour_3d", "tumour_mit", "tumour_blob", "h_mit_stage1"} <= set(trained)
        assert '"kind": "monai"' in trained["tumour_3d"] and '"encoder": "mit_b0"' in trained["tumour_mit"]
        assert '"blob": {"alpha": 0.3, "beta": 0.7, "weight": 1.0}' in trained["tumour_blob"]
        for cascade in ("e_cascade", "f_cascade_3d", "g_cascade_mit", "i_cascade_blob"):
            assert f"segmenter --name {cascade} " in result.stdout


@pytest.mark.parametrize("overlays", [["randomised.yaml"], ["randomised.yaml", "randomised_all.yaml"]])
def test_the_randomised_overlays_add_to_the_default_config(tmp_path, tool_env, overlays):
    files = [str(ROOT / "config.yaml"), *(str(ROOT / "config" / name) for name in overlays)]
    command = ["snakemake", "-n", "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path), "--configfile", *files]
    result = subprocess.run(command, env=tool_env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    phantoms = default_config()["data"]["synthetic"]["randomised"]["cases"]
    assert f"synthesise --cases 32 --seed 2024 --randomised-cases {phantoms} --randomised-seed 19" in result.stdout
    train_jobs = {
        line.split("--name ")[1].split()[0]: line
        for line in result.stdout.splitlines()
        if line.startswith("Shell command: python -m liverseg train")
    }
    every = len(overlays) == 2
    shifts = {name: '"liver_shift": 0.1' in line for name, line in train_jobs.items()}
    assert shifts == {"unet": every, "resnet50_unet": every, "tumour_unet": True}
    on_phantoms = {name: '"randomised_phantoms": true' in line for name, line in train_jobs.items()}
    assert on_phantoms == {"unet": True, "resnet50_unet": every, "tumour_unet": True}


def test_the_3d_overlay_adds_a_3d_tumour_stage_and_its_cascades(tmp_path, tool_env):
    files = [str(ROOT / "config.yaml"), str(ROOT / "config" / "tumour_3d.yaml")]
    command = ["snakemake", "-n", "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path), "--configfile", *files]
    result = subprocess.run(command, env=tool_env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    train_jobs = [
        line for line in result.stdout.splitlines() if line.startswith("Shell command: python -m liverseg train")
    ]
    trained = {line.split("--name ")[1].split()[0]: line for line in train_jobs}
    assert set(trained) == {"unet", "resnet50_unet", "tumour_unet", "tumour_3d"}
    assert '"kind": "monai"' in trained["tumour_3d"] and '"patch": [16, 64, 64]' in trained["tumour_3d"]
    for cascade, liver in (("unet_cascade_3d", "unet"), ("resnet50_cascade_3d", "resnet50_unet")):
        assert f"segmenter --name {cascade} --stage liver=models/{liver}/best.pt tumour=models/tumour_3d/best.pt" in (
            result.stdout
        )


def test_the_folds_overlay_deals_the_default_cases_into_five_folds(tmp_path, tool_env):
    files = [str(ROOT / "config.yaml"), str(ROOT / "config" / "folds.yaml")]
    command = ["snakemake", "-n", "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path), "--configfile", *files]
    result = subprocess.run(command, env=tool_env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    split = next(
        line for line in result.stdout.splitlines() if line.startswith("Shell command: python -m liverseg split")
    )
    assert "--folds 5" in split and "--test-fraction 0.2" in split


def test_a_config_names_only_what_its_source_uses(tmp_path, tool_env):
    study = yaml.safe_load((ROOT / "config" / "study.yaml").read_text())
    study["data"]["synthetic"] = {"cases": 15, "seed": 1}
    result = dry_run(tmp_path, study, tool_env)
    assert result.returncode != 0
    assert "data.synthetic is read only with data.source synthetic" in result.stdout + result.stderr
    study["data"] = {"source": "lits"}
    result = dry_run(tmp_path, study, tool_env)
    assert result.returncode != 0 and "'path' is a required property" in result.stdout + result.stderr


def test_study_config_is_the_published_setup():
    study = yaml.safe_load((ROOT / "config" / "study.yaml").read_text())
    assert study["data"]["source"] == "msd" and study["preprocess"]["image_size"] == 128
    assert study["train"]["epochs"] == 20 and study["train"]["batch_size"] == 16 and study["train"]["lr"] == 1e-4
    assert study["train"]["optimizer"] == "adam" and study["train"]["weight_decay"] == 0.0
    assert study["train"]["grad_clip_norm"] is None and study["train"]["early_stopping"] is None
    for model in ("unet", "resnet50_unet"):
        assert study["models"][model]["loss"] == {"tversky": {"weight": 1.0, "alpha": 0.7, "beta": 0.3}}
        assert "sampling" not in study["models"][model] and "input_slices" not in study["models"][model]
    assert study["augment"]["rotation_degrees"] == 15 and "noise_std" not in study["augment"]
    assert study["cascades"]["resnet50_cascade"] == {"liver": "resnet50_unet", "tumour": "tumour_unet"}
    assert study["models"]["resnet50_unet"]["encoder_weights"] == "imagenet"
    assert study["split"]["val_fraction"] == 0.2


def test_lint_and_format(tool_env):
    lint = subprocess.run(["snakemake", "--lint"], cwd=ROOT, env=tool_env, capture_output=True, text=True, timeout=300)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = subprocess.run(
        ["snakefmt", "--check", "Snakefile", "workflow"],
        cwd=ROOT,
        env=tool_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert fmt.returncode == 0, fmt.stderr
