"""The model zoo: LeNet, ResNet-, MobileNetV2-style CNNs, a Transformer encoder and an LSTM.

CNNs read scikit-learn's 8x8 digits as [N, 1, 8, 8]; the sequence models read the same digits
row by row as [N, 8, 8] (8 steps of 8 features): real data that ships with a dependency.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from calibration.dataset import Dataset
from calibration.digits import digits_splits, save_npz
from compressor.model.example import train_classifier

ZOO_NAMES = ["lenet", "resnet", "mobilenet", "transformer", "lstm"]
SEQUENCE_MODELS = {"transformer", "lstm"}
DEFAULT_EPOCHS = {"lenet": 30, "resnet": 12, "mobilenet": 15, "transformer": 25, "lstm": 40}


class LeNet(nn.Module):
    """LeNet-5 shrunk to 8x8 inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * 2 * 2, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class BasicBlock(nn.Module):
    """ResNet basic block with an optional strided 1x1 projection shortcut."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNetish(nn.Module):
    """A small ResNet: stem, two stages of basic blocks, global average pool, linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU()
        )
        self.layer1 = nn.Sequential(BasicBlock(32, 32), BasicBlock(32, 32))
        self.layer2 = nn.Sequential(BasicBlock(32, 64, stride=2), BasicBlock(64, 64))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer2(self.layer1(self.stem(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, depthwise 3x3, hardswish, 1x1 project, residual if shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int = 4) -> None:
        super().__init__()
        hidden = cin * expand
        self.use_residual = stride == 1 and cin == cout
        self.block = nn.Sequential(
            nn.Conv2d(cin, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.Hardswish(),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.use_residual else out


class MobileNetish(nn.Module):
    """MobileNetV2-style: depthwise convs, hardswish, residuals, stride-2 symmetric pads, mean."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU6()
        )
        self.blocks = nn.Sequential(
            InvertedResidual(16, 16, 1),
            InvertedResidual(16, 24, 2),
            InvertedResidual(24, 24, 1),
            InvertedResidual(24, 32, 2),
        )
        self.head = nn.Sequential(
            nn.Conv2d(32, 64, 1, bias=False), nn.BatchNorm2d(64), nn.Hardswish()
        )
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(x)))
        return self.fc(x.mean(dim=(2, 3)))


class TransformerClassifier(nn.Module):
    """Transformer encoder over 8 rows of 8 pixels, mean-pooled, linear head."""

    def __init__(self, d_model: int = 64, heads: int = 4, layers: int = 2) -> None:
        super().__init__()
        self.embed = nn.Linear(8, d_model)
        self.pos = nn.Parameter(torch.zeros(1, 8, d_model))
        layer = nn.TransformerEncoderLayer(d_model, heads, 128, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.fc = nn.Linear(d_model, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.encoder(self.embed(x) + self.pos).mean(dim=1))


class LSTMClassifier(nn.Module):
    """One-layer LSTM over 8 rows of 8 pixels; the last hidden state feeds a linear head."""

    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        self.lstm = nn.LSTM(8, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.fc(out[:, -1])


BUILDERS = {
    "lenet": LeNet,
    "resnet": ResNetish,
    "mobilenet": MobileNetish,
    "transformer": TransformerClassifier,
    "lstm": LSTMClassifier,
}


def build_model(name: str) -> nn.Module:
    """An untrained zoo model."""
    if name not in BUILDERS:
        raise KeyError(f"Unknown zoo model '{name}'; choose one of {ZOO_NAMES}.")
    torch.manual_seed(0)
    return BUILDERS[name]()


def zoo_data(name: str) -> dict[str, Dataset]:
    """train/calib/eval splits shaped for the model, inputs keyed 'x', with labels."""
    splits = digits_splits()
    out = {}
    for split, data in splits.items():
        images = data.inputs["input"]
        x = images[:, 0] if name in SEQUENCE_MODELS else images
        out[split] = Dataset({"x": np.ascontiguousarray(x)}, data.labels, data.source)
    return out


@cache
def _trained_state(name: str, epochs: int | None) -> dict[str, torch.Tensor]:
    train = zoo_data(name)["train"]
    model = build_model(name)
    model = train_classifier(model, train.inputs["x"], train.labels, epochs or DEFAULT_EPOCHS[name])
    return {k: v.clone() for k, v in model.state_dict().items()}


def trained_model(name: str, epochs: int | None = None) -> nn.Module:
    """A zoo model trained on its digits split, in eval mode; training is cached per process,
    and every call returns a fresh module, so pruning one copy never changes another."""
    model = build_model(name)
    model.load_state_dict(_trained_state(name, epochs))
    return model.eval()


def export_program(model: nn.Module, name: str) -> torch.export.ExportedProgram:
    """torch.export the model with a dynamic batch, from two real samples."""
    example = torch.from_numpy(zoo_data(name)["calib"].inputs["x"][:2])
    batch = torch.export.Dim("batch", min=1, max=4096)
    return torch.export.export(model.eval(), (example,), dynamic_shapes=({0: batch},))


def save_zoo_inputs(name: str, folder: Path, epochs: int | None = None) -> dict[str, Path]:
    """Train the zoo model and write model.pt2 (dynamic batch) and train/calib/eval .npz."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"model": folder / "model.pt2"}
    torch.export.save(export_program(trained_model(name, epochs), name), str(paths["model"]))
    for split, data in zoo_data(name).items():
        paths[split] = folder / f"{split}.npz"
        save_npz(data, str(paths[split]), "x")
    return paths
