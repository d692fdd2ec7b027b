"""The environments agree with pyproject.toml: the rules' conda environment lists its runtime dependencies with the same
version bounds, and envs/constraints.txt pins every dependency (tests included) within those bounds."""

import tomllib

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from tests.helpers import ROOT

# PyPI name -> conda-forge name, where they differ
CONDA_NAMES = {"torch": "pytorch", "matplotlib": "matplotlib-base"}
# run by the user's shell, not inside a rule: not in the rules' environment
OUTSIDE_RULES = {"snakemake", "dvc", "snakemake-executor-plugin-slurm"}


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def requirements(specs: list[str]) -> dict[str, SpecifierSet]:
    parsed = [Requirement(spec) for spec in specs]
    return {canonicalize_name(r.name): r.specifier for r in parsed}


def conda_dependencies() -> dict[str, SpecifierSet]:
    listed = yaml.safe_load((ROOT / "envs" / "liverseg.yaml").read_text())["dependencies"]
    found = {}
    for entry in listed:
        name, _, bounds = entry.partition(" ")
        found[canonicalize_name(name)] = SpecifierSet(bounds.replace(" ", "").replace("=3.11", "==3.11.*"))
    return found


def test_the_conda_environment_lists_the_runtime_dependencies_with_their_bounds():
    runtime = requirements(project()["dependencies"])
    expected = {CONDA_NAMES.get(name, name): spec for name, spec in runtime.items() if name not in OUTSIDE_RULES}
    conda = conda_dependencies()
    python = conda.pop("python")
    assert conda == expected
    assert "3.11.0" in python and SpecifierSet(project()["requires-python"]).contains("3.11.0")


def test_the_constraints_pin_every_dependency_within_its_bounds():
    lines = (ROOT / "envs" / "constraints.txt").read_text().splitlines()
    pins = dict(line.split("==") for line in lines if line and not line.startswith("#"))
    pinned = {canonicalize_name(name): version for name, version in pins.items()}
    wanted = requirements(project()["dependencies"] + project()["optional-dependencies"]["test"])
    for name, specifier in wanted.items():
        assert name in pinned, f"envs/constraints.txt does not pin {name}"
        assert specifier.contains(pinned[name], prereleases=True), f"{name}=={pinned[name]} is outside {specifier}"
