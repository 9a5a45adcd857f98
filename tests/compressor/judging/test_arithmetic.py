"""compressor/judging/arithmetic.py and host_check.py: int8 judged in every arithmetic of the
CPU profile, the report naming profile and host, and the device side saying when it differs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from calibration.dataset import Dataset
from compressor.bundle.manifest import build_manifest
from compressor.judging.arithmetic import (
    EXACT_HOW,
    HOST_HOW,
    TIE_DB,
    ArithmeticFigures,
    arithmetic_notes,
    profile_figure,
)
from compressor.passes.quantize import quantize_int8_static
from compressor.report.host_check import host_notes
from compressor.report.render import arithmetic_line
from compressor.tuning.trials import TargetRuntime
from targets.arithmetic import ARITHMETICS, AVX2_PAIRS, EXACT, HostCpu
from targets.base import TensorSpec
from targets.onnx.capabilities import ORT_CPU_SCHEME
from targets.onnx.options import OnnxOptions
from targets.registry import get_target
from tests.compressor.passes.int8_models import export_module

AVX2_HOST = HostCpu("x86_64", ("avx2",), "/proc/cpuinfo").to_dict()
VNNI_HOST = HostCpu("x86_64", ("avx2", "avx512_vnni"), "/proc/cpuinfo").to_dict()


def test_a_profile_arithmetic_is_measured_on_this_host_only_when_it_computes_in_it():
    exact = ArithmeticFigures(EXACT.name, EXACT_HOW, None)
    on_avx2 = ArithmeticFigures(AVX2_PAIRS.name, HOST_HOW, None)
    assert profile_figure([exact, on_avx2], AVX2_PAIRS.name, AVX2_PAIRS.name) is on_avx2
    # x86-vnni verified on an AVX2 host: the exact reference stands for it, never the host
    assert profile_figure([exact, on_avx2], EXACT.name, AVX2_PAIRS.name) is exact
    on_vnni = ArithmeticFigures(EXACT.name, HOST_HOW, None)
    emulated = ArithmeticFigures(AVX2_PAIRS.name, "emulated", None)
    figures = [exact, on_vnni, emulated]
    assert profile_figure(figures, EXACT.name, EXACT.name) is on_vnni
    assert profile_figure(figures, AVX2_PAIRS.name, EXACT.name) is emulated


def _record(avx2_db: float, host: dict = VNNI_HOST) -> dict:
    return {
        "profile": "portable",
        "judged_in": AVX2_PAIRS.name,
        "profile_figures": {EXACT.name: {"sqnr_db": 42.0}, AVX2_PAIRS.name: {"sqnr_db": avx2_db}},
        "exact_reference": {"sqnr_db": 42.0},
        "host_kernels": {"sqnr_db": 42.0},
        "measured_on": {EXACT.name: HOST_HOW, AVX2_PAIRS.name: "emulated"},
        "host": host,
    }


def test_an_arithmetic_losing_over_1_db_is_said_and_the_line_names_profile_and_host():
    assert arithmetic_notes(_record(41.5)) == []
    (note,) = arithmetic_notes(_record(20.7))
    assert "21.3 dB below the exact Q/DQ reference" in note and "portable" in note
    line = arithmetic_line(_record(20.7))
    assert line.startswith("int8 CPU profile portable: exact-int32 42.0 dB")
    assert "20.7 dB (emulated)" in line and "avx512_vnni" in line and "\n" not in line


def test_the_device_says_when_its_arithmetic_differs_from_the_verified_one():
    verified = _record(41.9)
    assert host_notes(verified, VNNI_HOST) == []  # the same arithmetic as the verifying host
    (covered,) = host_notes(verified, AVX2_HOST)
    assert f"computes int8 in {AVX2_PAIRS.name}" in covered and "covers" in covered
    vnni_only = {**verified, "profile": "x86-vnni", "profile_figures": {EXACT.name: {}}}
    (warning,) = host_notes(vnni_only, AVX2_HOST)
    assert warning.startswith("WARNING") and "-O cpu=portable" in warning
    assert host_notes({"profile": None, "host": VNNI_HOST}, AVX2_HOST) == []  # e.g. TensorRT


def test_example_int8_holds_within_1_db_of_exact_in_every_arithmetic(example_run):
    """The default (portable) int8 of the example (the session's shared run: --int8 --calib
    --eval), judged on AVX2 pair sums and exact sums alike (whichever this host lacks is
    emulated); report and manifest name profile and host."""
    out = example_run["out"]
    report = json.loads((out / "report.json").read_text())
    record = report["int8_arithmetic"]
    assert record["profile"] == "portable" and set(record["profile_figures"]) == set(ARITHMETICS)
    exact = record["exact_reference"]["sqnr_db"]
    for name, figure in record["profile_figures"].items():
        assert abs(figure["sqnr_db"] - exact) <= 1.0, (name, figure, exact)
    host = record["host"]
    assert host["arch"] and isinstance(host["int8_features"], list)
    lacked = {a for a in ARITHMETICS if a != host["arithmetic"]}
    assert {record["measured_on"][a] for a in lacked} == {"emulated"}
    judged = record["profile_figures"][record["judged_in"]]["sqnr_db"]
    assert report["compressed"]["fidelity"]["sqnr_db"] == judged  # gated on the worst
    worst = min(f["sqnr_db"] for f in record["profile_figures"].values())
    assert worst <= judged <= worst + TIE_DB  # ties name the scheme's hardest arithmetic
    manifest = build_manifest(Path(out), "model.onnx", {}, {})
    assert manifest["int8_arithmetic"] == record


def test_tuner_trials_are_judged_in_the_schemes_arithmetic_not_this_hosts(tmp_path):
    torch.manual_seed(0)
    specs = [TensorSpec("input", ("batch", 3, 8, 8))]
    fp32 = export_module(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), specs, tmp_path)
    calib = Dataset({"input": np.random.default_rng(0).random((16, 3, 8, 8), dtype=np.float32)})
    qdq = tmp_path / "q.onnx"
    quantize_int8_static(fp32, qdq, calib, ORT_CPU_SCHEME, "minmax", 8)
    onnx_target, trt = get_target("onnx"), get_target("tensorrt")
    runtime = TargetRuntime(onnx_target, OnnxOptions(), 1, tmp_path / "w")
    host = onnx_target.open_runner(qdq)
    judged = runtime.judging_runner(qdq, host, AVX2_PAIRS.name)
    assert judged is not host and judged.arithmetic == AVX2_PAIRS.name
    proxy = trt.open_runner(qdq)  # the Q/DQ ONNX opens in the exact proxy
    assert proxy.arithmetic == EXACT.name
    trt_runtime = TargetRuntime(trt, trt.parse_options({}), 1, tmp_path / "t")
    assert trt_runtime.judging_runner(qdq, proxy, AVX2_PAIRS.name) is proxy
