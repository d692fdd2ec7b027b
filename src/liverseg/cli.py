"""`liverseg <step>`: the entry points that the Snakemake rules call, usable on their own."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def _synthesise(a):
    from liverseg.data.randomised import RandomisedRanges, randomised_styles
    from liverseg.data.synthetic import generate_dataset

    ranges = RandomisedRanges.from_dict(json.loads(a.ranges))
    generate_dataset(
        a.out, a.cases, a.seed, randomised=randomised_styles(a.randomised_cases, a.randomised_seed, ranges)
    )


def _download(a):
    from liverseg.data.download import download_msd

    download_msd(a.url, a.md5, a.out)


def _ingest(a):
    from liverseg.data.cases import write_cases_table

    table = write_cases_table(a.raw, a.layout, a.out, a.rejected, a.skip_invalid)
    print(f"{len(table)} cases in {a.out}")


def _preprocess(a):
    from liverseg.data.slices import save_slices, slice_case

    save_slices(slice_case(a.volume, a.label, tuple(a.window), a.size), a.out)


def _split(a):
    from liverseg.atomic import write_json
    from liverseg.data.cases import read_cases_table
    from liverseg.data.split import split_by_patient, tumour_strata

    table = read_cases_table(a.cases)
    unknown = sorted(set(a.train_only) - set(table["case"]))
    if unknown:
        raise ValueError(f"{a.cases}: no cases {unknown}, named by --train-only")
    table = table[~table["case"].isin(a.train_only)]  # split as if they were not there
    strata = None
    if a.stratify_tumour:
        if "tumour_ml" not in table:
            raise ValueError(f"{a.cases}: no tumour_ml column (written by an older ingest); run ingest again")
        strata = tumour_strata(table.astype({"tumour_ml": float}).groupby("patient")["tumour_ml"].max().to_dict())
    split = split_by_patient(
        dict(zip(table["case"], table["patient"])), a.val_fraction, a.seed, a.test_fraction, strata
    )
    split["train"] = sorted(split["train"] + a.train_only)
    split["train_only"] = sorted(a.train_only)
    write_json(split, a.out)
    print(f"train: {len(split['train'])} cases, validation: {split['val']}, test: {split['test']}")


def _crop(a):
    from liverseg.data.crops import crop_case
    from liverseg.data.slices import save_slices

    save_slices(crop_case(a.volume, a.label, tuple(a.window), a.size, a.margin_mm, a.jitter_mm, a.liver_hu), a.out)


def _augment_settings(text: str):
    from liverseg.training.augment import AugmentSettings

    settings = json.loads(text)
    settings.pop("seed", None)
    return AugmentSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()})


def _augment(a):
    from liverseg.training.augment import draw_preview

    draw_preview(a.slices, a.preview, _augment_settings(a.settings), json.loads(a.settings)["seed"])


def _set_threads(threads: int) -> None:
    """Never more torch threads than the cores this process may use: oversubscription slows every step."""
    import torch

    torch.set_num_threads(max(1, min(threads, len(os.sched_getaffinity(0)))))


def _train(a):
    from liverseg.training.train import TrainSettings, train_model

    _set_threads(a.threads)
    settings = TrainSettings.from_config(json.loads(a.settings))
    train_model(
        a.name,
        json.loads(a.model),
        settings,
        _augment_settings(a.augment),
        a.train_slices,
        a.val_slices,
        a.out_dir,
        a.tracking_uri,
        a.experiment,
        a.weights_file,
        json.loads(a.config) if a.config else None,
    )


def _fetch_weights(a):
    from liverseg.models.weights import fetch_weights

    fetch_weights(a.encoder, a.weights, a.out, a.endpoint)


def _predict(a):
    from liverseg.inference.predict import predict_case

    _set_threads(a.threads)
    predict_case(a.checkpoint, a.slices, a.volume, a.out, a.device)


def _cascade(a):
    from liverseg.inference.predict import predict_cascade

    _set_threads(a.threads)
    voxels = predict_cascade(a.checkpoint, a.liver, a.volume, tuple(a.window), a.out, a.device)
    print(f"{voxels} tumour voxels inside the stage-1 liver")


def _segmenter(a):
    from liverseg.inference.segmenter import write_segmenter

    stages = dict(stage.split("=", 1) for stage in a.stage)
    write_segmenter(
        a.name, a.out, {role: Path(path) for role, path in stages.items()}, a.window, json.loads(a.postprocess)
    )


def _register(a):
    from liverseg.atomic import write_json
    from liverseg.tracking.registry import register_segmenter

    registered = register_segmenter(a.tracking_uri, a.experiment, a.name, a.folder)
    write_json(registered, a.out)
    print(f"registered models:/{registered['name']}@{registered['alias']} (version {registered['version']})")


def _ui(a):
    from liverseg.tracking.ui import serve

    serve(Path("experiments") / a.experiment, a.host, a.port)


def _segment(a):
    from dataclasses import fields

    from liverseg.devices import select_device
    from liverseg.inference.quality import QualityLimits
    from liverseg.inference.segment import segment_scans
    from liverseg.tracking.registry import load_segmenter

    _set_threads(a.threads)
    given = ((f.name, getattr(a, f.name)) for f in fields(QualityLimits))  # the options are named after the limits
    limits = {name: value for name, value in given if value is not None}
    device = select_device(a.device)
    segmenter = load_segmenter(str(a.model), device, a.tracking_uri)
    failures = segment_scans(segmenter, a.inputs, a.out, device, a.flip_tta, limits)
    if failures:
        raise ValueError(f"{failures} of the inputs could not be segmented (named above); the others are in {a.out}")


def _post_settings(text: str):
    from liverseg.inference.postprocess import PostSettings

    return PostSettings(**json.loads(text))


def _postprocess(a):
    from liverseg.inference.postprocess import postprocess_case

    postprocess_case(a.prediction, a.out, _post_settings(a.settings))


def _score(a):
    from liverseg.evaluation.evaluate import evaluate_case

    evaluate_case(a.model, a.case, a.label, a.prediction, a.postprocessed, _post_settings(a.settings), a.out)


def _evaluate(a):
    from liverseg.external.folder import evaluate_folder

    _set_threads(a.threads)
    _, rejected = evaluate_folder(a.data, a.models, a.out, a.layout, a.device, a.flip_tta, a.tracking_uri)
    print((a.out / "summary.md").read_text())
    if rejected:
        raise ValueError(f"{len(rejected)} files could not be scored (named above, in {a.out / 'rejected.tsv'})")


def _aggregate(a):
    from liverseg.atomic import atomic_path
    from liverseg.reporting.report import (
        case_statistics,
        log_to_runs,
        paired_comparisons,
        read_case_scores,
        statistics_markdown,
        step_effects,
        steps_markdown,
        summarise,
        write_summary,
    )

    stages = {name: [Path(d) for d in dirs] for name, *dirs in a.entry}
    scores, lesions = read_case_scores(a.scores)
    validation = read_case_scores(a.step_scores)[0] if a.step_scores else scores
    summary = summarise(scores, lesions, {n: [d / "history.csv" for d in dirs] for n, dirs in stages.items()})
    statistics, comparisons = case_statistics(scores), paired_comparisons(scores)
    for table, path in ((scores, a.cases_csv), (statistics, a.statistics_csv), (comparisons, a.comparisons_csv)):
        with atomic_path(path) as partial:
            table.to_csv(partial, index=False, float_format="%.6g")
    appendix = steps_markdown(step_effects(validation)) + "\n" + statistics_markdown(statistics, comparisons)
    write_summary(summary, a.csv, a.md, a.metrics_json, appendix, a.scored_on)
    log_to_runs(summary, {name: dirs[-1] / "run.json" for name, dirs in stages.items()})
    print(a.md.read_text())


def _ablation(a):
    import platform

    import pandas as pd
    import torch

    from liverseg.atomic import atomic_path
    from liverseg.reporting.report import ablation_markdown

    cpu = f"{len(os.sched_getaffinity(0))} CPU cores ({platform.machine()}, {platform.system()})"
    machine = f"{torch.cuda.get_device_name(0)} GPU" if torch.cuda.is_available() else f"{cpu}, no GPU"
    text = ablation_markdown(pd.read_csv(a.summary), a.command, machine, time.strftime("%Y-%m-%d"))
    with atomic_path(a.out) as partial:
        partial.write_text(text)
    print(text)


def _shifted(a):
    import yaml

    from liverseg.external.designs import check_shifted
    from liverseg.reporting.report import write_summary

    _set_threads(a.threads)
    config = yaml.safe_load(a.config.read_text())
    summary = check_shifted(config, a.models_dir, a.cases, a.seed, a.out_dir, a.design)
    write_summary(
        summary, a.out_dir / "summary.csv", a.out_dir / "summary.md", a.out_dir / "metrics.json", scored_on="new"
    )
    print((a.out_dir / "summary.md").read_text())


def _overlay(a):
    from liverseg.reporting.figures import overlay_case

    predictions = {model: Path(path) for model, path in (item.split("=", 1) for item in a.predictions)}
    overlay_case(a.case, a.volume, a.label, predictions, tuple(a.window), a.out)


def _curves(a):
    from liverseg.reporting.figures import learning_curves

    learning_curves({Path(path).parent.name: Path(path) for path in a.histories}, a.out)


def _case_dice(a):
    from liverseg.reporting.figures import case_dice_plot

    case_dice_plot(a.cases, a.out)


def _report_pages(a):
    from liverseg.reporting.report import write_report_pages

    write_report_pages(a.summary_md, a.cases, json.loads(a.config), a.summary_html, a.cases_html, a.config_html)


def parser() -> argparse.ArgumentParser:
    from liverseg.data.download import MSD_MD5, MSD_URL

    p = argparse.ArgumentParser(prog="liverseg", description=__doc__)
    steps = p.add_subparsers(dest="step", required=True)

    def step(name, func, help):
        s = steps.add_parser(name, help=help)
        s.set_defaults(func=func)
        return s

    s = step("synthesise", _synthesise, "write the synthetic CT set in the LiTS layout")
    s.add_argument("--cases", type=int, required=True, help="cases of the default design, numbered from 0")
    s.add_argument("--seed", type=int, required=True)
    s.add_argument(
        "--randomised-cases", type=int, default=0, help="domain-randomised cases, numbered from 1000, for training"
    )
    s.add_argument("--randomised-seed", type=int, default=0, help="the seed of the randomised cases' designs")
    s.add_argument("--ranges", default="{}", help="JSON: the ranges the designs are drawn from (RandomisedRanges)")
    s.add_argument("--out", type=Path, required=True)

    s = step("download", _download, "download the MSD Task03_Liver archive (resumed, checked) and extract it")
    s.add_argument("--url", default=MSD_URL)
    s.add_argument("--md5", default=MSD_MD5)
    s.add_argument("--out", type=Path, required=True, help="the folder to extract into; the archive is kept beside it")

    s = step("ingest", _ingest, "check the raw cases and write the case table")
    s.add_argument("--raw", type=Path, required=True)
    s.add_argument("--layout", choices=["lits", "msd"], required=True)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--rejected", type=Path, required=True, help="table of the cases left out, with the reason")
    s.add_argument("--skip-invalid", action="store_true", help="leave out a failing case instead of stopping")

    s = step("preprocess", _preprocess, "canonical orientation, HU window, resize: one case to slices")
    s.add_argument("--volume", type=Path, required=True)
    s.add_argument("--label", type=Path, required=True)
    s.add_argument("--window", type=float, nargs=2, required=True, metavar=("LOW", "HIGH"))
    s.add_argument("--size", type=int, required=True)
    s.add_argument("--out", type=Path, required=True)

    s = step("crop", _crop, "the liver's box of one case at native resolution, for a tumour stage")
    s.add_argument("--volume", type=Path, required=True)
    s.add_argument("--label", type=Path, required=True)
    s.add_argument("--window", type=float, nargs=2, required=True, metavar=("LOW", "HIGH"))
    s.add_argument("--size", type=int, required=True)
    s.add_argument("--margin-mm", type=float, required=True)
    s.add_argument("--jitter-mm", type=float, required=True)
    s.add_argument("--liver-hu", type=float, help="shift the HU so that the liver's median lies here")
    s.add_argument("--out", type=Path, required=True)

    s = step("split", _split, "patient-wise train/validation split")
    s.add_argument("--cases", type=Path, required=True)
    s.add_argument("--val-fraction", type=float, required=True)
    s.add_argument("--test-fraction", type=float, default=0.0, help="untouched test cases, the only ones scored")
    s.add_argument(
        "--stratify-tumour",
        action="store_true",
        help="each part holds patients without tumour, with smaller and with larger tumours in proportion",
    )
    s.add_argument("--seed", type=int, required=True)
    s.add_argument(
        "--train-only",
        nargs="*",
        default=[],
        metavar="CASE",
        help="cases that only train (the randomised phantoms): the others are split as without them",
    )
    s.add_argument("--out", type=Path, required=True)

    s = step("augment", _augment, "a preview of what augmentation does (training augments on the fly)")
    s.add_argument("--slices", type=Path, nargs="+", required=True)
    s.add_argument("--settings", required=True, help="JSON: the config's augment section")
    s.add_argument("--preview", type=Path, required=True)

    s = step("train", _train, "train one model")
    s.add_argument("--name", required=True)
    s.add_argument("--model", required=True, help="JSON: the model's config entry")
    s.add_argument("--settings", required=True, help="JSON: the config's train section")
    s.add_argument("--augment", required=True, help="JSON: the config's augment section")
    s.add_argument("--train-slices", type=Path, nargs="+", required=True)
    s.add_argument("--val-slices", type=Path, nargs="+", required=True)
    s.add_argument("--out-dir", type=Path, required=True)
    s.add_argument("--tracking-uri", required=True)
    s.add_argument("--experiment", required=True)
    s.add_argument("--weights-file", type=Path, help="cached pretrained encoder weights (see fetch-weights)")
    s.add_argument(
        "--config",
        help="JSON: the config sections the data come from (experiment, data, preprocess, split), recorded with the MLflow run",
    )
    s.add_argument("--threads", type=int, default=1)

    s = step("fetch-weights", _fetch_weights, "fetch an smp encoder's pretrained weights into the cache, once")
    s.add_argument("--encoder", required=True)
    s.add_argument("--weights", required=True, help="e.g. imagenet")
    s.add_argument("--endpoint", default="https://huggingface.co", help="the Hugging Face hub or a mirror of it")
    s.add_argument("--out", type=Path, required=True)

    s = step("predict", _predict, "segment one case into a NIfTI label map")
    s.add_argument("--checkpoint", type=Path, required=True)
    s.add_argument("--slices", type=Path, required=True)
    s.add_argument("--volume", type=Path, required=True)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--device", default="auto")
    s.add_argument("--threads", type=int, default=1)

    s = step("cascade", _cascade, "tumours of a tumour stage inside a stage-1 liver, as a NIfTI label map")
    s.add_argument("--checkpoint", type=Path, required=True, help="the tumour stage's weights")
    s.add_argument("--liver", type=Path, required=True, help="the stage-1 label map")
    s.add_argument("--volume", type=Path, required=True)
    s.add_argument("--window", type=float, nargs=2, required=True, metavar=("LOW", "HIGH"))
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--device", default="auto")
    s.add_argument("--threads", type=int, default=1)

    s = step("segmenter", _segmenter, "describe a model or cascade folder for `liverseg segment` (segmenter.json)")
    s.add_argument("--name", required=True)
    s.add_argument(
        "--stage", nargs="+", required=True, metavar="ROLE=WEIGHTS", help="liver=PATH, and tumour=PATH for a cascade"
    )
    s.add_argument("--window", type=float, nargs=2, required=True, metavar=("LOW", "HIGH"))
    s.add_argument("--postprocess", required=True, help="JSON: the config's postprocess section")
    s.add_argument("--out", type=Path, required=True)

    s = step("register", _register, "register a model or cascade folder's segmenter in MLflow as <name>-segmenter")
    s.add_argument("--name", required=True)
    s.add_argument("--folder", type=Path, required=True, help="the model or cascade folder, holding segmenter.json")
    s.add_argument("--tracking-uri", required=True)
    s.add_argument("--experiment", required=True)
    s.add_argument("--out", type=Path, required=True, help="JSON: the registered name, version and run")

    s = step("segment", _segment, "segment new CT scans with a trained model or cascade folder")
    s.add_argument(
        "model",
        help="a model or cascade folder of a finished run (holding segmenter.json), or a "
        "registered segmenter: models:/<entry>-segmenter@champion",
    )
    s.add_argument(
        "inputs",
        type=Path,
        nargs="+",
        metavar="INPUT",
        help="a NIfTI file, a folder of NIfTI files, or a folder holding one DICOM CT series",
    )
    s.add_argument("--out", type=Path, required=True, help="folder for the label maps and volume reports")
    s.add_argument("--flip-tta", action="store_true", help="average each slice's prediction with its mirror's")
    s.add_argument("--tracking-uri", help="the MLflow store of a models:/ MODEL (default: $MLFLOW_TRACKING_URI)")
    s.add_argument("--device", default="auto")
    s.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    checks = s.add_argument_group("quality checks (a failing one is a warning; defaults: the segmenter's)")
    checks.add_argument("--liver-ml", type=float, nargs=2, metavar=("MIN", "MAX"), help="adult liver volume range")
    checks.add_argument("--max-tumour-share", type=float, help="of the liver's volume (0 to 1)")
    checks.add_argument("--max-liver-components", type=int, help="connected pieces of liver")
    checks.add_argument("--liver-hu", type=float, nargs=2, metavar=("MIN", "MAX"), help="mean HU of the liver")
    checks.add_argument(
        "--max-uncertain-share", type=float, help="voxels of liver probability 0.25 to 0.75, per voxel called liver"
    )

    s = step("evaluate", _evaluate, "segment and score a labelled folder (LiTS, MSD or image/label pairs)")
    s.add_argument("data", type=Path, help="the folder: LiTS or MSD layout, or images/ and labels/ of the same names")
    s.add_argument(
        "--model",
        dest="models",
        nargs="+",
        required=True,
        help="model or cascade folders of finished runs, or registered segmenters (models:/...)",
    )
    s.add_argument("--out", type=Path, required=True, help="folder for the label maps, per-case scores and summary")
    s.add_argument("--layout", choices=["auto", "lits", "msd", "pairs"], default="auto")
    s.add_argument("--flip-tta", action="store_true", help="average each slice's prediction with its mirror's")
    s.add_argument("--tracking-uri", help="the MLflow store of a models:/ MODEL (default: $MLFLOW_TRACKING_URI)")
    s.add_argument("--device", default="auto")
    s.add_argument("--threads", type=int, default=os.cpu_count() or 1)

    s = step("ui", _ui, "the MLflow UI on an experiment's runs (artifact links follow a moved project folder)")
    s.add_argument("experiment", nargs="?", default="synthetic", help="the experiment's name: experiments/NAME/")
    s.add_argument("--host", default="127.0.0.1", help="127.0.0.1: this machine only")
    s.add_argument("--port", type=int, default=5000)

    s = step("postprocess", _postprocess, "the post-processing steps on a label map")
    s.add_argument("--prediction", type=Path, required=True)
    s.add_argument("--settings", required=True, help="JSON: the config's postprocess section")
    s.add_argument("--out", type=Path, required=True)

    s = step("score", _score, "per-case scores before, during and after post-processing")
    s.add_argument("--settings", required=True, help="JSON: the config's postprocess section")
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

    s = step("curves", _curves, "figure: learning curves of the trained models")
    s.add_argument("--histories", type=Path, nargs="+", required=True, help="models/<model>/history.csv files")
    s.add_argument("--out", type=Path, required=True)

    s = step("case-dice", _case_dice, "figure: every scored case's Dice per entry and target")
    s.add_argument("--cases", type=Path, required=True, help="results/cases.csv")
    s.add_argument("--out", type=Path, required=True)

    s = step(
        "report-pages", _report_pages, "the summary, per-case tables and config as HTML pages for the Snakemake report"
    )
    s.add_argument("--summary-md", type=Path, required=True)
    s.add_argument("--cases", type=Path, required=True, help="results/cases.csv")
    s.add_argument("--summary-html", type=Path, required=True)
    s.add_argument("--cases-html", type=Path, required=True)
    s.add_argument("--config", required=True, help="JSON: the run's config")
    s.add_argument("--config-html", type=Path, required=True)

    s = step("aggregate", _aggregate, "the comparison table of all scored entries")
    s.add_argument(
        "--entry",
        nargs="+",
        action="append",
        required=True,
        metavar="NAME MODEL_DIR",
        help="a scored entry and the folders of its trained stages, in order (repeat per entry)",
    )
    s.add_argument("--scores", type=Path, nargs="+", required=True, help="the scored cases' score files")
    s.add_argument("--scored-on", choices=["val", "test"], default="val", help="which side of the split is scored")
    s.add_argument(
        "--step-scores",
        type=Path,
        nargs="*",
        help="validation score files that judge post-processing when the scored cases are test cases",
    )
    s.add_argument("--csv", type=Path, required=True)
    s.add_argument("--md", type=Path, required=True)
    s.add_argument("--metrics-json", type=Path, required=True)
    s.add_argument("--cases-csv", type=Path, required=True, help="every case's scores, one row per stage and target")
    s.add_argument("--statistics-csv", type=Path, required=True, help="per entry and target: spread and 95%% interval")
    s.add_argument("--comparisons-csv", type=Path, required=True, help="paired differences of every pair of entries")

    s = step(
        "shifted",
        _shifted,
        "score the trained models on new phantoms, by default of another design than the training set's",
    )
    s.add_argument("--config", type=Path, required=True, help="the config the models were trained with")
    s.add_argument("--models-dir", type=Path, default=Path("models"))
    s.add_argument("--cases", type=int, default=4)
    s.add_argument("--seed", type=int, default=99)
    s.add_argument(
        "--design",
        choices=("shifted", "default", "non-contrast", "liver-centred", "ascites-oral-contrast", "randomised"),
        default="shifted",
        help="default: the training set's design, new patients; randomised: a design per case from the config's "
        "ranges (data.synthetic.randomised.ranges), drawn with --seed; the others: designs no training draws from",
    )
    s.add_argument("--out-dir", type=Path, required=True)
    s.add_argument("--threads", type=int, default=2)

    s = step("ablation", _ablation, "the ablation table (docs/ablation.md) from an ablation run's summary")
    s.add_argument("--summary", type=Path, required=True)
    s.add_argument("--command", required=True, help="the command that produced the summary, quoted in the table")
    s.add_argument("--out", type=Path, required=True)
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
