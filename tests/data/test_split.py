import json

import pandas as pd
import pytest

from liverseg.data.split import split_by_patient, tumour_strata


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


def test_train_only_cases_join_training_and_leave_the_split_of_the_others_as_it_was(tmp_path, capsys):
    from liverseg.cli import main

    rows = [(f"case_{i:03d}", f"case_{i:03d}", 0.0 if i % 3 == 0 else float(i)) for i in range(12)]
    rows += [(f"case_{1000 + k}", f"case_{1000 + k}", 500.0) for k in range(3)]
    table = tmp_path / "cases.tsv"
    pd.DataFrame(rows, columns=["case", "patient", "tumour_ml"]).to_csv(table, sep="\t", index=False)
    plain = pd.DataFrame(rows[:12], columns=["case", "patient", "tumour_ml"])
    plain.to_csv(tmp_path / "plain.tsv", sep="\t", index=False)
    common = ["--val-fraction", "0.2", "--test-fraction", "0.2", "--stratify-tumour", "--seed", "1"]
    main(["split", "--cases", str(tmp_path / "plain.tsv"), *common, "--out", str(tmp_path / "plain.json")])
    extra = ["case_1000", "case_1001", "case_1002"]
    main(["split", "--cases", str(table), *common, "--train-only", *extra, "--out", str(tmp_path / "mixed.json")])
    plain, mixed = (json.loads((tmp_path / f"{name}.json").read_text()) for name in ("plain", "mixed"))
    assert mixed["val"] == plain["val"] and mixed["test"] == plain["test"]
    assert mixed["train"] == sorted(plain["train"] + extra) and mixed["train_only"] == extra
    with pytest.raises(SystemExit):
        main(["split", "--cases", str(table), *common, "--train-only", "case_1009", "--out", str(tmp_path / "x.json")])
    assert "no cases ['case_1009'], named by --train-only" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_folds_hold_out_the_test_patients_first_and_deal_the_others_by_patient():
    patient_of = {f"case_{i:03d}": f"p{i // 2}" for i in range(20)}  # 10 patients, two scans each
    split = split_by_patient(patient_of, 0.5, seed=3, test_fraction=0.2, folds=3)
    test = {patient_of[c] for c in split["test"]}
    folds = [{patient_of[c] for c in fold} for fold in split["folds"]]
    assert len(test) == 2 and [len(f) for f in folds] == [3, 3, 2], "val_fraction is unused"
    assert not any(a & b for i, a in enumerate(folds) for b in folds[i + 1 :]) and not test & set().union(*folds)
    assert sorted(c for fold in split["folds"] for c in fold) == split["val"] == split["train"]
    assert sorted(split["val"] + split["test"]) == sorted(patient_of)
    assert split_by_patient(patient_of, 0.2, seed=3, test_fraction=0.2, folds=3) == split
    with pytest.raises(ValueError, match="3 folds and a test part need"):
        split_by_patient({"a": "a", "b": "b", "c": "c"}, 0.2, seed=0, test_fraction=0.2, folds=3)


def test_stratified_folds_each_hold_every_stratum():
    tumour_ml = {f"p{i:02d}": 0.0 if i < 6 else float(i) for i in range(12)}  # 6 without tumour, 3 small, 3 large
    strata = tumour_strata(tumour_ml)
    patient_of = {f"case_{i:03d}": f"p{i:02d}" for i in range(12)}
    split = split_by_patient(patient_of, 0.2, seed=1, folds=3, strata=strata)
    for fold in split["folds"]:
        assert sorted(strata[patient_of[c]] for c in fold) == ["larger", "none", "none", "smaller"]
