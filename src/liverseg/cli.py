"""`liverseg <step>`: the entry points that the Snakemake rules call, usable on their own."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def _download(a):
    from liverseg.data.download import fetch

    fetch(a.source, a.out, a.cases, a.seed)


def _ingest(a):
    from liverseg.data.cases import write_cases_table

    table = write_cases_table(a.raw, a.layout, a.out)
    print(f"{len(table)} cases in {a.out}")


def _preprocess(a):
    from liverseg.data.slices import save_slices, slice_case

    save_slices(slice_case(a.volume, a.label, tuple(a.window), a.size), a.out)


def _split(a):
    from liverseg.atomic import write_json
    from liverseg.data.cases import read_cases_table
    from liverseg.split import split_by_patient

    table = read_cases_table(a.cases)
    split = split_by_patient(dict(zip(table["case"], table["patient"])), a.val_fraction, a.seed)
    write_json(split, a.out)
    print(f"train: {len(split['train'])} cases, validation: {split['val']}")


def _augment(a):
    from liverseg.augment import AugmentSettings, build_training_set

    settings = json.loads(a.settings)
    seed = settings.pop("seed")
    settings["intensity_scale"] = tuple(settings["intensity_scale"])
    n = build_training_set(a.slices, a.out, a.preview, AugmentSettings(**settings), seed)
    print(f"{n} training slices in {a.out}")


def _train(a):
    import torch

    from liverseg.train import TrainSettings, train_model

    torch.set_num_threads(max(1, min(a.threads, os.cpu_count() or 1)))
    settings = json.loads(a.settings)
    tversky = settings.pop("tversky")
    plateau = settings.pop("plateau")
    settings = TrainSettings(
        **settings, alpha=tversky["alpha"], beta=tversky["beta"],
        plateau_factor=plateau["factor"], plateau_patience=plateau["patience"],
    )
    train_model(a.name, json.loads(a.model), settings, a.train_set, a.val_slices, a.out_dir, a.tracking_uri, a.experiment)


def _predict(a):
    import torch

    from liverseg.predict import predict_case

    torch.set_num_threads(max(1, min(a.threads, os.cpu_count() or 1)))
    predict_case(a.checkpoint, a.slices, a.volume, a.out, a.device)


def _postprocess(a):
    from liverseg.postprocess import postprocess_case

    postprocess_case(a.prediction, a.out, a.closing_radius_mm)


def _evaluate(a):
    from liverseg.evaluate import evaluate_case

    evaluate_case(a.model, a.case, a.label, {"pred": a.prediction, "post": a.postprocessed}, a.out)


def _aggregate(a):
    from liverseg.report import log_to_runs, read_case_scores, summarise, write_summary

    histories = dict(zip(a.models, a.histories))
    summary = summarise(read_case_scores(a.scores), histories)
    write_summary(summary, a.csv, a.md, a.metrics_json)
    log_to_runs(summary, dict(zip(a.models, a.runs)))
    print(a.md.read_text())


def _overlay(a):
    from liverseg.figures import overlay_case

    predictions = {model: Path(path) for model, path in (item.split("=", 1) for item in a.predictions)}
    overlay_case(a.case, a.volume, a.label, predictions, tuple(a.window), a.out)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="liverseg", description=__doc__)
    steps = p.add_subparsers(dest="step", required=True)

    def step(name, func, help):
        s = steps.add_parser(name, help=help)
        s.set_defaults(func=func)
        return s

    s = step("download", _download, "fetch or generate the raw data")
    s.add_argument("--source", required=True)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--cases", type=int, default=10, help="synthetic cases")
    s.add_argument("--seed", type=int, default=0, help="synthetic seed")

    s = step("ingest", _ingest, "check the raw cases and write the case table")
    s.add_argument("--raw", type=Path, required=True)
    s.add_argument("--layout", choices=["lits", "msd"], required=True)
    s.add_argument("--out", type=Path, required=True)

    s = step("preprocess", _preprocess, "canonical orientation, HU window, resize: one case to slices")
    s.add_argument("--volume", type=Path, required=True)
    s.add_argument("--label", type=Path, required=True)
    s.add_argument("--window", type=float, nargs=2, required=True, metavar=("LOW", "HIGH"))
    s.add_argument("--size", type=int, required=True)
    s.add_argument("--out", type=Path, required=True)

    s = step("split", _split, "patient-wise train/validation split")
    s.add_argument("--cases", type=Path, required=True)
    s.add_argument("--val-fraction", type=float, required=True)
    s.add_argument("--seed", type=int, required=True)
    s.add_argument("--out", type=Path, required=True)

    s = step("augment", _augment, "the augmented training set and its preview")
    s.add_argument("--slices", type=Path, nargs="+", required=True)
    s.add_argument("--settings", required=True, help="JSON: the config's augment section")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--preview", type=Path, required=True)

    s = step("train", _train, "train one model")
    s.add_argument("--name", required=True)
    s.add_argument("--model", required=True, help="JSON: the model's config entry")
    s.add_argument("--settings", required=True, help="JSON: the config's train section")
    s.add_argument("--train-set", type=Path, required=True)
    s.add_argument("--val-slices", type=Path, nargs="+", required=True)
    s.add_argument("--out-dir", type=Path, required=True)
    s.add_argument("--tracking-uri", required=True)
    s.add_argument("--experiment", required=True)
    s.add_argument("--threads", type=int, default=1)

    s = step("predict", _predict, "segment one case into a NIfTI label map")
    s.add_argument("--checkpoint", type=Path, required=True)
    s.add_argument("--slices", type=Path, required=True)
    s.add_argument("--volume", type=Path, required=True)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--device", default="auto")
    s.add_argument("--threads", type=int, default=1)

    s = step("postprocess", _postprocess, "morphological closing of a label map")
    s.add_argument("--prediction", type=Path, required=True)
    s.add_argument("--closing-radius-mm", type=float, required=True)
    s.add_argument("--out", type=Path, required=True)

    s = step("evaluate", _evaluate, "per-case scores before and after post-processing")
    s.add_argument("--model", required=True)
    s.add_argument("--case", required=True)
    s.add_argument("--label", type=Path, required=True)
    s.add_argument("--prediction", type=Path, required=True)
    s.add_argument("--postprocessed", type=Path, required=True)
    s.add_argument("--out", type=Path, required=True)

    s = step("overlay", _overlay, "figure: reference and predictions over the CT of one case")
    s.add_argument("--case", required=True)
    s.add_argument("--volume", type=Path, required=True)
    s.add_argument("--label", type=Path, required=True)
    s.add_argument("--predictions", nargs="+", required=True, metavar="MODEL=PATH")
    s.add_argument("--window", type=float, nargs=2, required=True, metavar=("LOW", "HIGH"))
    s.add_argument("--out", type=Path, required=True)

    s = step("aggregate", _aggregate, "the comparison table of all models")
    s.add_argument("--models", nargs="+", required=True)
    s.add_argument("--histories", type=Path, nargs="+", required=True)
    s.add_argument("--runs", type=Path, nargs="+", required=True)
    s.add_argument("--scores", type=Path, nargs="+", required=True)
    s.add_argument("--csv", type=Path, required=True)
    s.add_argument("--md", type=Path, required=True)
    s.add_argument("--metrics-json", type=Path, required=True)
    return p


def main(argv=None) -> None:
    args = parser().parse_args(argv)
    started = time.perf_counter()
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, NotImplementedError, RuntimeError) as error:
        print(f"liverseg {args.step}: error: {error}", file=sys.stderr)
        sys.exit(1)
    print(f"liverseg {args.step}: done in {time.perf_counter() - started:.1f} s", file=sys.stderr)
