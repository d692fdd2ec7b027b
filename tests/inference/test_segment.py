"""`liverseg segment` on scans the workflow never saw: other orientation, a DICOM series, bad inputs beside good ones;
and the same labels as the workflow's own prediction, post-processing and cascade."""

import dataclasses
import json
import locale
import subprocess
import uuid

import mlflow
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import torch
from mlflow.tracking import MlflowClient

from liverseg.data.synthetic import make_case, write_case
from liverseg.dicom.series import choose_series, keeping_locale, read_series
from liverseg.inference.predict import segment_slices
from liverseg.inference.quality import QualityLimits
from liverseg.inference.segment import scan_name
from liverseg.measurements import largest_diameter_mm, lesion_sizes
from liverseg.models.checkpoint import load_models
from liverseg.models.heads import mean_probabilities
from liverseg.models.recipe import Recipe
from tests.dicom_series import Study, coronal_localizer, write_ct_series
from tests.helpers import CASCADES, tool_environment, write_checkpoint, write_nifti

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def new_scan(tmp_path_factory):
    """A phantom no model saw, stored (P, L, I): an orientation none of the training files has; and the same patient
    stored (R, A, S), the order the models see every scan in."""
    folder = tmp_path_factory.mktemp("new-scan")
    case = make_case(seed=777_001)
    volume, label = folder / "patient-x.nii.gz", folder / "patient-x-reference.nii.gz"
    write_case(dataclasses.replace(case, orientation=("P", "L", "I")), volume, label)
    write_case(
        dataclasses.replace(case, orientation=("R", "A", "S")),
        folder / "patient-x-ras.nii.gz",
        folder / "ras-ref.nii.gz",
    )
    return volume, label


def segment(*args, timeout=600):
    command = ["liverseg", "segment", *map(str, args)]
    return subprocess.run(command, env=tool_environment(), capture_output=True, encoding="utf-8", timeout=timeout)


def write_dicom_series(volume, folder, seed=0):
    """One file per axial slice with random names and a shuffled instance number: only the positions give the order."""
    image = sitk.ReadImage(str(volume))
    folder.mkdir()
    rng = np.random.default_rng(seed)
    direction = image.GetDirection()
    series, study = f"1.2.826.0.1.3680043.8.498.{rng.integers(1e12)}", f"1.2.826.0.1.3680043.8.498.{rng.integers(1e12)}"
    numbers = rng.permutation(image.GetDepth()) + 1
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(image.GetDepth()):
        plane = image[:, :, k]
        tags = {
            "0008|0060": "CT",
            "0008|0008": "ORIGINAL\\PRIMARY\\AXIAL",
            "0020|000d": study,
            "0020|000e": series,
            "0008|0018": f"{series}.{k + 1}",
            "0020|0013": str(numbers[k]),
            "0020|0037": "\\".join(f"{v:.6f}" for v in (*direction[0::3], *direction[1::3])),
            "0020|0032": "\\".join(f"{v:.4f}" for v in image.TransformIndexToPhysicalPoint((0, 0, k))),
            "0018|0050": f"{image.GetSpacing()[2]:.4f}",
            "0028|1052": "0",
            "0028|1053": "1",
        }
        for tag, value in tags.items():
            plane.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{uuid.UUID(int=int(rng.integers(2**62)))}.dcm"))
        with keeping_locale():
            writer.Execute(plane)
    return folder


def test_a_dicom_study_is_answered_in_a_segmentation_and_a_structure_set_beside_the_label_map(
    segment_experiment, new_scan, tmp_path
):
    """A study folder (a localizer and the phantom's series, stored (P, L, I)) with every output format: the series
    chosen is named, and the Segmentation read back holds the label map's voxels on each source image."""
    import highdicom as hd
    import pydicom

    volume, _ = new_scan
    study = Study()
    coronal_localizer(tmp_path / "study", study)
    files = write_ct_series(nib.load(volume), tmp_path / "study", study, 3, "venous")
    model = segment_experiment / "models" / "unet_cascade"
    out = tmp_path / "out"
    result = segment(model, tmp_path / "study", "--format", "nifti,dicom-seg,rtstruct", "--out", out, "--threads", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "the axial CT series with most images" in result.stdout and "'scout'" in result.stdout
    labels = np.asanyarray(nib.load(out / "study.nii.gz").dataobj)
    sources = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    seg = hd.seg.segread(out / "study.seg.dcm")
    pixels = seg.get_pixels_by_source_instance([s.SOPInstanceUID for s in sources], segment_numbers=[1, 2])
    for k in range(len(files)):
        assert np.array_equal(pixels[k, :, :, 0], labels[:, :, k].T >= 1)
        assert np.array_equal(pixels[k, :, :, 1], labels[:, :, k].T == 2)
    assert pydicom.dcmread(out / "study.rtstruct.dcm").StudyInstanceUID == study.uid
    assert json.loads((out / "study.json").read_text())["series"] == sources[0].SeriesInstanceUID


def test_a_dicom_format_for_a_nifti_input_is_refused_before_anything_is_written(segment_experiment, new_scan, tmp_path):
    volume, _ = new_scan
    out = tmp_path / "out"
    result = segment(segment_experiment / "models" / "unet", volume, "--format", "nifti,rtstruct", "--out", out)
    assert result.returncode != 0
    assert f"{volume}: not a DICOM series; --format rtstruct references the images" in result.stderr
    assert not out.exists() or not any(out.iterdir())


def test_an_exported_cascade_segments_with_onnxruntime_as_with_pytorch(segment_experiment, new_scan, tmp_path):
    """`liverseg export` of the 3D cascade, then `liverseg segment --runtime onnx`: on the scan's own slices the
    stage-1 classes are PyTorch's wherever its probability is farther than 1e-4 from 0.5, and the label maps agree."""
    from liverseg.data.slices import normalised_slices
    from liverseg.inference.segmenter import Segmenter
    from liverseg.models.heads import output_probabilities, probabilities_to_classes

    volume, _ = new_scan
    exported = tmp_path / "exported"
    command = ["liverseg", "export", segment_experiment / "models" / "unet_cascade_3d", "--out", exported]
    result = subprocess.run(
        list(map(str, command)), env=tool_environment(), capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for runtime in ("torch", "onnx"):
        result = segment(exported, volume, "--runtime", runtime, "--out", tmp_path / runtime, "--threads", "2")
        assert result.returncode == 0, result.stderr[-3000:]
    by_torch, by_onnx = (np.asanyarray(nib.load(tmp_path / r / "patient-x.nii.gz").dataobj) for r in ("torch", "onnx"))
    assert np.mean(by_torch == by_onnx) >= 0.9999

    cpu = torch.device("cpu")
    pytorch = Segmenter.load(exported, cpu)
    (network,), recipe, size = pytorch.stages["liver"]
    (session,), *_ = Segmenter.load(exported, cpu, "onnx").stages["liver"]
    slices = torch.from_numpy(normalised_slices(nib.load(volume), pytorch.window, size).astype(np.float32))[:, None]
    with torch.no_grad():
        expected = output_probabilities(network(slices), recipe.head)
    got = output_probabilities(session(slices), recipe.head)
    assert float((got - expected).abs().max()) < 1e-4
    decided = ((expected - 0.5).abs() > 1e-4).all(1)
    same = probabilities_to_classes(got, recipe.head) == probabilities_to_classes(expected, recipe.head)
    assert bool(same[decided].all())


def test_a_new_scan_in_another_orientation_keeps_its_geometry_and_its_liver_volume(
    segment_experiment, new_scan, tmp_path
):
    """The label map of a (P, L, I) file is that of the same patient stored (R, A, S), voxel for voxel once reoriented,
    and its report measures that label map: geometry and bookkeeping, whatever the tiny model's quality."""
    volume, _ = new_scan
    ras = volume.with_name("patient-x-ras.nii.gz")
    result = segment(
        segment_experiment / "models" / "unet_cascade", volume, ras, "--out", tmp_path / "out", "--threads", "2"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "slices" in result.stderr  # the progress bar
    labels, scan = nib.load(tmp_path / "out" / "patient-x.nii.gz"), nib.load(volume)
    assert labels.shape == scan.shape and np.array_equal(labels.affine, scan.affine)
    assert nib.aff2axcodes(labels.affine) == ("P", "L", "I")
    assert labels.header.get_qform(coded=True)[1] == scan.header.get_qform(coded=True)[1]
    pred = np.asanyarray(labels.dataobj)
    from_ras = nib.load(tmp_path / "out" / "patient-x-ras.nii.gz")
    assert np.array_equal(np.asanyarray(nib.as_closest_canonical(labels).dataobj), np.asanyarray(from_ras.dataobj)), (
        "the same voxels labelled, in this file's own voxel order"
    )
    report = json.loads((tmp_path / "out" / "patient-x.json").read_text())
    voxel_ml = np.prod(scan.header.get_zooms()) / 1000
    assert report["liver_ml"] == pytest.approx(np.count_nonzero(pred >= 1) * voxel_ml)
    assert report["tumour_count"] == len(report["tumours"])
    assert report["tumour_ml"] == pytest.approx(np.count_nonzero(pred == 2) * voxel_ml)
    table = pd.read_csv(tmp_path / "out" / "volumes.csv").set_index("scan")
    assert sorted(table.index) == ["patient-x", "patient-x-ras"]
    assert table.loc["patient-x", "liver_ml"] == pytest.approx(report["liver_ml"], abs=0.01)


def test_the_same_scan_as_a_dicom_series_gives_the_same_label_map(segment_experiment, new_scan, tmp_path):
    volume, _ = new_scan
    series = write_dicom_series(volume, tmp_path / "series-x")
    before = locale.setlocale(locale.LC_CTYPE)
    read = read_series(choose_series(series)[0])
    assert locale.setlocale(locale.LC_CTYPE) == before, "GDCM's C locale is undone"
    assert np.array_equal(read.get_fdata(), nib.load(volume).get_fdata()), "slices in the order of their positions"
    assert np.allclose(read.affine, nib.load(volume).affine, atol=1e-3)
    model = segment_experiment / "models" / "unet_cascade"
    assert segment(model, volume, "--out", tmp_path / "from-nifti", "--threads", "2").returncode == 0
    result = segment(model, series, "--out", tmp_path / "from-dicom", "--threads", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    from_nifti, from_dicom = (
        nib.load(tmp_path / "from-nifti" / "patient-x.nii.gz"),
        nib.load(tmp_path / "from-dicom" / "series-x.nii.gz"),
    )
    assert np.allclose(from_dicom.affine, from_nifti.affine, atol=1e-3)
    assert np.array_equal(np.asanyarray(from_dicom.dataobj), np.asanyarray(from_nifti.dataobj))
    reports = [
        json.loads(p.read_text())
        for p in (tmp_path / "from-nifti" / "patient-x.json", tmp_path / "from-dicom" / "series-x.json")
    ]
    assert reports[0]["liver_ml"] == pytest.approx(reports[1]["liver_ml"], rel=1e-6)


def first_validation_case(segment_experiment):
    cases = pd.read_csv(segment_experiment / "data" / "cases.tsv", sep="\t").set_index("case")
    case = json.loads((segment_experiment / "data" / "split.json").read_text())["val"][0]
    return case, segment_experiment / cases.loc[case, "volume"]  # relative to the experiment's folder


@pytest.mark.parametrize("entry", ["unet", *CASCADES])
@pytest.mark.parametrize("source", ["folder", "registry"])
def test_segment_gives_the_workflows_own_labels(segment_experiment, entry, source, tmp_path):
    """Prediction, post-processing and, for a cascade, its tumour stage: the same labels as the workflow's rules, from
    the model's folder or from the segmenter the workflow registered in MLflow."""
    case, volume = first_validation_case(segment_experiment)
    if source == "folder":
        model = [segment_experiment / "models" / entry]
    else:
        model = [f"models:/{entry}-segmenter@champion", "--tracking-uri", f"sqlite:///{segment_experiment}/mlflow.db"]
    result = segment(*model, volume, "--out", tmp_path, "--threads", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    ours = nib.load(tmp_path / f"{scan_name(volume)}.nii.gz")
    workflow = nib.load(segment_experiment / "results" / entry / "post" / f"{case}.nii.gz")
    assert np.array_equal(np.asanyarray(ours.dataobj), np.asanyarray(workflow.dataobj))
    assert np.array_equal(ours.affine, workflow.affine)
    report = json.loads((tmp_path / f"{scan_name(volume)}.json").read_text())
    described = json.loads((segment_experiment / "models" / entry / "segmenter.json").read_text())
    assert report["segmenter"] == entry and report["flip_tta"] == described["flip_tta"], "what made the labels"
    assert report.get("min_lesion_peak") == described.get("min_lesion_peak"), "a cascade's lesion cut, as described"


def test_a_cascades_lesion_cut_is_replaced_by_the_option_and_refused_for_a_stage1_model_shares_range_checked(
    segment_experiment, tmp_path
):
    _, volume = first_validation_case(segment_experiment)
    models = segment_experiment / "models"
    cascade = segment(models / "unet_cascade", volume, "--out", tmp_path / "a", "--min-lesion-peak", "0.5")
    assert cascade.returncode == 0, cascade.stderr[-3000:]
    assert json.loads((tmp_path / "a" / f"{scan_name(volume)}.json").read_text())["min_lesion_peak"] == 0.5
    stage1 = segment(models / "unet", volume, "--out", tmp_path / "b", "--min-lesion-peak", "0.5")
    assert stage1.returncode == 1 and "unet: a stage-1 model has no tumour stage" in stage1.stderr
    beyond = segment(models / "unet_cascade", volume, "--out", tmp_path / "c", "--min-lesion-peak", "1.5")
    assert beyond.returncode == 2 and "1.5 is not a probability (0 to 1)" in beyond.stderr
    share = segment(models / "unet_cascade", volume, "--out", tmp_path / "d", "--max-tumour-share", "2")
    assert share.returncode == 2 and "2 is not a probability (0 to 1)" in share.stderr
    assert not any((tmp_path / name).exists() for name in "bcd")


def test_the_registered_segmenter_is_a_pyfunc_of_a_volume_and_its_spacing(segment_experiment):
    case, volume = first_validation_case(segment_experiment)
    mlflow.set_tracking_uri(f"sqlite:///{segment_experiment}/mlflow.db")
    model = mlflow.pyfunc.load_model("models:/unet_cascade-segmenter@champion")
    scan = nib.as_closest_canonical(nib.load(volume))
    labels = model.predict(scan.get_fdata(dtype=np.float32), params={"spacing": list(scan.header.get_zooms())})
    workflow = nib.as_closest_canonical(
        nib.load(segment_experiment / "results" / "unet_cascade" / "post" / f"{case}.nii.gz")
    )
    assert labels.dtype == np.uint8 and np.array_equal(labels, np.asanyarray(workflow.dataobj))
    run = MlflowClient(f"sqlite:///{segment_experiment}/mlflow.db").get_run(
        json.loads((segment_experiment / "models" / "unet_cascade" / "registered.json").read_text())["run_id"]
    )
    stage_runs = {
        role: json.loads((segment_experiment / "models" / model / "run.json").read_text())["run_id"]
        for role, model in (("liver", "unet"), ("tumour", "tumour_unet"))
    }
    assert run.data.tags["liver_run"] == stage_runs["liver"] and run.data.tags["tumour_run"] == stage_runs["tumour"]


def test_a_registered_model_of_slices_or_no_store_is_refused_clearly(segment_experiment, tmp_path):
    _, volume = first_validation_case(segment_experiment)
    store = f"sqlite:///{segment_experiment}/mlflow.db"
    slices = segment("models:/unet@champion", volume, "--out", tmp_path / "a", "--tracking-uri", store)
    assert slices.returncode == 1 and "models:/unet@champion is a model of single slices" in slices.stderr
    absent = segment("models:/nothing-segmenter@champion", volume, "--out", tmp_path / "b", "--tracking-uri", store)
    assert absent.returncode == 1 and "models:/nothing-segmenter@champion: not found in" in absent.stderr
    env = {k: v for k, v in tool_environment().items() if k != "MLFLOW_TRACKING_URI"}
    no_store = subprocess.run(
        ["liverseg", "segment", "models:/unet-segmenter@champion", str(volume), "--out", str(tmp_path / "c")],
        env=env,
        capture_output=True,
        encoding="utf-8",
        timeout=300,
    )
    assert no_store.returncode == 1 and "--tracking-uri" in no_store.stderr
    assert not any((tmp_path / part).exists() for part in "abc")


def test_bad_inputs_are_named_and_the_good_ones_segmented(segment_experiment, new_scan, tmp_path):
    volume, reference = new_scan
    scan = nib.load(volume)
    four_d = write_nifti(tmp_path / "four-d.nii.gz", np.zeros((8, 8, 4, 2), np.int16), scan.affine)
    mri = write_nifti(tmp_path / "mri-like.nii.gz", np.asanyarray(scan.dataobj).astype(np.float32) + 1024, scan.affine)
    result = segment(segment_experiment / "models" / "unet", reference, four_d, mri, volume, "--out", tmp_path / "out")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert any(f"{reference}: " in line and "label map" in line for line in errors), errors
    assert any(f"{four_d}: " in line and "3D volume" in line for line in errors), errors
    assert any(f"{mri}: " in line and "do not look like CT" in line for line in errors), errors
    assert "3 of the inputs could not be segmented" in errors[-1]
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["patient-x.json", "patient-x.nii.gz", "volumes.csv"]


def test_a_folder_without_segmenter_file_is_refused_clearly(tmp_path):
    result = segment(tmp_path, tmp_path, "--out", tmp_path / "out")
    assert result.returncode == 1
    assert f"{tmp_path}: no segmenter.json" in result.stderr
    assert not (tmp_path / "out").exists()


class Roll(torch.nn.Module):
    """A model that is not mirror-symmetric: its output is its input shifted by one row."""

    def forward(self, x):
        return torch.roll(x, 1, dims=-2).repeat(1, 2, 1, 1) * 8 - 4


def test_flip_tta_averages_the_slices_and_their_mirrors():
    images = np.random.default_rng(0).random((3, 8, 8)).astype(np.float32)
    plain = segment_slices([Roll()], Recipe(), images, (8, 8), torch.device("cpu"))
    mirrored = segment_slices([Roll()], Recipe(), images, (8, 8), torch.device("cpu"), flip_tta=True)
    shifted = torch.sigmoid(torch.from_numpy(images) * 8 - 4)
    mean = (torch.roll(shifted, 1, dims=-2) + torch.roll(shifted, -1, dims=-2)) / 2
    assert np.array_equal(plain, 2 * (torch.roll(shifted, 1, dims=-2) > 0.5).numpy())
    assert np.array_equal(mirrored, 2 * (mean > 0.5).numpy())


class Constant(torch.nn.Module):
    """A model whose liver logit is the same everywhere."""

    def __init__(self, probability: float):
        super().__init__()
        self.logit = float(np.log(probability / (1 - probability)))

    def forward(self, x):
        return torch.full((len(x), 2, *x.shape[-2:]), self.logit)


def test_an_ensemble_averages_its_folds_probabilities():
    images = np.zeros((2, 8, 8), np.float32)
    sure, doubtful = Constant(0.9), Constant(0.2)
    x = torch.from_numpy(images)[:, None]
    assert torch.allclose(mean_probabilities([sure, doubtful], x, "sigmoid"), torch.full((2, 2, 8, 8), 0.55))
    labels = [
        segment_slices(models, Recipe(), images, (8, 8), torch.device("cpu"))
        for models in ([sure], [doubtful], [sure, doubtful], [doubtful, doubtful, sure])
    ]
    assert [int(v.max()) for v in labels] == [2, 0, 2, 0], "liver where the mean is above 0.5 (0.9, 0.2, 0.55, 0.43)"


def test_an_ensemble_of_different_models_is_refused(tmp_path):
    small = write_checkpoint(tmp_path / "a.pt", {"kind": "unet", "base_channels": 4, "depth": 2})
    three = write_checkpoint(tmp_path / "b.pt", {"kind": "unet", "base_channels": 4, "depth": 2, "input_slices": 3})
    with pytest.raises(ValueError, match="b.pt: not the same model as .*a.pt"):
        load_models([small, three], torch.device("cpu"))


def test_lesion_sizes_against_all_pairs_of_voxels():
    from scipy import ndimage
    from scipy.spatial.distance import pdist

    spacing = (0.7, 1.3, 2.5)
    mask = np.zeros((30, 30, 12), bool)
    rng = np.random.default_rng(3)
    mask[3:12, 4:9, 2:5] = rng.random((9, 5, 3)) > 0.3  # an irregular lesion, perhaps in pieces
    mask[20, 20, 8] = True  # one voxel
    sizes = lesion_sizes(mask, spacing)
    components, n = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    assert len(sizes) == n
    expected = sorted(
        (
            (components == k).sum() * np.prod(spacing) / 1000,
            pdist(np.argwhere(components == k) * spacing).max(initial=0),
        )
        for k in range(1, n + 1)
    )[::-1]
    for lesion, (ml, diameter) in zip(sizes, expected):
        assert lesion["volume_ml"] == pytest.approx(ml)
        assert lesion["largest_diameter_mm"] == pytest.approx(diameter)
    flat = np.zeros((6, 6, 3), bool)
    flat[1:5, 2, 1] = True  # a straight line: no hull, still measured
    assert largest_diameter_mm(flat, spacing) == pytest.approx(3 * 0.7)


def test_quality_checks_warn_in_the_log_the_report_and_the_table(segment_experiment, new_scan, tmp_path):
    """The segmenter's description holds the default limits; options replace some, and a check made to fail (no
    liver holds a million ml) warns on one line of the log, in the scan's report and in volumes.csv."""
    volume, _ = new_scan
    folder = segment_experiment / "models" / "unet_cascade"
    assert json.loads((folder / "segmenter.json").read_text())["quality"] == QualityLimits().to_dict()
    forced = ["--liver-ml", "1e6", "1e7", "--max-tumour-share", "0.9"]
    result = segment(folder, volume, "--out", tmp_path, "--threads", "2", *forced)
    assert result.returncode == 0, result.stderr[-3000:]
    warnings = [line for line in result.stderr.splitlines() if "warning:" in line]
    assert any(f"warning: {volume}: liver volume" in line and "range 1e+06 to 1e+07 ml" in line for line in warnings)
    quality = json.loads((tmp_path / "patient-x.json").read_text())["quality"]
    assert quality["limits"] == QualityLimits(liver_ml=(1e6, 1e7), max_tumour_share=0.9).to_dict()
    assert len(warnings) == len(quality["warnings"])
    assert pd.read_csv(tmp_path / "volumes.csv").loc[0, "warnings"] == "; ".join(quality["warnings"])
