"""Patient-wise, seeded train/validation split."""

from __future__ import annotations

import numpy as np


def split_by_patient(patient_of: dict[str, str], val_fraction: float, seed: int) -> dict[str, list[str]]:
    """Hold out round(val_fraction * patients) patients (at least one) with all their cases."""
    patients = sorted(set(patient_of.values()))
    if len(patients) < 2:
        raise ValueError(f"a split needs at least two patients, found {len(patients)}")
    n_val = min(max(1, round(val_fraction * len(patients))), len(patients) - 1)
    held_out = set(np.random.default_rng(seed).permutation(patients)[:n_val].tolist())
    cases = sorted(patient_of)
    return {
        "seed": seed,
        "val_fraction": val_fraction,
        "train": [c for c in cases if patient_of[c] not in held_out],
        "val": [c for c in cases if patient_of[c] in held_out],
    }
