import nibabel as nib
import numpy as np
from scipy import ndimage

from liverseg.data import nifti
from liverseg.data.synthetic import LIVER, TUMOUR, generate_dataset, make_case

CASES = [make_case(seed) for seed in range(6)]


def test_same_seed_same_patient_and_cases_differ():
    again = make_case(0)
    assert np.array_equal(again.image, CASES[0].image) and np.array_equal(again.label, CASES[0].label)
    shapes = {case.image.shape for case in CASES}
    assert len({s[:2] for s in shapes}) > 1, "in-plane sizes should vary between cases"
    assert len({s[2] for s in shapes}) > 1, "slice counts should vary between cases"
    assert len({case.orientation for case in CASES}) > 1, "storage orientation should vary"


def test_spacing_is_anisotropic_and_body_fits_the_field_of_view():
    for case in CASES:
        sx, sy, sz = case.spacing
        assert sx == sy and sz > 1.3 * sx
        body = case.image > -500
        assert not body[0].any() and not body[-1].any(), "body must not touch the left/right edges"


def test_hu_ranges_of_tissues():
    for case in CASES:
        liver_hu = np.median(case.image[case.label == LIVER])
        assert 80 <= liver_hu <= 140
        assert np.median(case.image[case.image.shape[0] // 2, :5, :]) < -900, "air outside the body"
        assert case.image.max() > 500, "bone (spine, ribs) present"
        assert (case.image < -50).sum() > 0.05 * case.image.size, "fat and air present"


def test_organs_of_liver_like_hu_exist_outside_the_liver():
    for case in CASES:
        liver_hu = np.median(case.image[case.label == LIVER])
        smooth = ndimage.uniform_filter(case.image.astype(np.float32), size=(3, 3, 1))
        similar = (np.abs(smooth - liver_hu) < 30) & (case.label == 0)
        assert similar.sum() > 0.1 * (case.label == LIVER).sum(), "spleen/kidneys/vessels should confound the liver"


def test_tumours_sit_inside_the_liver_and_vary():
    sizes, contrasts, without = [], [], 0
    for case in CASES + [make_case(seed) for seed in range(6, 16)]:
        components, count = ndimage.label(case.label == TUMOUR)
        without += count == 0
        liver_hu = np.median(case.image[case.label == LIVER])
        for index in range(1, count + 1):
            tumour = components == index
            shell = ndimage.binary_dilation(tumour) & ~tumour
            neighbours = case.label[shell]
            assert np.mean(neighbours >= LIVER) > 0.5, "a tumour must be surrounded mostly by liver"
            sizes.append(int(tumour.sum()))
            contrasts.append(float(np.median(case.image[tumour]) - liver_hu))
    assert without >= 1, "some cases have no tumour"
    assert min(sizes) <= 10, "tumours down to a few voxels"
    assert max(sizes) >= 1000, "and up to large lesions"
    contrasts = np.array(contrasts)
    assert 0.3 < np.mean(contrasts < 0) < 0.7, "hypo- and hyperdense alike"
    strength = np.abs(contrasts[np.array(sizes) > 200])  # large enough for the median to escape the blur
    assert strength.min() < 35 and strength.max() > 50, "faint and strong"


def test_written_files_have_lits_names_and_a_proper_affine(tmp_path):
    generate_dataset(tmp_path, cases=2, seed=5)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "segmentation-0.nii.gz",
        "segmentation-1.nii.gz",
        "volume-0.nii.gz",
        "volume-1.nii.gz",
    ]
    for n in range(2):
        volume = nib.load(tmp_path / f"volume-{n}.nii.gz")
        label = nib.load(tmp_path / f"segmentation-{n}.nii.gz")
        assert volume.get_data_dtype() == np.int16 and label.get_data_dtype() == np.uint8
        assert np.allclose(volume.affine, label.affine)
        assert int(volume.header["sform_code"]) == 1 and int(volume.header["qform_code"]) == 1
        case = make_case(int(np.random.SeedSequence([5, n]).generate_state(1)[0]))
        assert nifti.orientation_codes(volume) == "".join(case.orientation)
        assert np.allclose(nifti.canonical_spacing(volume), case.spacing)
        # read back in canonical order, the arrays are the generated ones
        assert np.array_equal(nifti.to_canonical(volume, dtype=np.int16), case.image)
        assert np.array_equal(nifti.to_canonical(label, dtype=np.uint8), case.label)
