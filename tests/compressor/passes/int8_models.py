"""Models that break naive int8, built in code for the placement-rule and tuner tests.

- MaskedEncoder: a two-layer Transformer encoder with a BERT-style padding mask, added to the
  attention scores as (1 - mask) * float-min (the -3.4e38 that collapses a BERT in int8).
- BoxesAndScores: a detector head that concatenates box coordinates (~300) with sigmoid scores.
- scale_channel: the digits CNN with conv1's output channel 0 scaled x1000 and undone in conv2.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from calibration.dataset import Dataset
from compressor.model.export import export_onnx
from compressor.model.loading import LoadedModel
from compressor.passes.cleanup import cleanup_onnx
from targets.base import TensorSpec


class MaskedAttention(nn.Module):
    """Multi-head self-attention with an additive padding mask, written out as BERT does."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.qkv, self.out = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        with torch.no_grad():  # sharp attention, as in a trained model (random init is ~uniform)
            self.qkv.weight[: 2 * dim] *= 4.0

    def forward(self, x: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        n, s, d = x.shape
        q, k, v = self.qkv(x).view(n, s, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim) + additive_mask
        return self.out((scores.softmax(-1) @ v).transpose(1, 2).reshape(n, s, d))


class EncoderLayer(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.attn, self.norm1, self.norm2 = (
            MaskedAttention(dim, heads),
            nn.LayerNorm(dim),
            nn.LayerNorm(dim),
        )
        self.ffn = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.attn(x, additive_mask))
        return self.norm2(x + self.ffn(x))


class MaskedEncoder(nn.Module):
    """Sentence encoder: [N, S, D] tokens and a [N, S] 1/0 mask in, a mean-pooled [N, D] out."""

    def __init__(self, dim: int = 32, heads: int = 4, layers: int = 2) -> None:
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(dim, heads) for _ in range(layers))

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        additive = ((1.0 - mask) * torch.finfo(torch.float32).min)[:, None, None, :]
        x = tokens
        for layer in self.layers:
            x = layer(x, additive)
        weights = mask[..., None]
        return (x * weights).sum(1) / weights.sum(1)


class BoxesAndScores(nn.Module):
    """A tiny detector head: 4 box coordinates in pixels (0..~300) and 3 sigmoid class scores
    per anchor, concatenated into one [N, anchors, 7] output as YOLO exports do."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU())
        self.boxes, self.scores = nn.Conv2d(16, 4, 1), nn.Conv2d(16, 3, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        f = self.features(image)
        boxes = torch.sigmoid(self.boxes(f)) * 300.0
        scores = torch.sigmoid(self.scores(f))
        return torch.cat([boxes, scores], 1).flatten(2).transpose(1, 2)


def encoder_data(samples: int, seq: int = 12, dim: int = 32, seed: int = 0) -> Dataset:
    """Random token embeddings with padded tails of random length (at least 3 real tokens)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, seq + 1, samples)
    mask = (np.arange(seq)[None, :] < lengths[:, None]).astype(np.float32)
    tokens = rng.standard_normal((samples, seq, dim)).astype(np.float32)
    return Dataset({"tokens": tokens, "mask": mask})


def export_module(module: nn.Module, specs: list[TensorSpec], folder: Path) -> Path:
    """The module through the project's exporter and cleanup, as the pipeline does it."""
    module.eval()
    loaded = LoadedModel(folder / "model.pt", "module", module, None, specs)
    raw = export_onnx(loaded, specs, folder / "raw.onnx")
    cleanup_onnx(raw, folder / "fp32.onnx")
    return folder / "fp32.onnx"


def scale_channel(model: nn.Module, first: str, second: str, factor: float = 1000.0) -> nn.Module:
    """Scale `first`'s output channel 0 by factor and undo it in `second`'s input channel 0:
    the same function in float, but one channel 1000x wider than the rest for int8."""
    conv1, conv2 = model.get_submodule(first), model.get_submodule(second)
    with torch.no_grad():
        conv1.weight[0] *= factor
        if conv1.bias is not None:
            conv1.bias[0] *= factor
        conv2.weight[:, 0] /= factor
    return model


def cosine_per_sample(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-30)


def sqnr_db(reference: np.ndarray, test: np.ndarray) -> float:
    noise = np.mean((reference.astype(np.float64) - test) ** 2)
    return float(10 * np.log10(np.mean(reference.astype(np.float64) ** 2) / max(noise, 1e-30)))
