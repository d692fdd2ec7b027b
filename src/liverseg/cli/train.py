"""The training rules' steps (`workflow/rules/train.smk`): fetch-weights, train, segmenter, register."""

from __future__ import annotations

from pathlib import Path

from liverseg.cli.arguments import command, config_section, lesion_peak, min_lesion_peak, out, set_threads, window


def _fetch_weights(a):
    from liverseg.models.weights import fetch_weights

    fetch_weights(a.encoder, a.weights, a.out, a.endpoint)


def _train(a):
    from liverseg.training.augment import AugmentSettings
    from liverseg.training.settings import TrainSettings
    from liverseg.training.train import train_model

    set_threads(a.threads)
    train_model(
        a.name,
        a.model,
        TrainSettings.from_config(a.settings),
        AugmentSettings.from_config(a.augment),
        a.train_slices,
        a.val_slices,
        a.out_dir,
        a.tracking_uri,
        a.experiment,
        a.weights_file,
        a.config,
    )


def _segmenter(a):
    from liverseg.evaluation.postprocess_choice import read_choice
    from liverseg.inference.segmenter import write_segmenter

    stages = {}
    for role, path in (stage.split("=", 1) for stage in a.stage):  # a role named again: another fold of it
        stages.setdefault(role, []).append(Path(path))
    liver_post = read_choice(a.liver_choice) if a.liver_choice else None
    write_segmenter(
        a.name, a.out, stages, a.window, read_choice(a.choice), liver_post, tuple(a.flip_tta), lesion_peak(a)
    )


def _register(a):
    from liverseg.atomic import write_json
    from liverseg.tracking.registry import register_segmenter

    registered = register_segmenter(a.tracking_uri, a.experiment, a.name, a.folder)
    write_json(registered, a.out)
    print(f"registered models:/{registered['name']}@{registered['alias']} (version {registered['version']})")


def add_commands(steps) -> None:
    s = command(steps, "train", _train, "train one model")
    s.add_argument("--name", required=True)
    config_section(s, "--model", "entry of the model")
    config_section(s, "--settings", "train section")
    config_section(s, "--augment", "augment section")
    s.add_argument("--train-slices", type=Path, nargs="+", required=True)
    s.add_argument("--val-slices", type=Path, nargs="+", required=True)
    s.add_argument("--out-dir", type=Path, required=True)
    s.add_argument("--tracking-uri", required=True)
    s.add_argument("--experiment", required=True)
    s.add_argument("--weights-file", type=Path, help="cached pretrained encoder weights (see fetch-weights)")
    config_section(
        s, "--config", "sections the data come from (experiment, data, preprocess, split), for the run", required=False
    )
    s.add_argument("--threads", type=int, default=1)

    s = command(
        steps, "fetch-weights", _fetch_weights, "fetch an smp encoder's pretrained weights into the cache, once"
    )
    s.add_argument("--encoder", required=True)
    s.add_argument("--weights", required=True, help="e.g. imagenet")
    s.add_argument("--endpoint", default="https://huggingface.co", help="the Hugging Face hub or a mirror of it")
    out(s)

    s = command(steps, "segmenter", _segmenter, "describe a model or cascade folder for `liverseg segment`")
    s.add_argument("--name", required=True)
    s.add_argument(
        "--stage",
        nargs="+",
        required=True,
        metavar="ROLE=WEIGHTS",
        help="liver=PATH, and tumour=PATH for a cascade; a role repeated for each fold of an ensemble",
    )
    window(s)
    s.add_argument("--choice", type=Path, required=True, help="its post-processing (choose-postprocess's file)")
    s.add_argument(
        "--liver-choice", type=Path, help="a cascade's: its stage-1 model's post-processing, applied before the tumours"
    )
    s.add_argument(
        "--flip-tta",
        nargs="*",
        default=[],
        metavar="ROLE",
        help="the stages whose slices are averaged with their mirror's (liver, tumour)",
    )
    min_lesion_peak(s, chosen=True)
    out(s, "segmenter.json")

    s = command(steps, "register", _register, "register a model or cascade folder's segmenter in MLflow")
    s.add_argument("--name", required=True)
    s.add_argument("--folder", type=Path, required=True, help="the model or cascade folder, holding segmenter.json")
    s.add_argument("--tracking-uri", required=True)
    s.add_argument("--experiment", required=True)
    out(s, "JSON: the registered name, version and run")
