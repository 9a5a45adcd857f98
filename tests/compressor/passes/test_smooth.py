"""SmoothQuant-style migration: outlier MatMul inputs folded into LayerNorm or a float Mul."""

from __future__ import annotations

import numpy as np
import onnx
import torch
from torch import nn

from calibration.dataset import Dataset
from compressor.passes.held_back import float_error
from compressor.passes.quantize import quantize_int8_static
from compressor.passes.smooth import SMOOTH_MUL, smooth_inputs, smoothable_inputs
from compressor.recipe import Int8Config
from targets.base import TensorSpec
from targets.onnx.capabilities import ORT_CPU_SCHEME
from tests.compressor.passes.int8_models import export_module

SMOOTH_ONLY = Int8Config(equalize=False, bias_correction=False, smooth_mul=True)


class OutlierBlock(nn.Module):
    """LayerNorm whose channels 0 and 5 come out ~100x the rest, then an MLP; `residual` also
    adds the LayerNorm output back (so 1/s cannot be folded into the LayerNorm)."""

    def __init__(self, residual: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.norm, self.residual = nn.LayerNorm(32), residual
        self.up, self.down = nn.Linear(32, 64), nn.Linear(64, 32)
        with torch.no_grad():
            self.norm.weight[[0, 5]] = 100.0
            self.norm.bias[[0, 5]] = 5.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(x)
        out = self.down(torch.relu(self.up(y)))
        return out + y if self.residual else out


def _export(tmp_path, residual: bool):
    spec = TensorSpec("x", ("batch", 6, 32))
    return export_module(OutlierBlock(residual), [spec], tmp_path)


def _data(n: int, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    return Dataset({"x": rng.standard_normal((n, 6, 32)).astype(np.float32)})


def _absmax(path, names, data) -> dict[str, np.ndarray]:
    from calibration.activations import iterate_activations

    found: dict[str, np.ndarray] = {}
    for values, _ in iterate_activations(path, data, 16, names):
        for k, v in values.items():
            found[k] = np.maximum(found.get(k, 0), np.abs(v.reshape(-1, v.shape[-1])).max(0))
    return found


def test_smoothing_folds_into_layernorm_or_a_float_mul_and_keeps_the_function(tmp_path):
    for residual in (False, True):
        folder = tmp_path / str(residual)
        folder.mkdir()
        fp32 = _export(folder, residual)
        model = onnx.load(str(fp32))
        names = [i.tensor for i in smoothable_inputs(model)]
        absmax = _absmax(fp32, names, _data(32))
        untouched = onnx.ModelProto()
        untouched.CopyFrom(model)
        folded_only = smooth_inputs(untouched, absmax, 0.5, insert_mul=False)
        done = smooth_inputs(model, absmax, 0.5, insert_mul=True)
        onnx.save(model, str(folder / "smooth.onnx"))
        assert float_error(fp32, folder / "smooth.onnx", _data(16, 1), 8) < 1e-5
        ln_out = next(n.output[0] for n in model.graph.node if n.op_type == "LayerNormalization")
        assert done[ln_out] == ("by Mul" if residual else "into LayerNormalization")
        assert (ln_out in folded_only) != residual  # no Mul unless asked for
        name = f"{SMOOTH_MUL}{ln_out}" if residual else ln_out
        before = _absmax(fp32, [ln_out], _data(32))[ln_out]
        after_ranges = _absmax(folder / "smooth.onnx", [name], _data(32))[name]
        spread = [r.max() / np.median(r) for r in (before, after_ranges)]
        assert spread[0] > 20 and spread[1] < spread[0] / 4  # the outlier channels evened out
        after = {n.input[0] for n in model.graph.node if n.op_type in ("MatMul", "Gemm")}
        mul = [n for n in model.graph.node if n.name.startswith(SMOOTH_MUL)]
        assert len(mul) == int(residual) and (mul[0].output[0] in after if residual else True)


def test_smoothing_is_kept_only_when_held_back_int8_sqnr_rises(tmp_path):
    """Without the residual, smoothing the LayerNorm output wins clearly and is kept; with it,
    the output carries the outlier channels itself, so whether the float Mul helps is measured
    and the decision must follow the numbers."""
    for residual in (False, True):
        folder = tmp_path / str(residual)
        folder.mkdir()
        info = quantize_int8_static(
            _export(folder, residual),
            folder / "q.onnx",
            _data(64),
            ORT_CPU_SCHEME,
            "minmax",
            8,
            config=SMOOTH_ONLY,
        )
        step = info["steps"]["smooth"]
        sqnr = step["held_back_sqnr_db"]
        assert step["applied"] == (sqnr["with"] > sqnr["without"])
        q = onnx.load(str(folder / "q.onnx"))
        mul = [n for n in q.graph.node if n.name.startswith(SMOOTH_MUL)]
        assert len(mul) == int(residual and step["applied"])
        producers = {o: n.op_type for n in q.graph.node for o in n.output}
        assert all(producers.get(m.input[0]) != "DequantizeLinear" for m in mul)  # X stays float
        if not residual:
            assert step["applied"] and sqnr["with"] > sqnr["without"] + 3.0, step
