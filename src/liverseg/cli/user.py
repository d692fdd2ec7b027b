"""The commands users call, apart from the rules' steps: segment, export, view, evaluate, shifted, ui, ablation."""

from __future__ import annotations

from pathlib import Path

from liverseg.cli.arguments import (
    command,
    device,
    flip_tta,
    min_lesion_peak,
    out,
    probability,
    set_threads,
    tracking_uri,
)
from liverseg.cores import usable_cpus


def _segment(a):
    from dataclasses import fields

    from liverseg.devices import select_device
    from liverseg.dicom import dicomweb
    from liverseg.inference.quality import QualityLimits
    from liverseg.inference.segment import SegmentOptions, segment_scans, segment_study
    from liverseg.tracking.segmenters import load_segmenter

    set_threads(a.threads)
    given = ((f.name, getattr(a, f.name)) for f in fields(QualityLimits))  # the options are named after the limits
    limits = {name: value for name, value in given if value is not None}
    dev = select_device(a.device)
    inputs = [i for i in a.inputs if dicomweb.is_dicomweb(i)]
    if inputs and (len(a.inputs) > 1 or a.study is None):
        raise ValueError(f"{inputs[0]}: a DICOMweb server is segmented alone, one study at a time (--study UID)")
    if a.study is not None and not inputs:
        raise ValueError("--study names a study on a DICOMweb server: give the server (dicomweb://HOST:PORT/PATH)")
    segmenter = load_segmenter(a.model, dev, a.tracking_uri, a.runtime)
    if a.min_lesion_peak is not None:
        segmenter = segmenter.with_min_lesion_peak(a.min_lesion_peak)
    options = SegmentOptions(a.flip_tta, limits, tuple(a.format), a.series)
    if inputs:
        failures = segment_study(segmenter, inputs[0], a.study, a.out, dev, options)
    else:
        failures = segment_scans(segmenter, [Path(i) for i in a.inputs], a.out, dev, options)
    if failures:
        raise ValueError(f"{failures} of the inputs could not be segmented (named above); the others are in {a.out}")


def _export(a):
    from liverseg.tracking.segmenters import export_model

    set_threads(a.threads)
    if a.out.exists():
        raise ValueError(f"{a.out}: exists; export into a new folder")
    folder = export_model(a.model, a.out, a.tracking_uri)
    print(f"{a.model}: exported to {folder} (liverseg segment {folder} --runtime onnx ...)")


def _view(a):
    from liverseg.reporting.viewer import view_page

    print(f"{view_page(a.scan, a.labels, a.out, a.reference)}: {a.labels} over {a.scan}")


def _evaluate(a):
    from liverseg.external.folder import evaluate_folder

    set_threads(a.threads)
    _, rejected = evaluate_folder(
        a.data, a.models, a.out, a.layout, a.device, a.flip_tta, a.tracking_uri, min_lesion_peak=a.min_lesion_peak
    )
    print((a.out / "summary.md").read_text())
    if rejected:
        raise ValueError(f"{len(rejected)} files could not be scored (named above, in {a.out / 'rejected.tsv'})")


def _shifted(a):
    import yaml

    from liverseg.external.designs import check_shifted

    set_threads(a.threads)
    check_shifted(yaml.safe_load(a.config.read_text()), a.models_dir, a.cases, a.seed, a.out_dir, a.design)
    print((a.out_dir / "summary.md").read_text())


def _ui(a):
    from liverseg.tracking.ui import serve

    serve(Path("experiments") / a.experiment, a.host, a.port)


def _ablation(a):
    import yaml

    from liverseg.reporting.tables import write_ablation

    print(write_ablation(a.summary, yaml.safe_load(a.config.read_text()), a.command, a.out))


def _add_segment(steps) -> None:
    s = command(steps, "segment", _segment, "segment new CT scans with a trained model or cascade folder")
    s.add_argument(
        "model",
        help="a model or cascade folder of a finished run (holding segmenter.json), or a "
        "registered segmenter: models:/<entry>-segmenter@champion",
    )
    s.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="a NIfTI file, a folder of NIfTI files, a folder of DICOM files (of one series, or of a study's "
        "series: the axial CT series with most images is segmented), or a DICOMweb server "
        "(dicomweb://HOST:PORT/PATH, with --study; the Segmentation is stored back into the study)",
    )
    s.add_argument("--study", metavar="UID", help="the Study Instance UID to segment on a DICOMweb server")
    out(s, "folder for the label maps and volume reports")
    s.add_argument(
        "--format",
        type=lambda text: text.split(","),
        default=["nifti"],
        help="outputs, comma-separated, from nifti (<scan>.nii.gz), dicom-seg (<scan>.seg.dcm, a DICOM Segmentation) "
        "and rtstruct (<scan>.rtstruct.dcm, an RT Structure Set); the DICOM ones take DICOM inputs (default: nifti)",
    )
    s.add_argument("--series", metavar="UID", help="the Series Instance UID to segment in a DICOM folder of several")
    s.add_argument(
        "--runtime",
        choices=("torch", "onnx"),  # inference.segmenter.RUNTIMES, kept out of the parser's imports
        default="torch",
        help="what runs the networks: torch, or onnx (onnxruntime, on the CPU) for a folder `liverseg export` wrote",
    )
    flip_tta(s, described=True)
    min_lesion_peak(s, described=True)
    tracking_uri(s)
    device(s, usable_cpus())
    checks = s.add_argument_group("quality checks (a failing one is a warning; defaults: the segmenter's)")
    checks.add_argument("--liver-ml", type=float, nargs=2, metavar=("MIN", "MAX"), help="adult liver volume range")
    checks.add_argument("--max-tumour-share", type=probability, help="of the liver's volume (0 to 1)")
    checks.add_argument("--max-liver-components", type=int, help="connected pieces of liver")
    checks.add_argument("--liver-hu", type=float, nargs=2, metavar=("MIN", "MAX"), help="mean HU of the liver")
    checks.add_argument(
        "--max-uncertain-share", type=float, help="voxels of liver probability 0.25 to 0.75, per voxel called liver"
    )


def _add_export(steps) -> None:
    s = command(
        steps,
        "export",
        _export,
        "a model or cascade as a folder of its own, every stage also as ONNX (for --runtime onnx)",
    )
    s.add_argument("model", help="a model or cascade folder of a finished run, or a registered segmenter (models:/...)")
    out(s, "the new folder: segmenter.json, each stage's weights and their ONNX exports")
    tracking_uri(s)
    s.add_argument("--threads", type=int, default=usable_cpus())


def _add_evaluate(steps) -> None:
    s = command(steps, "evaluate", _evaluate, "segment and score a labelled folder (LiTS, MSD or image/label pairs)")
    s.add_argument("data", type=Path, help="the folder: LiTS or MSD layout, or images/ and labels/ of the same names")
    s.add_argument(
        "--model",
        dest="models",
        nargs="+",
        required=True,
        help="model or cascade folders of finished runs, or registered segmenters (models:/...)",
    )
    out(s, "folder for the label maps, per-case scores and summary")
    s.add_argument("--layout", choices=["auto", "lits", "msd", "pairs"], default="auto")
    flip_tta(s, described=True)
    min_lesion_peak(s, described=True)
    tracking_uri(s)
    device(s, usable_cpus())


def _add_ui(steps) -> None:
    s = command(
        steps, "ui", _ui, "the MLflow UI on an experiment's runs (artifact links follow a moved project folder)"
    )
    s.add_argument("experiment", nargs="?", default="synthetic", help="the experiment's name: experiments/NAME/")
    s.add_argument("--host", default="127.0.0.1", help="127.0.0.1: this machine only")
    s.add_argument("--port", type=int, default=5000)


def _add_shifted(steps) -> None:
    s = command(
        steps,
        "shifted",
        _shifted,
        "score the trained models on new phantoms, by default of another design than the training set's",
    )
    s.add_argument(
        "--config",
        type=Path,
        required=True,
        help="the config the models were trained with: its entries are scored, each as the segmenter.json of its "
        "folder describes it (mirroring, lowest lesion peak, post-processing)",
    )
    s.add_argument("--models-dir", type=Path, default=Path("models"), help="a finished run's models folder")
    s.add_argument("--cases", type=int, default=4)
    s.add_argument("--seed", type=int, default=99)
    s.add_argument(
        "--design",
        choices=(
            *("shifted", "default", "non-contrast", "liver-centred", "ascites-oral-contrast", "lean"),
            *("chest-to-pelvis", "randomised"),
        ),
        default="shifted",
        help="default: the training set's design, new patients; randomised: a design per case from the config's "
        "ranges (data.synthetic.randomised.ranges), drawn with --seed; the others: designs no training draws from",
    )
    out(s, flag="--out-dir")
    s.add_argument("--threads", type=int, default=2)


def _add_ablation(steps) -> None:
    s = command(steps, "ablation", _ablation, "the ablation table (docs/ablation.md) from an ablation run's summary")
    s.add_argument("--summary", type=Path, required=True)
    s.add_argument(
        "--config", type=Path, required=True, help="the ablation's config: which entry each is compared with"
    )
    s.add_argument("--command", required=True, help="the command that produced the summary, quoted in the table")
    out(s)


def _add_view(steps) -> None:
    s = command(steps, "view", _view, "one self-contained HTML page showing a scan with its labels (NiiVue)")
    s.add_argument("scan", type=Path, help="a NIfTI scan")
    s.add_argument("labels", type=Path, help="its label map (0 background, 1 liver, 2 tumour), on the scan's grid")
    s.add_argument("--reference", type=Path, help="a reference label map: its volumes and the Dice beside them")
    out(s, "the page (.html)")


def add_commands(steps) -> None:
    for add in (_add_segment, _add_export, _add_view, _add_evaluate, _add_ui, _add_shifted, _add_ablation):
        add(steps)
