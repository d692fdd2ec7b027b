import pytest

from liverseg.split import split_by_patient, tumour_strata


def test_patients_never_on_both_sides_and_seeded():
    patient_of = {f"case_{i:03d}": f"p{i // 2}" for i in range(20)}  # two scans per patient
    split = split_by_patient(patient_of, 0.2, seed=3)
    train_patients = {patient_of[c] for c in split["train"]}
    val_patients = {patient_of[c] for c in split["val"]}
    assert not train_patients & val_patients
    assert len(val_patients) == 2 and len(split["val"]) == 4
    assert sorted(split["train"] + split["val"]) == sorted(patient_of)
    assert split_by_patient(patient_of, 0.2, seed=3) == split
    assert any(split_by_patient(patient_of, 0.2, seed=s)["val"] != split["val"] for s in range(4, 10))


def test_small_sets_keep_both_sides():
    split = split_by_patient({"case_000": "a", "case_001": "b"}, 0.9, seed=0)
    assert len(split["train"]) == 1 and len(split["val"]) == 1
    with pytest.raises(ValueError, match="2 parts needs at least 2 patients"):
        split_by_patient({"case_000": "a"}, 0.2, seed=0)


def test_a_test_part_is_drawn_apart_and_leaves_validation_as_it_was():
    patient_of = {f"case_{i:03d}": f"p{i}" for i in range(20)}
    two = split_by_patient(patient_of, 0.2, seed=3)
    three = split_by_patient(patient_of, 0.2, seed=3, test_fraction=0.25)
    assert three["val"] == two["val"] and two["test"] == []
    assert len(three["test"]) == 5 and len(three["train"]) == 11
    assert not set(three["test"]) & (set(three["val"]) | set(three["train"]))
    assert sorted(three["train"] + three["val"] + three["test"]) == sorted(patient_of)
    tiny = split_by_patient({"a": "a", "b": "b", "c": "c"}, 0.9, seed=0, test_fraction=0.9)
    assert [len(tiny[k]) for k in ("train", "val", "test")] == [1, 1, 1]
    with pytest.raises(ValueError, match="3 parts needs at least 3 patients"):
        split_by_patient({"a": "a", "b": "b"}, 0.2, seed=0, test_fraction=0.2)


def test_tumour_strata_split_at_the_median_of_the_patients_with_tumour():
    strata = tumour_strata({"a": 0.0, "b": 1.0, "c": 2.0, "d": 30.0, "e": 40.0})
    assert strata == {"a": "none", "b": "smaller", "c": "smaller", "d": "larger", "e": "larger"}


def test_a_stratified_split_gives_every_part_each_stratum_in_proportion():
    tumour_ml = {f"p{i:02d}": 0.0 if i < 10 else float(i) for i in range(20)}  # 10 without tumour, 5 small, 5 large
    strata = tumour_strata(tumour_ml)
    patient_of = {f"case_{i:03d}": f"p{i:02d}" for i in range(20)}
    for seed in range(5):
        split = split_by_patient(patient_of, 0.2, seed, test_fraction=0.2, strata=strata)
        for part in ("val", "test"):
            kinds = sorted(strata[patient_of[c]] for c in split[part])
            assert kinds == ["larger", "none", "none", "smaller"], (seed, part, kinds)
        assert sorted(split["train"] + split["val"] + split["test"]) == sorted(patient_of)
        assert split["stratified"] and split == split_by_patient(patient_of, 0.2, seed, 0.2, strata)
    assert (
        split_by_patient(patient_of, 0.2, 0, 0.2, strata)["val"]
        != split_by_patient(patient_of, 0.2, 1, 0.2, strata)["val"]
    )
