""".pt2 programs whose symbolic dims are not only axis 0: a state batched on axis 1 and a
conv net with dynamic H/W, compressed like their ONNX twins and checked against torch."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from compressor.model.loading import load_model

RNG = np.random.default_rng(11)


class StatefulNet(torch.nn.Module):
    """forward(x [B, 64], state [2, B, 16]) -> (h [B, 16], new state [2, B, 16])."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(64, 16)
        self.b = torch.nn.Linear(16, 16)

    def forward(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.tanh(self.a(x) + self.b(state).sum(0))
        return h, state * 0.5 + h.unsqueeze(0)


class ConvNet(torch.nn.Module):
    """A fully convolutional net: any H/W in, same H/W out."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = torch.nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c2(torch.relu(self.c1(x)))


def _save(module: torch.nn.Module, args: tuple, dynamic: tuple, path) -> torch.nn.Module:
    torch.manual_seed(0)
    module = module.eval()
    torch.export.save(torch.export.export(module, args, dynamic_shapes=dynamic), path)
    return module


@pytest.fixture
def stateful(tmp_path):
    torch.manual_seed(0)
    batch = torch.export.Dim("B", min=1, max=1024)
    args = (torch.randn(3, 64), torch.randn(2, 3, 16))
    module = _save(StatefulNet(), args, ({0: batch}, {1: batch}), tmp_path / "ba.pt2")
    data = {
        "x": RNG.standard_normal((20, 64)).astype(np.float32),
        "state": RNG.standard_normal((2, 20, 16)).astype(np.float32),  # samples on axis 1
    }
    np.savez(tmp_path / "ba.npz", **data)
    return module, tmp_path / "ba.pt2", tmp_path / "ba.npz", data


@pytest.fixture
def conv(tmp_path):
    torch.manual_seed(0)
    dims = {0: torch.export.Dim("N", max=64), 2: torch.export.Dim("H", min=4, max=512)}
    dims[3] = torch.export.Dim("W", min=4, max=512)
    module = _save(ConvNet(), (torch.randn(2, 3, 16, 20),), (dims,), tmp_path / "fcn.pt2")
    np.savez(tmp_path / "c.npz", x=RNG.random((8, 3, 16, 20), dtype=np.float32))
    return module, tmp_path / "fcn.pt2", tmp_path / "c.npz"


def _torch(module: torch.nn.Module, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    with torch.no_grad():
        out = module(*(torch.from_numpy(v) for v in feeds.values()))
    return [o.numpy() for o in (out if isinstance(out, tuple) else (out,))]


def _dims(out) -> list[list]:
    model = onnx.load(out / "model.onnx")
    return [
        [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
        for i in model.graph.input
    ]


def test_symbolic_dims_keep_their_identity(stateful, conv):
    assert [s.shape for s in load_model(stateful[1]).inputs] == [("batch", 64), (2, "batch", 16)]
    shape = load_model(conv[1]).inputs[0].shape
    assert shape[:2] == ("batch", 3) and len({*shape[2:], "batch"}) == 3  # H, W: own names


@pytest.mark.parametrize("shape_flag", [[], ["--input-shape", "state:2x1x16"]])
def test_state_batched_on_axis_1_compresses(wild, stateful, tmp_path, shape_flag):
    module, path, npz, data = stateful
    feeds = {"x": data["x"][:3], "state": data["state"][:, :3]}
    want = _torch(module, feeds)
    for precision in ("fp32", "int8"):
        out = tmp_path / precision
        flags = [*shape_flag, "--int8"] if precision == "int8" else shape_flag
        args = [path, "--calib", npz, "--eval", npz, "--batch-axis", "state:1", *flags]
        result = wild.run(*args, "-o", out)
        assert result.exit_code == 0, result.output
        dims = _dims(out)
        assert dims[0][1] == 64 and dims[1][0::2] == [2, 16] and dims[0][0] == dims[1][1]
        tol = 1e-5 if precision == "fp32" else 0.05
        for arithmetic in wild.arithmetics_of(out):  # int8: exact and AVX2 pairs
            got = wild.artifact_outputs(out, "onnx", feeds, arithmetic)
            assert [g.shape for g in got] == [(3, 16), (2, 3, 16)]
            for g, w in zip(got, want, strict=True):
                np.testing.assert_allclose(g, w, atol=tol * max(1.0, np.abs(w).max()))


def test_dynamic_hw_stays_dynamic_on_onnx(wild, conv, tmp_path):
    module, path, npz = conv
    feeds = {"x": RNG.random((2, 3, 24, 12), dtype=np.float32)}  # a size the data never had
    want = _torch(module, feeds)[0]
    for precision in ("fp32", "int8"):
        out = tmp_path / precision
        flags = ["--int8"] if precision == "int8" else []
        result = wild.run(path, "-t", "onnx", "--calib", npz, "--eval", npz, *flags, "-o", out)
        assert result.exit_code == 0, result.output
        assert all(isinstance(d, str) for d in _dims(out)[0][2:])
        tol = 1e-4 if precision == "fp32" else 0.05 * np.abs(want).max()
        for arithmetic in wild.arithmetics_of(out):
            got = wild.artifact_outputs(out, "onnx", feeds, arithmetic)[0]
            np.testing.assert_allclose(got, want, atol=tol, err_msg=str(arithmetic))


def test_dynamic_hw_fixed_for_tflite(wild, conv, tmp_path):
    module, path, npz = conv
    result = wild.run(path, "-t", "tflite", "--int8", "--calib", npz, "-o", tmp_path / "no")
    assert result.exit_code == 2 and "--input-shape x:1x3x16x20" in result.output
    assert "calibrate" not in result.output  # refused before any work
    feeds = {"x": RNG.random((1, 3, 16, 20), dtype=np.float32)}
    want = _torch(module, feeds)[0]
    out = tmp_path / "int8"
    flags = ["--int8", "--calib", npz, "--eval", npz, "--input-shape", "x:1x3x16x20"]
    result = wild.run(path, "-t", "tflite", *flags, "-o", out)
    assert result.exit_code == 0, result.output
    got = wild.artifact_outputs(out, "tflite", feeds)[0]
    assert got.shape == (1, 4, 16, 20)
    np.testing.assert_allclose(got, want, atol=0.05 * np.abs(want).max())


def test_state_batch_axis_refused_up_front_by_tflite(wild, stateful, tmp_path):
    _, path, npz, _ = stateful
    args = [path, "-t", "tflite", "--calib", npz, "--batch-axis", "state:1", "-o", tmp_path / "o"]
    result = wild.run(*args)
    assert result.exit_code == 2 and "--batch-axis state:1" in result.output
    assert "→ ONNX" not in result.output  # refused before exporting
