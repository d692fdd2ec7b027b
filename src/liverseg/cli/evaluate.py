"""The evaluation rules' steps (`workflow/rules/evaluate.smk`): predict, choose-lesion-peak, cascade,
choose-postprocess, postprocess, score."""

from __future__ import annotations

from pathlib import Path

from liverseg.cli.arguments import (
    command,
    config_section,
    device,
    flip_tta,
    lesion_peak,
    min_lesion_peak,
    out,
    set_threads,
    window,
)


def _predict(a):
    from liverseg.inference.predict import predict_case

    set_threads(a.threads)
    predict_case(a.checkpoint, a.slices, a.volume, a.out, a.device, a.flip_tta)


def _cascade(a):
    from liverseg.inference.predict import predict_cascade

    set_threads(a.threads)
    voxels = predict_cascade(
        a.checkpoint, a.liver, a.volume, tuple(a.window), a.out, a.device, a.flip_tta, lesion_peak(a)
    )
    print(f"{voxels} tumour voxels inside the stage-1 liver")


def _choose_lesion_peak(a):
    from liverseg.evaluation.lesion_peak_choice import choose_lesion_peak

    set_threads(a.threads)
    choice = choose_lesion_peak(a.checkpoint, a.volume, a.label, tuple(a.window), a.out, a.device, a.flip_tta)
    for cut in choice["cuts"]:
        print(
            f"min_lesion_peak {cut['min_lesion_peak']:.8g}: {cut['true_positives']} of {cut['ref_lesions']} lesions "
            f"found, {cut['false_positives']} false, lesion F1 {cut['lesion_f1']:.3f}"
        )
    print(f"chosen: {choice['min_lesion_peak']:.8g}")


def _choose_postprocess(a):
    from liverseg.evaluation.postprocess_choice import choose_postprocess
    from liverseg.inference.postprocess import PostSettings

    choice = choose_postprocess(a.labels, a.predictions, PostSettings.from_config(a.settings), a.out)
    for effect in choice["steps"]:
        judged = (
            f"mean Dice {effect['dice_before']:.4f} -> {effect['dice_after']:.4f}"
            if "dice_after" in effect
            else "not judged"
        )
        print(f"{effect['step']}: {'kept' if effect['kept'] else 'dropped'} ({judged})")


def _postprocess(a):
    from liverseg.evaluation.postprocess_choice import read_choice
    from liverseg.inference.postprocess import postprocess_case

    postprocess_case(a.prediction, a.out, read_choice(a.choice))


def _score(a):
    from liverseg.evaluation.evaluate import evaluate_case
    from liverseg.inference.postprocess import PostSettings

    evaluate_case(a.model, a.case, a.label, a.prediction, a.postprocessed, PostSettings.from_config(a.settings), a.out)


def add_commands(steps) -> None:
    s = command(steps, "predict", _predict, "segment one case into a NIfTI label map")
    s.add_argument("--checkpoint", type=Path, nargs="+", required=True, help="one model, or the folds of an ensemble")
    s.add_argument("--slices", type=Path, required=True)
    s.add_argument("--volume", type=Path, required=True)
    flip_tta(s)
    out(s)
    device(s)

    s = command(steps, "cascade", _cascade, "tumours of a tumour stage inside a stage-1 liver, as a NIfTI label map")
    s.add_argument(
        "--checkpoint", type=Path, nargs="+", required=True, help="the tumour stage's weights (or its folds')"
    )
    s.add_argument("--liver", type=Path, required=True, help="the stage-1 label map")
    s.add_argument("--volume", type=Path, required=True)
    window(s)
    flip_tta(s)
    min_lesion_peak(s, chosen=True)
    out(s)
    device(s)

    s = command(
        steps,
        "choose-lesion-peak",
        _choose_lesion_peak,
        "a tumour stage's lowest lesion peak, chosen on validation cases segmented inside their reference liver",
    )
    s.add_argument("--checkpoint", type=Path, nargs="+", required=True, help="the weights of each case, in order")
    s.add_argument("--volume", type=Path, nargs="+", required=True, help="the validation cases' scans")
    s.add_argument("--label", type=Path, nargs="+", required=True, help="their reference label maps, in order")
    window(s)
    flip_tta(s)
    out(s, "lesion_peak.json")
    device(s)

    s = command(
        steps, "choose-postprocess", _choose_postprocess, "the post-processing steps that do not lower validation Dice"
    )
    config_section(s, "--settings", "postprocess section: the steps to try")
    s.add_argument("--labels", type=Path, nargs="*", default=[], help="the reference label maps of the cases judged")
    s.add_argument("--predictions", type=Path, nargs="*", default=[], help="their predictions, in the same order")
    out(s, "postprocess.json")

    s = command(steps, "postprocess", _postprocess, "the post-processing steps on a label map")
    s.add_argument("--prediction", type=Path, required=True)
    s.add_argument("--choice", type=Path, required=True, help="the steps chosen (choose-postprocess's file)")
    out(s)

    s = command(steps, "score", _score, "per-case scores before, during and after post-processing")
    config_section(s, "--settings", "postprocess section")
    s.add_argument("--model", required=True)
    s.add_argument("--case", required=True)
    s.add_argument("--label", type=Path, required=True)
    s.add_argument("--prediction", type=Path, required=True)
    s.add_argument("--postprocessed", type=Path, required=True)
    out(s)
