"""Real sequence, audio and super-resolution models through the TFLite lowering.

A Transformer encoder classifier (token embedding, 2 layers of multi-head attention with a
padding mask, masked mean pooling, head) and an LSTM classifier are trained here on learnable
synthetic sequence tasks, exported as the pipeline does (torch.export → ONNX → cleanup), and
lowered in fp32/fp16/dynamic (+ int8 with float islands for the Transformer) on both LiteRT
resolvers. A GRU, a PixelShuffle super-resolution net and a reflection-padded 1-D audio conv
net (untrained) must match onnxruntime in fp32.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from calibration.dataset import Dataset
from compressor.model.export import export_onnx
from compressor.model.loading import load_model
from compressor.passes.cleanup import cleanup_onnx
from compressor.passes.quantize import quantize_int8_static
from targets.registry import EXACT_ARITHMETIC, reference_runner
from targets.tflite import TARGET
from targets.tflite.capabilities import TFLITE_SCHEME
from targets.tflite.options import TfliteOptions

RESOLVERS = ["default", "builtin"]
SEQ, VOCAB, MARKER = 12, 16, 7


class TinyTransformer(nn.Module):
    """Embedding + 2 encoder layers (4 heads, GELU) with a key padding mask, masked mean, head."""

    def __init__(self, d: int = 16) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, d, padding_idx=0)
        self.pos = nn.Parameter(torch.randn(1, SEQ, d) * 0.1)
        layer = nn.TransformerEncoderLayer(
            d, 4, 32, dropout=0.0, batch_first=True, activation="gelu"
        )
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(d, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        pad = ids == 0
        h = self.encoder(self.embed(ids) + self.pos, src_key_padding_mask=pad)
        keep = (~pad).unsqueeze(-1).float()
        return self.head((h * keep).sum(1) / keep.sum(1).clamp(min=1.0))


class TinyLSTM(nn.Module):
    """One LSTM layer over [batch, time, 4]; the last hidden state feeds a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(4, 24, batch_first=True)
        self.head = nn.Linear(24, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(x)[0][:, -1])


class TinyGRU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(4, 12, batch_first=True, bidirectional=True)
        self.head = nn.Linear(24, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.gru(x)[0].mean(1))


class PixelShuffleSR(nn.Module):
    """ESPCN-style ×2 super-resolution: conv, conv to 4·C channels, PixelShuffle."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1)
        )
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.shuffle(self.body(x)))


class ReflectAudioNet(nn.Module):
    """1-D audio conv net with reflection padding (as vocoders and VAD front ends use)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.ReflectionPad1d(3),
            nn.Conv1d(1, 8, 7, stride=2),
            nn.BatchNorm1d(8),
            nn.LeakyReLU(0.2),
            nn.Conv1d(8, 8, 5, padding=2, padding_mode="reflect"),
            nn.ReLU(),
        )
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.net(x).mean(-1))


def _token_task(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Padded token sequences; label 1 when MARKER occurs among the real tokens."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, VOCAB, (n, SEQ))
    ids[ids == MARKER] = MARKER + 1
    lengths = rng.integers(3, SEQ + 1, n)
    labels = rng.integers(0, 2, n)
    for row, (length, label) in enumerate(zip(lengths, labels, strict=True)):
        if label:
            ids[row, rng.integers(0, length)] = MARKER
        ids[row, length:] = 0
    return ids.astype(np.int64), labels


def _series_task(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noisy sequences; label 1 when the first feature sums above zero over time."""
    x = np.random.default_rng(seed).standard_normal((n, 10, 4)).astype(np.float32)
    return x, (x[:, :, 0].sum(1) > 0).astype(np.int64)


def _train(model: nn.Module, x: np.ndarray, y: np.ndarray, steps: int) -> nn.Module:
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    inputs, labels = torch.from_numpy(x), torch.from_numpy(y)
    for step in range(steps):
        batch = slice((step * 64) % len(x), (step * 64) % len(x) + 64)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(inputs[batch]), labels[batch]).backward()
        optimizer.step()
    return model.eval()


def _export(model: nn.Module, example: np.ndarray, folder) -> object:
    """torch.export (dynamic batch) → ONNX → cleanup, as the pipeline does."""
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(
        model.eval(), (torch.from_numpy(example[:2]),), dynamic_shapes=({0: batch},)
    )
    torch.export.save(program, str(folder / "model.pt2"))
    loaded = load_model(folder / "model.pt2")
    cleanup_onnx(export_onnx(loaded, loaded.inputs, folder / "raw.onnx"), folder / "model.onnx")
    return folder / "model.onnx"


def _tflite(path, precision: str, x: np.ndarray, resolver: str, out) -> tuple[np.ndarray, dict]:
    out.mkdir(exist_ok=True)
    artifact = TARGET.lower(path, precision, out, TfliteOptions())
    runner = TARGET.open_runner(artifact.path, 1, TfliteOptions(resolver=resolver))
    name, step = runner.inputs[0].name, runner.fixed_batch or len(x)
    chunks = [
        runner.run({name: x[i : i + step]})[runner.outputs[0].name] for i in range(0, len(x), step)
    ]
    return np.concatenate(chunks), artifact.info


def _onnxruntime(path, x: np.ndarray) -> np.ndarray:
    """The Q/DQ graph in exact int32 arithmetic, as LiteRT's XNNPACK computes it on every CPU
    (onnxruntime's own kernels sum u8×s8 pairs in a saturating int16 on CPUs without VNNI)."""
    runner = reference_runner(path, arithmetic=EXACT_ARITHMETIC)
    return runner.run({runner.inputs[0].name: x})[runner.outputs[0].name]


def _trained(name: str, tmp_path_factory) -> dict:
    model, task, steps = {
        "transformer": (TinyTransformer(), _token_task, 150),
        "lstm": (TinyLSTM(), _series_task, 150),
    }[name]
    torch.manual_seed(0)
    x, y = task(2048, seed=1)
    model = _train(model, x, y, steps)
    eval_x, eval_y = task(300, seed=2)
    with torch.no_grad():
        logits = model(torch.from_numpy(eval_x)).numpy()
    folder = tmp_path_factory.mktemp(name)
    return {
        "onnx": _export(model, eval_x, folder),
        "x": eval_x,
        "y": eval_y,
        "torch": logits,
        "folder": folder,
        "calib": x[:256],
    }


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> dict:
    """Trained models, built once per module on first use."""
    torch.set_num_threads(1)
    cache: dict = {}

    def get(name: str) -> dict:
        if name not in cache:
            cache[name] = _trained(name, tmp_path_factory) | {"name": name}
        return cache[name]

    return get


@pytest.fixture(params=["transformer", "lstm"])
def trained(request, zoo) -> dict:
    return zoo(request.param)


def _accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(1) == labels).mean() * 100)


@pytest.mark.parametrize("resolver", RESOLVERS)
@pytest.mark.parametrize("mode", ["fp32", "fp16", "dynamic"])
def test_trained_sequence_model_converts(trained, mode, resolver, tmp_path):
    torch_acc = _accuracy(trained["torch"], trained["y"])
    assert torch_acc >= 90, f"{trained['name']} did not learn its task ({torch_acc:.1f}%)"
    got, info = _tflite(trained["onnx"], mode, trained["x"], resolver, tmp_path / mode)
    expected = {"transformer": "BATCH_MATMUL", "lstm": "UNIDIRECTIONAL_SEQUENCE_LSTM"}[
        trained["name"]
    ]
    assert info["op_counts"].get(expected, 0) >= 1, info["op_counts"]
    if mode == "fp32":
        want = _onnxruntime(trained["onnx"], trained["x"])
        assert np.abs(got - want).max() <= 1e-4 * np.ptp(want)
    assert abs(_accuracy(got, trained["y"]) - torch_acc) <= 1.0


@pytest.mark.parametrize("resolver", RESOLVERS)
def test_trained_transformer_int8_with_float_islands(zoo, resolver, tmp_path):
    trained = zoo("transformer")
    qdq = trained["folder"] / "qdq.onnx"
    calib = Dataset({"ids": trained["calib"]})
    quantized = quantize_int8_static(trained["onnx"], qdq, calib, TFLITE_SCHEME, "minmax", 16)
    got, info = _tflite(qdq, "int8", trained["x"], resolver, tmp_path / "int8")
    ops, islands = info["op_counts"], info["float_ops"]
    assert ops.get("DEQUANTIZE", 0) >= 1 and ops.get("FULLY_CONNECTED", 0) >= 1, ops
    # FC, attention matmuls and GELU stay integer; LayerNorm and Softmax are float islands.
    assert not {"FULLY_CONNECTED", "BATCH_MATMUL", "GELU"} & set(islands), islands
    assert {"SOFTMAX", "RSQRT"} <= set(islands), islands
    # The padding mask (-inf) has no finite int8 range: it is kept float, and said so (by the
    # quantizer's mask rule, which keeps it out of Q/DQ, or else by the lowering).
    masks = [k for k in quantized["kept_float"] if k["rule"] == "mask-constant"]
    assert masks or any("infinite range" in note for note in info["notes"]), info["notes"]
    torch_acc = _accuracy(trained["torch"], trained["y"])
    cosine = float(
        np.sum(got * trained["torch"]) / np.linalg.norm(got) / np.linalg.norm(trained["torch"])
    )
    assert abs(_accuracy(got, trained["y"]) - torch_acc) <= 1.0 or cosine >= 0.99


@pytest.mark.parametrize("resolver", RESOLVERS)
def test_trained_lstm_int8_runs_the_hybrid_lstm(zoo, resolver, tmp_path):
    """--int8 on an LSTM model: int8 head, LSTM on LiteRT's dynamic-range kernel."""
    trained = zoo("lstm")
    qdq = trained["folder"] / "qdq.onnx"
    calib = Dataset({"x": trained["calib"]})
    quantize_int8_static(trained["onnx"], qdq, calib, TFLITE_SCHEME, "minmax", 16)
    got, info = _tflite(qdq, "int8", trained["x"], resolver, tmp_path / "int8")
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in info["float_ops"], info["float_ops"]
    assert "FULLY_CONNECTED" not in info["float_ops"], info["float_ops"]
    torch_acc = _accuracy(trained["torch"], trained["y"])
    assert abs(_accuracy(got, trained["y"]) - torch_acc) <= 1.0


@pytest.mark.parametrize(
    ("builder", "shape", "op"),
    [
        (TinyGRU, (10, 4), "LOGISTIC"),
        (PixelShuffleSR, (1, 8, 8), "DEPTH_TO_SPACE"),
        (ReflectAudioNet, (1, 64), "MIRROR_PAD"),
    ],
)
def test_gru_pixel_shuffle_and_reflect_audio_nets_match_onnxruntime(builder, shape, op, tmp_path):
    torch.manual_seed(0)
    model = builder().eval()
    x = np.random.default_rng(3).standard_normal((4, *shape)).astype(np.float32)
    path = _export(model, x, tmp_path)
    want = _onnxruntime(path, x)
    for resolver in RESOLVERS:
        got, info = _tflite(path, "fp32", x, resolver, tmp_path / resolver)
        assert info["op_counts"].get(op, 0) >= 1, info["op_counts"]
        assert np.abs(got - want).max() <= 1e-4 * max(float(np.ptp(want)), 1.0)
