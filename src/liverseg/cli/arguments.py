"""Arguments that several commands share, and the threads a command may use."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from liverseg.cores import usable_cpus


def command(steps, name: str, func, help: str):
    """A subcommand whose handler is `func(args)`."""
    parser = steps.add_parser(name, help=help)
    parser.set_defaults(func=func)
    return parser


def out(parser, help: str | None = None, flag: str = "--out") -> None:
    parser.add_argument(flag, type=Path, required=True, help=help)


def window(parser) -> None:
    parser.add_argument("--window", type=float, nargs=2, required=True, metavar=("LOW", "HIGH"))


def config_section(parser, flag: str, section: str, required: bool = True, default: str | None = None) -> None:
    """A JSON argument holding a section of the config, parsed."""
    parser.add_argument(flag, type=json.loads, required=required, default=default, help=f"JSON: the config's {section}")


def device(parser, threads: int = 1) -> None:
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=threads)


def tracking_uri(parser) -> None:
    parser.add_argument("--tracking-uri", help="the MLflow store of a models:/ MODEL (default: $MLFLOW_TRACKING_URI)")


def flip_tta(parser, described: bool = False) -> None:
    """`--flip-tta`; for a command that applies a segmenter (`described`), also `--no-flip-tta`, and neither follows
    the segmenter's description, stage by stage."""
    if not described:
        parser.add_argument("--flip-tta", action="store_true", help="average each slice's prediction with its mirror's")
        return
    parser.add_argument(
        "--flip-tta",
        action=argparse.BooleanOptionalAction,
        help="average each slice's prediction with its left-right mirror's in every stage (--no-flip-tta: in none); "
        "default: in the stages whose model entry says flip_tta (segmenter.json)",
    )


def probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a probability (0 to 1)")
    return value


def min_lesion_peak(parser, described: bool = False, chosen: bool = False) -> None:
    """`--min-lesion-peak`; for a command that applies a segmenter (`described`), in place of its description's; for a
    workflow step (`chosen`), or `--min-lesion-peak-from` a choice file. `lesion_peak` reads them."""
    default = "the cascade's, as segmenter.json says" if described else "every lesion"
    group = parser.add_mutually_exclusive_group() if chosen else parser
    group.add_argument(
        "--min-lesion-peak",
        type=probability,
        metavar="P",
        help=f"keep only the tumour stage's lesions whose highest probability reaches P, 0 to 1 (0: every lesion; "
        f"default: {default})",
    )
    if chosen:
        group.add_argument(
            "--min-lesion-peak-from",
            type=Path,
            metavar="FILE",
            help="the P chosen on the validation cases (choose-lesion-peak's file)",
        )


def lesion_peak(a) -> float | None:
    """The lowest lesion peak that `min_lesion_peak`'s options give: P, a choice file's, or None (every lesion)."""
    if getattr(a, "min_lesion_peak_from", None) is not None:
        from liverseg.evaluation.lesion_peak_choice import read_lesion_peak

        return read_lesion_peak(a.min_lesion_peak_from)
    return a.min_lesion_peak


def set_threads(threads: int) -> None:
    """Never more torch threads than the cores this process may use: oversubscription slows every step."""
    import torch

    torch.set_num_threads(max(1, min(threads, usable_cpus())))
