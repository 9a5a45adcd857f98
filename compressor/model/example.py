"""The bundled example: train a small CNN on scikit-learn's digits and save it as .pt2 + data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from calibration.digits import digits_splits, save_npz
from foundation.errors import UsageError

MARKER = ".compress-example"
OWNED = {"model.pt2", "calib.npz", "eval.npz", "out", MARKER}


class DigitsCNN(nn.Module):
    """A small CNN for 1x8x8 digits, wide enough that int8 pays off in size and speed."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1),
            nn.BatchNorm2d(128),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(128 * 2 * 2, 128), nn.ReLU(), nn.Linear(128, classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def train_classifier(
    model: nn.Module, images: np.ndarray, labels: np.ndarray, epochs: int = 15, seed: int = 0
) -> nn.Module:
    """Plain Adam + cross-entropy training on CPU; deterministic for a seed."""
    torch.manual_seed(seed)
    x, y = torch.from_numpy(images), torch.from_numpy(labels)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval()


def make_example(folder: Path, epochs: int = 15, seed: int = 0) -> dict[str, Path]:
    """Train DigitsCNN and write model.pt2 (dynamic batch), calib.npz and eval.npz to folder."""
    folder.mkdir(parents=True, exist_ok=True)
    splits = digits_splits(seed)
    train = splits["train"]
    torch.manual_seed(seed)  # the initial weights too, so a seed gives the same model
    model = train_classifier(DigitsCNN(), train.inputs["input"], train.labels, epochs, seed)
    example = torch.from_numpy(train.inputs["input"][:2])
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    paths = {
        "model": folder / "model.pt2",
        "calib": folder / "calib.npz",
        "eval": folder / "eval.npz",
    }
    torch.export.save(program, str(paths["model"]))
    save_npz(splits["calib"], str(paths["calib"]), "x")
    save_npz(splits["eval"], str(paths["eval"]), "x")
    return paths


def claim_example_folder(folder: Path) -> None:
    """Make sure folder is new, empty or an earlier example's; mark it as the example's.

    The example overwrites model.pt2, calib.npz and eval.npz: never a user's files.
    """
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise UsageError(f"--dir '{folder}' is not a folder; choose a new one.")
    present = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    foreign = sorted(present - OWNED) + sorted(p for p in present if (folder / p).is_symlink())
    if foreign or (present and MARKER not in present):
        shown = ", ".join(foreign or sorted(present))
        raise UsageError(
            f"--dir '{folder}' already holds files that an earlier `compress example` did not "
            f"write ({shown}); the example would overwrite them. Choose a new or empty --dir."
        )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text("written by `compress example`; safe to delete with the folder\n")
