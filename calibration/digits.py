"""The bundled example data: scikit-learn's handwritten digits (ships with scikit-learn)."""

from __future__ import annotations

import numpy as np

from calibration.dataset import Dataset


def digits_splits(seed: int = 0) -> dict[str, Dataset]:
    """8x8 digit images as float32 [N, 1, 8, 8] in [0, 1], split train/calib/eval (70/10/20)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]
    labels = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(images))
    n_train = int(0.7 * len(order))
    n_calib = int(0.1 * len(order))
    parts = {
        "train": order[:n_train],
        "calib": order[n_train : n_train + n_calib],
        "eval": order[n_train + n_calib :],
    }
    return {
        name: Dataset({"input": images[idx]}, labels[idx], source=f"sklearn digits ({name})")
        for name, idx in parts.items()
    }


def save_npz(data: Dataset, path: str, input_name: str = "input") -> None:
    """Write a Dataset as the .npz layout the CLI reads (arrays by input name plus labels)."""
    arrays = {input_name: next(iter(data.inputs.values()))}
    if data.labels is not None:
        arrays["labels"] = data.labels
    np.savez(path, **arrays)
