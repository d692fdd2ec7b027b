"""Trained models checked on new phantoms: of another design than the training set's (`synthetic.DESIGNS`: SHIFTED,
other liver and lesion contrasts, lumpier outlines, coarser texture and more noise; a scan without contrast; a
liver-centred reconstruction of thin slices that cuts the body wall; ascites and bowel full of oral contrast; a lean
patient; a scan from the chest to the pelvis), or of the same design, drawn from another seed, for a larger sample
than a run's test split; or of randomised designs, one per case, drawn from the config's ranges
(`data.synthetic.randomised.ranges`) with another seed than training's: a stress test over every contrast, field of
view and resolution those ranges allow. Every case is new to every model."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from liverseg.data.randomised import RandomisedRanges, randomised_styles
from liverseg.data.synthetic import DESIGNS, generate_dataset
from liverseg.external.folder import evaluate_folder


def check_shifted(
    config: dict,
    models_dir: Path,
    cases: int,
    seed: int,
    out_dir: Path,
    design: str = "shifted",
) -> pd.DataFrame:
    """Predict, post-process and score `cases` new phantoms of a design of `synthetic.DESIGNS`, or of `randomised`
    designs (one a case, from the config's ranges), with every stage-1 model and cascade of `config`, each as its
    segmenter (`segmenter.json` in its folder of `models_dir`) describes it, as `liverseg evaluate` does: its
    mirroring, lowest lesion peak and chosen post-processing are the run's, never read again from a config that may
    have changed since. The phantoms are written to `out_dir`/raw in the LiTS layout; the summary, also written into
    `out_dir` (summary.csv, .md, metrics.json)."""
    raw = out_dir / "raw"
    if design == "randomised":
        ranges = RandomisedRanges.from_dict(config["data"]["synthetic"]["randomised"]["ranges"])
        generate_dataset(raw, 0, seed, randomised=randomised_styles(cases, seed, ranges))
    else:
        generate_dataset(raw, cases, seed, DESIGNS[design])
    stage1 = [name for name, spec in config["models"].items() if "crop" not in spec]
    entries = [models_dir / name for name in [*stage1, *config.get("cascades", {})]]
    summary, _ = evaluate_folder(raw, [str(entry) for entry in entries], out_dir, layout="lits", scored_on="new")
    return summary
