import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import settings

from tests.helpers import CASCADES, EDGE_CASES, SEGMENT_CONFIG, snakemake, tool_environment

# property-based tests: the same examples on every machine by default (CI); HYPOTHESIS_PROFILE=explore draws new ones
settings.register_profile("ci", derandomize=True, deadline=None, database=None, max_examples=100)
settings.register_profile("explore", deadline=None, max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def phantom_files(tmp_path_factory):
    """Three synthetic cases in the LiTS layout, shared by the tests that only read them."""
    from liverseg.data.synthetic import generate_dataset

    out = tmp_path_factory.mktemp("raw")
    generate_dataset(out, cases=3, seed=11)
    return out


@pytest.fixture
def tool_env():
    return tool_environment()


@pytest.fixture(scope="session")
def segment_experiment(tmp_path_factory):
    """The small segment experiment run through the workflow, on five phantoms of which four have their liver cut by
        the scan's edges (first slice, last slice, both, in-plane), with the rule of each cascade (2.5D and 3D tumour
    stage) run on every case: its folder.
        `liverseg segment` and the scan zoo are tested with its models."""
    from tests.scan_zoo import write_edge_cases

    root = tmp_path_factory.mktemp("segment-run")
    write_edge_cases(root / "raw", cases=5, seed=21)
    cascades = [f"results/{entry}/pred/{case}.nii.gz" for entry in CASCADES for case in EDGE_CASES]
    for targets in ([], cascades):
        options = ["--cores", "2", "--resources", "gpu=1", "--configfile", str(SEGMENT_CONFIG)]
        run = snakemake(root, *targets, *options, env=tool_environment())
        assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-5000:]
    return root / "experiments" / "segment"


SERVER = Path(__file__).with_name("range_server.py")


@pytest.fixture
def serve(tmp_path):
    """Start the loopback server on a folder; yields (url of a file, request log); stops its process group."""
    started = []

    def start(root: Path, name: str, cut_first: int | None = None):
        log, port_file = tmp_path / "requests.log", tmp_path / "port"
        command = [sys.executable, str(SERVER), "--root", str(root), "--log", str(log), "--port-file", str(port_file)]
        if cut_first is not None:
            command += ["--cut-first", str(cut_first)]
        started.append(subprocess.Popen(command, start_new_session=True))
        deadline = time.monotonic() + 30
        while not port_file.exists():
            assert time.monotonic() < deadline, "the loopback server did not start"
            time.sleep(0.05)
        return f"http://127.0.0.1:{port_file.read_text()}/{name}", log

    yield start
    for process in started:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
