"""The summary's inference costs, from the benchmark files Snakemake writes for the prediction jobs."""

from pathlib import Path

import numpy as np

from liverseg.reporting.summary import inference_costs


def _benchmark(root: Path, rule: str, name: str, case: str, seconds: float, rss: float) -> Path:
    path = root / "benchmarks" / rule / name / f"{case}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"s\th:m:s\tmax_rss\tmax_vms\n{seconds}\t0:00:03\t{rss}\t900\n")
    return path


def test_a_cascade_costs_its_stage1_job_and_its_own(tmp_path):
    files = [
        _benchmark(tmp_path, "predict", "unet", "case_000", 3.0, 500),
        _benchmark(tmp_path, "predict", "unet", "case_001", 5.0, 520),
        _benchmark(tmp_path, "cascade", "unet_cascade", "case_000", 2.0, 700),
        _benchmark(tmp_path, "cascade", "unet_cascade", "case_001", 4.0, 600),
        _benchmark(tmp_path, "cascade", "other_cascade", "case_000", 50.0, 9000),
    ]
    entries = {"unet": [Path("models/unet")], "unet_cascade": [Path("models/unet"), Path("models/tumour_unet")]}
    costs = inference_costs({**entries, "unmeasured": [Path("models/unmeasured")]}, files).set_index("model")
    assert costs.loc["unet"].tolist() == [4.0, 520.0]
    assert costs.loc["unet_cascade"].tolist() == [7.0, 700.0], "(3 + 2 + 5 + 4) / 2 cases; the larger peak"
    assert np.isnan(costs.loc["unmeasured"]).all()
    assert inference_costs(entries, [])["inference_seconds_per_case"].isna().all(), "no benchmarks: not measured"
