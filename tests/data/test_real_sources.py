"""The workflow on local data folders, as users bring them: the LiTS layout and the MSD layout, read in place.

Two experiments run side by side in one project; the second leaves every file of the first as it was.
"""

import hashlib
import json
import shutil

import pandas as pd
import pytest
import yaml

from liverseg.data.synthetic import generate_dataset
from tests.helpers import TINY, snakemake, truncated

pytestmark = pytest.mark.workflow


def digests(folder):
    """Every file below `folder` (Snakemake's own bookkeeping aside) with the sha256 of its bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ".snakemake" not in p.parts
    }


def experiment(root, name, data, test_fraction=0.0):
    """The tiny experiment with the U-Net alone, on a local data folder."""
    config = yaml.safe_load(TINY.read_text())
    config.update(experiment=name, data=data, cascades={})
    config["split"] = {"val_fraction": 0.34, "test_fraction": test_fraction, "seed": 0}
    config["models"] = {"unet": config["models"]["unet"]}
    config["train"]["epochs"] = 1
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_lits_and_msd_folders_run_side_by_side(tmp_path, tool_env):
    phantoms = tmp_path / "phantoms"
    generate_dataset(phantoms, cases=4, seed=3)
    lits = tmp_path / "LiTS"
    for n in range(4):
        batch = lits / ("Training_Batch1" if n < 2 else "Training_Batch2")
        batch.mkdir(parents=True, exist_ok=True)
        for kind in ("volume", "segmentation"):
            shutil.copy(phantoms / f"{kind}-{n}.nii.gz", batch / f"{kind}-{n}.nii.gz")
    truncated(lits / "Training_Batch2" / "volume-3.nii.gz")  # a download cut short
    (lits / "Training_Batch2" / "segmentation-40.nii.gz").write_bytes(b"")  # a label without its volume
    msd = tmp_path / "Task03_Liver"
    for n in range(3):
        for kind, folder in (("volume", "imagesTr"), ("segmentation", "labelsTr")):
            (msd / folder).mkdir(parents=True, exist_ok=True)
            shutil.copy(phantoms / f"{kind}-{n}.nii.gz", msd / folder / f"liver_{n}.nii.gz")
    sources = {**{f"LiTS/{k}": v for k, v in digests(lits).items()}, **{f"MSD/{k}": v for k, v in digests(msd).items()}}

    project = tmp_path / "project"
    project.mkdir()
    run_lits = experiment(
        project, "on_lits", {"source": "lits", "path": str(lits), "skip_invalid": True}, test_fraction=0.34
    )
    result = snakemake(project, "--cores", "2", "--resources", "gpu=1", "--configfile", str(run_lits), env=tool_env)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    out = project / "experiments" / "on_lits"
    cases = pd.read_csv(out / "data/cases.tsv", sep="\t")
    assert list(cases["case"]) == ["case_000", "case_001", "case_002"]
    assert all(path.startswith(str(lits)) for path in cases["volume"])  # read in place, never copied
    rejected = pd.read_csv(out / "data/rejected.tsv", sep="\t", keep_default_na=False)
    assert sorted(rejected["file"]) == [
        str(lits / "Training_Batch2" / n) for n in ("segmentation-40.nii.gz", "volume-3.nii.gz")
    ]
    assert (out / "results/summary.md").is_file() and not (out / "data/raw").exists()
    # one case of each part: the test case alone is scored, the validation case judges post-processing
    split = json.loads((out / "data/split.json").read_text())
    assert [len(split[k]) for k in ("train", "val", "test")] == [1, 1, 1]
    assert pd.read_csv(out / "results/cases.csv")["case"].unique().tolist() == split["test"]
    assert pd.read_csv(out / "results/summary.csv")["scored_cases"].tolist() == [1]
    assert (out / f"results/unet/metrics/{split['val'][0]}.json").is_file()
    assert "untouched test cases" in (out / "results/summary.md").read_text()
    assert sorted(out.glob("results/figures/overlay_*.png")) == [
        out / f"results/figures/overlay_{split['test'][0]}.png"
    ]
    before = digests(out)

    run_msd = experiment(project, "on_msd", {"source": "folder", "path": str(msd)})
    result = snakemake(project, "--cores", "2", "--resources", "gpu=1", "--configfile", str(run_msd), env=tool_env)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    other = project / "experiments" / "on_msd"
    assert list(pd.read_csv(other / "data/cases.tsv", sep="\t")["case"]) == ["case_000", "case_001", "case_002"]
    assert (other / "results/summary.md").is_file() and (other / "mlflow.db").is_file()
    assert digests(out) == before
    assert sorted(p.name for p in project.iterdir()) == [".snakemake", "experiments", "on_lits.yaml", "on_msd.yaml"]
    assert {
        **{f"LiTS/{k}": v for k, v in digests(lits).items()},
        **{f"MSD/{k}": v for k, v in digests(msd).items()},
    } == sources


def test_a_bad_case_stops_the_run_with_its_file_named(tmp_path, tool_env):
    lits = tmp_path / "LiTS"
    generate_dataset(lits, cases=3, seed=3)
    truncated(lits / "segmentation-1.nii.gz")
    project = tmp_path / "project"
    project.mkdir()
    config = experiment(project, "strict", {"source": "lits", "path": str(lits)})
    result = snakemake(project, "--cores", "2", "--configfile", str(config), env=tool_env)
    assert result.returncode != 0
    log = (project / "experiments/strict/logs/ingest.log").read_text()
    assert log.strip().splitlines()[-1].startswith(f"liverseg ingest: error: {lits / 'segmentation-1.nii.gz'}: ")
    assert "Traceback" not in log
    assert f"{lits / 'segmentation-1.nii.gz'}: " in result.stdout + result.stderr  # the failed log is shown
    assert not (project / "experiments/strict/data/cases.tsv").exists()
