"""Patient-wise, seeded split into training, validation and (optionally) untouched test cases, or into untouched
test cases and k folds for cross-validation."""

from __future__ import annotations

import numpy as np
import pandas as pd


def tumour_strata(tumour_ml: dict[str, float]) -> dict[str, str]:
    """Per patient: no tumour, or the smaller or larger half of tumour volume among the patients with tumour."""
    median = np.median([v for v in tumour_ml.values() if v > 0] or [0.0])
    return {p: "none" if v <= 0 else "smaller" if v < median else "larger" for p, v in tumour_ml.items()}


def stratified_order(order: list[str], strata: dict[str, str]) -> list[str]:
    """The patients interleaved so that every leading part holds each stratum in proportion to its size: the i-th of
    n patients of a stratum (in the drawn order) goes to (i + 0.5) / n."""
    members = {}
    for patient in order:
        members.setdefault(strata[patient], []).append(patient)
    drawn = {p: i for i, p in enumerate(order)}
    place = {p: ((i + 0.5) / len(group), drawn[p]) for group in members.values() for i, p in enumerate(group)}
    return sorted(order, key=place.__getitem__)


def drawn_order(patients: list[str], seed: int, strata: dict[str, str] | None) -> list[str]:
    """The patients in a seeded random order, interleaved by stratum when strata are given."""
    order = np.random.default_rng(seed).permutation(patients).tolist()
    return order if strata is None else stratified_order(order, strata)


def split_by_patient(
    patient_of: dict[str, str],
    val_fraction: float,
    seed: int,
    test_fraction: float = 0.0,
    strata: dict[str, str] | None = None,
    folds: int = 0,
) -> dict[str, list[str]]:
    """Hold out round(fraction * patients) patients (at least one) for validation and, with a test fraction, for
    testing, each with all their cases. Validation picks the epoch and drives the scheduler; test cases are only
    scored. The validation draw does not depend on the test fraction. With `strata` (patient -> stratum), each part
    holds every stratum in proportion, e.g. patients without tumour, with small and with large tumours. With `folds`,
    see `split_folds`."""
    if folds:
        return split_folds(patient_of, folds, seed, test_fraction, strata)
    patients = sorted(set(patient_of.values()))
    parts = 3 if test_fraction > 0 else 2
    if len(patients) < parts:
        raise ValueError(f"a split into {parts} parts needs at least {parts} patients, found {len(patients)}")
    n_val = min(max(1, round(val_fraction * len(patients))), len(patients) - parts + 1)
    n_test = min(max(1, round(test_fraction * len(patients))), len(patients) - n_val - 1) if test_fraction > 0 else 0
    order = drawn_order(patients, seed, strata)
    val, test = set(order[:n_val]), set(order[n_val : n_val + n_test])
    cases = sorted(patient_of)
    return {
        "seed": seed,
        "val_fraction": val_fraction,
        "test_fraction": test_fraction,
        "stratified": strata is not None,
        "train": [c for c in cases if patient_of[c] not in val | test],
        "val": [c for c in cases if patient_of[c] in val],
        "test": [c for c in cases if patient_of[c] in test],
    }


def split_folds(
    patient_of: dict[str, str], folds: int, seed: int, test_fraction: float = 0.0, strata: dict[str, str] | None = None
) -> dict:
    """Cross-validation by patient: round(test_fraction * patients) test patients are held out first (as many as the
    folds leave), the others dealt into `folds` folds in the drawn order, stratum by stratum with strata, so that each
    fold holds every stratum in proportion. Fold k trains on the other folds and validates on its own, so every non-test case is
    validated once: `val` lists them all, `train` too (each trains k - 1 of the k models), `folds` each fold's."""
    patients = sorted(set(patient_of.values()))
    if folds < 2 or len(patients) < folds + (test_fraction > 0):
        raise ValueError(
            f"{folds} folds{' and a test part' if test_fraction > 0 else ''} need at least 2 folds and a patient in "
            f"each part; found {len(patients)} patients"
        )
    n_test = min(max(1, round(test_fraction * len(patients))), len(patients) - folds) if test_fraction > 0 else 0
    order = drawn_order(patients, seed, strata)
    test, groups = set(order[:n_test]), {}
    for patient in order[n_test:]:
        groups.setdefault(strata[patient] if strata else "", []).append(patient)
    # each stratum dealt in turn, the count going on from one to the next: folds differ by one patient at most
    dealt = [patient for group in groups.values() for patient in group]
    fold_of = {patient: i % folds for i, patient in enumerate(dealt)}
    cases = sorted(patient_of)
    kept = [c for c in cases if patient_of[c] not in test]
    return {
        "seed": seed,
        "folds": [[c for c in kept if fold_of[patient_of[c]] == k] for k in range(folds)],
        "test_fraction": test_fraction,
        "stratified": strata is not None,
        "train": kept,
        "val": kept,
        "test": [c for c in cases if patient_of[c] in test],
    }


def split_cases(
    table: pd.DataFrame,
    val_fraction: float,
    seed: int,
    test_fraction: float = 0.0,
    stratify_tumour: bool = False,
    train_only: list[str] = (),
    source="the case table",
    folds: int = 0,
) -> dict:
    """The split of a case table (`ingest`'s), with `folds` into folds (`split_folds`): the `train_only` cases (the
    randomised phantoms) are left out of the draw, so that the others split as without them, and then join the
    training cases (of every fold)."""
    train_only = list(train_only)
    unknown = sorted(set(train_only) - set(table["case"]))
    if unknown:
        raise ValueError(f"{source}: no cases {unknown}, named by --train-only")
    table = table[~table["case"].isin(train_only)]
    strata = None
    if stratify_tumour:
        if "tumour_ml" not in table:
            raise ValueError(f"{source}: no tumour_ml column (written by an older ingest); run ingest again")
        strata = tumour_strata(table.astype({"tumour_ml": float}).groupby("patient")["tumour_ml"].max().to_dict())
    patient_of = dict(zip(table["case"], table["patient"]))
    split = split_by_patient(patient_of, val_fraction, seed, test_fraction, strata, folds)
    split["train"] = sorted(split["train"] + train_only)
    split["train_only"] = sorted(train_only)
    return split
