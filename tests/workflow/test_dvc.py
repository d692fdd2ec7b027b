"""DVC end to end on the tiny experiment, in a temporary git repository holding the project's files: `dvc repro` runs
the workflow and hashes its outputs, `dvc push` to a local remote, the outputs and the cache deleted, `dvc pull`
restores the same bytes, Snakemake then has nothing to do, metrics and plots read without internet, and a changed
parameter re-runs only the jobs that depend on it."""

import hashlib
import json
import shutil
import subprocess

import pandas as pd
import pytest
import yaml

from tests.helpers import ROOT, TINY, tool_environment

pytestmark = pytest.mark.workflow
OUTS = ("data", "models", "results", "benchmarks")


def digests(experiment) -> dict[str, str]:
    files = sorted(p for out in OUTS for p in (experiment / out).rglob("*") if p.is_file())
    return {str(p.relative_to(experiment)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A git repository with the workflow, the package's code, the DVC files and the tiny config as config.yaml."""
    root = tmp_path_factory.mktemp("dvc") / "project"
    root.mkdir()
    for folder in ("workflow", "envs", "profiles", "src/liverseg"):
        shutil.copytree(ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("Snakefile", ".gitignore", ".dvcignore"):
        shutil.copy(ROOT / name, root / name)
    (root / "config.yaml").write_text(TINY.read_text())
    (root / "dvc.yaml").write_text((ROOT / "dvc.yaml").read_text().replace("experiments/synthetic", "experiments/tiny"))
    env = tool_environment()

    def run(*command, timeout=900):
        result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
        assert result.returncode == 0, " ".join(command) + "\n" + result.stdout[-3000:] + result.stderr[-3000:]
        return result.stdout + result.stderr

    run("git", "init", "-q")
    run("git", "config", "user.email", "ci@example.org")
    run("git", "config", "user.name", "ci")
    run("dvc", "init", "-q")
    shutil.copy(ROOT / ".dvc" / "config", root / ".dvc" / "config")  # the project's default remote
    remote = root.parent / "remote"
    run("dvc", "remote", "modify", "--local", "local", "url", str(remote))  # as the README says to move it
    run("dvc", "repro")
    run("git", "add", "-A")
    run("git", "commit", "-qm", "tiny experiment")
    return root, run, remote


def test_repro_push_pull_restores_the_same_bytes_and_snakemake_has_nothing_to_do(project):
    root, run, remote = project
    experiment = root / "experiments" / "tiny"
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]["pipeline"]
    hashed = {out["path"]: out for out in lock["outs"]}
    assert set(hashed) == {f"experiments/tiny/{out}" for out in OUTS}
    assert all(out["md5"].endswith(".dir") and out["nfiles"] > 0 for out in hashed.values())
    assert lock["params"]["config.yaml"]["train"]["epochs"] == 2
    run("dvc", "push")
    assert any(remote.rglob("*")), "nothing reached the remote"

    before = digests(experiment)
    for out in OUTS:
        shutil.rmtree(experiment / out)
    shutil.rmtree(root / ".dvc" / "cache")
    run("dvc", "pull")
    assert digests(experiment) == before

    # the README's command: restored files get one time, so that none looks newer than the files made from it
    run("bash", "-c", 'find experiments/tiny/{data,models,results,benchmarks} -exec touch -h -d "@$(date +%s)" {} +')
    assert "Nothing to be done" in run("snakemake", "-n")
    assert json.loads(run("dvc", "metrics", "diff", "--json").splitlines()[-1] or "{}") == {}
    metrics = json.loads(run("dvc", "metrics", "show", "--json"))[""]["data"]
    summary = pd.read_csv(experiment / "results" / "summary.csv").set_index("model")
    liver = metrics["experiments/tiny/results/metrics.json"]["data"]["unet"]["liver_dice"]
    assert liver == pytest.approx(summary.loc["unet", "liver_dice"])


def test_plots_render_without_internet_outside_git(project):
    root, run, _ = project
    run("dvc", "plots", "show")
    page = (root / "dvc_plots" / "index.html").read_text()
    assert "learning_curves.png" in page and "case_dice.png" in page
    assert "http" not in page, "the page would load something from the internet"
    assert "dvc_plots" not in run("git", "status", "--porcelain")


def test_a_changed_parameter_reruns_only_the_jobs_that_depend_on_it(project):
    root, run, _ = project
    models = digests(root / "experiments" / "tiny")
    log = run("dvc", "exp", "run", "-S", "config.yaml:postprocess.closing_radius_mm=1.5")
    assert "rule postprocess:" in log and "rule score:" in log and "rule aggregate:" in log
    assert "rule train:" not in log and "rule predict:" not in log
    after = digests(root / "experiments" / "tiny")
    trained = [path for path in models if path.endswith(("best.pt", "history.csv"))]
    assert trained and all(after[path] == models[path] for path in trained)
    assert after["models/unet/segmenter.json"] != models["models/unet/segmenter.json"]  # it holds the post-processing
