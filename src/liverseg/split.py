"""Patient-wise, seeded split into training, validation and (optionally) untouched test cases."""

from __future__ import annotations

import numpy as np


def split_by_patient(
    patient_of: dict[str, str], val_fraction: float, seed: int, test_fraction: float = 0.0
) -> dict[str, list[str]]:
    """Hold out round(fraction * patients) patients (at least one) for validation and, with a test fraction, for
    testing, each with all their cases. Validation picks the epoch and drives the scheduler; test cases are only
    scored. The validation draw does not depend on the test fraction."""
    patients = sorted(set(patient_of.values()))
    parts = 3 if test_fraction > 0 else 2
    if len(patients) < parts:
        raise ValueError(f"a split into {parts} parts needs at least {parts} patients, found {len(patients)}")
    n_val = min(max(1, round(val_fraction * len(patients))), len(patients) - parts + 1)
    n_test = min(max(1, round(test_fraction * len(patients))), len(patients) - n_val - 1) if test_fraction > 0 else 0
    order = np.random.default_rng(seed).permutation(patients).tolist()
    val, test = set(order[:n_val]), set(order[n_val : n_val + n_test])
    cases = sorted(patient_of)
    return {
        "seed": seed,
        "val_fraction": val_fraction,
        "test_fraction": test_fraction,
        "train": [c for c in cases if patient_of[c] not in val | test],
        "val": [c for c in cases if patient_of[c] in val],
        "test": [c for c in cases if patient_of[c] in test],
    }
