"""The data rules' steps (`workflow/rules/data.smk`): synthesise, download, ingest, preprocess, crop, split,
augment."""

from __future__ import annotations

from pathlib import Path

from liverseg.cli.arguments import command, config_section, out, window


def _synthesise(a):
    from liverseg.data.randomised import RandomisedRanges, randomised_styles
    from liverseg.data.synthetic import generate_dataset

    styles = randomised_styles(a.randomised_cases, a.randomised_seed, RandomisedRanges.from_dict(a.ranges))
    generate_dataset(a.out, a.cases, a.seed, randomised=styles, threads=a.threads)


def _download(a):
    from liverseg.data.download import download_msd

    download_msd(a.url, a.md5, a.out)


def _ingest(a):
    from liverseg.data.cases import write_cases_table

    table = write_cases_table(a.raw, a.layout, a.out, a.rejected, a.skip_invalid, a.threads)
    print(f"{len(table)} cases in {a.out}")


def _preprocess(a):
    from liverseg.data.slices import save_slices, slice_case

    save_slices(slice_case(a.volume, a.label, tuple(a.window), a.size), a.out)


def _crop(a):
    from liverseg.data.crops import crop_case
    from liverseg.data.slices import save_slices

    save_slices(crop_case(a.volume, a.label, tuple(a.window), a.size, a.margin_mm, a.jitter_mm, a.liver_hu), a.out)


def _split(a):
    from liverseg.atomic import write_json
    from liverseg.data.cases import read_cases_table
    from liverseg.data.split import split_cases

    table = read_cases_table(a.cases)
    split = split_cases(
        table, a.val_fraction, a.seed, a.test_fraction, a.stratify_tumour, a.train_only, source=a.cases, folds=a.folds
    )
    write_json(split, a.out)
    parts = [f"fold {k}: {cases}" for k, cases in enumerate(split.get("folds", []))] or [f"validation: {split['val']}"]
    print(f"train: {len(split['train'])} cases, {', '.join(parts)}, test: {split['test']}")


def _augment(a):
    from liverseg.training.augment import AugmentSettings, draw_preview

    draw_preview(a.slices, a.preview, AugmentSettings.from_config(a.settings), a.settings["seed"])


def add_commands(steps) -> None:
    from liverseg.data.download import MSD_MD5, MSD_URL

    s = command(steps, "synthesise", _synthesise, "write the synthetic CT set in the LiTS layout")
    s.add_argument("--cases", type=int, required=True, help="cases of the default design, numbered from 0")
    s.add_argument("--seed", type=int, required=True)
    s.add_argument(
        "--randomised-cases", type=int, default=0, help="domain-randomised cases, numbered from 1000, for training"
    )
    s.add_argument("--randomised-seed", type=int, default=0, help="the seed of the randomised cases' designs")
    config_section(s, "--ranges", "ranges that the designs are drawn from", required=False, default="{}")
    s.add_argument("--threads", type=int, default=1, help="cases made at once (the files do not depend on it)")
    out(s)

    s = command(steps, "download", _download, "download the MSD Task03_Liver archive (resumed, checked) and extract it")
    s.add_argument("--url", default=MSD_URL)
    s.add_argument("--md5", default=MSD_MD5)
    out(s, "the folder to extract into; the archive is kept beside it")

    s = command(steps, "ingest", _ingest, "check the raw cases and write the case table")
    s.add_argument("--raw", type=Path, required=True)
    s.add_argument("--layout", choices=["lits", "msd"], required=True)
    out(s)
    s.add_argument("--rejected", type=Path, required=True, help="table of the cases left out, with the reason")
    s.add_argument("--skip-invalid", action="store_true", help="leave out a failing case instead of stopping")
    s.add_argument("--threads", type=int, default=1, help="cases checked at once (each holds its volume in memory)")

    s = command(steps, "preprocess", _preprocess, "canonical orientation, HU window, resize: one case to slices")
    _case(s)
    s.add_argument("--size", type=int, required=True)
    out(s)

    s = command(steps, "crop", _crop, "the liver's box of one case at native resolution, for a tumour stage")
    _case(s)
    s.add_argument("--size", type=int, required=True)
    s.add_argument("--margin-mm", type=float, required=True)
    s.add_argument("--jitter-mm", type=float, required=True)
    s.add_argument("--liver-hu", type=float, help="shift the HU so that the liver's median lies here")
    out(s)

    s = command(steps, "split", _split, "patient-wise train/validation split, or folds for cross-validation")
    s.add_argument("--cases", type=Path, required=True)
    s.add_argument("--val-fraction", type=float, required=True, help="unused with --folds")
    s.add_argument("--folds", type=int, default=0, help="k folds by patient after the test part (0: none)")
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
    out(s)

    s = command(steps, "augment", _augment, "a preview of what augmentation does (training augments on the fly)")
    s.add_argument("--slices", type=Path, nargs="+", required=True)
    config_section(s, "--settings", "augment section")
    s.add_argument("--preview", type=Path, required=True)


def _case(parser) -> None:
    """A case's volume and label map, and the HU window."""
    parser.add_argument("--volume", type=Path, required=True)
    parser.add_argument("--label", type=Path, required=True)
    window(parser)
