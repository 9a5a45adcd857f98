"""The emulated arithmetics against onnxruntime's real int8 kernels, on this host and on
emulated AVX2 (qemu-x86_64 -cpu Haswell runs onnxruntime's real VPMADDUBSW kernels)."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from targets.arithmetic import AVX2_PAIRS, EXACT, emulation_model, exact_session, host_cpu
from tests.targets.arithmetic.graphs import kernel_cases

OUTPUT_LSB = 0.5  # the output quantization step of every case graph
FLOAT_OUTPUT_TOLERANCE = 1e-3  # relative, for cases whose output is not quantized

CASES = kernel_cases()


def _emulated(model: onnx.ModelProto, arithmetic, feeds: dict) -> np.ndarray:
    session = exact_session(emulation_model(model, arithmetic).SerializeToString())
    return session.run(None, feeds)[0]


def _host_kernels(model: onnx.ModelProto, feeds: dict) -> np.ndarray:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, ["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def _assert_same(name: str, real: np.ndarray, emulated: np.ndarray) -> None:
    if "float_output" in name:
        scale = np.abs(real).max()
        assert np.abs(real - emulated).max() <= FLOAT_OUTPUT_TOLERANCE * scale, name
    else:
        assert np.abs(real - emulated).max() <= OUTPUT_LSB * 1.001, name


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_hosts_arithmetic_emulated_matches_the_hosts_kernels(name):
    arithmetic = host_cpu().arithmetic
    if arithmetic is None:
        pytest.skip(f"this host's int8 arithmetic is not known ({host_cpu().to_dict()})")
    model, feeds = CASES[name]
    _assert_same(name, _host_kernels(model, feeds), _emulated(model, arithmetic, feeds))


def test_the_cases_saturate_in_avx2_arithmetic():
    """The adversarial weights do leave int16 where the kernels pair them (so the other tests
    would see an emulation that missed it)."""
    differ = {
        name
        for name, (model, feeds) in CASES.items()
        if np.abs(_emulated(model, AVX2_PAIRS, feeds) - _emulated(model, EXACT, feeds)).max()
        > 4 * OUTPUT_LSB
    }
    # Depthwise kernels sum in int32, a Conv with a float output runs as a float Conv, and
    # onnxruntime has no int8 ConvTranspose kernel on CPU (measured under qemu: exact).
    assert differ == set(CASES) - {"conv_depthwise", "conv_float_output", "conv_transpose"}


def _python_binary() -> str:
    return os.path.realpath(sys.executable)  # qemu needs the ELF, not a pyenv shim


@pytest.mark.skipif(shutil.which("qemu-x86_64") is None, reason="qemu-x86_64 is not installed")
@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86-64 only")
def test_avx2_emulation_matches_the_real_avx2_kernels_under_qemu(tmp_path: Path):
    for name, (model, feeds) in CASES.items():
        onnx.save(model, str(tmp_path / f"{name}.onnx"))
        np.savez(tmp_path / f"{name}.npz", **feeds)
    script = Path(__file__).with_name("run_kernels.py")
    command = ["qemu-x86_64", "-cpu", "Haswell", _python_binary(), str(script), str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    for name, (model, feeds) in CASES.items():
        real = np.load(tmp_path / f"{name}.out.npy")
        _assert_same(name, real, _emulated(model, AVX2_PAIRS, feeds))
