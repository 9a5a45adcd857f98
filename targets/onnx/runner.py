"""Run an ONNX file in onnxruntime on CPU with a fixed thread count, in a chosen int8 arithmetic.

`arithmetic` is HOST (onnxruntime as shipped: fused int8 kernels, whatever this CPU computes)
or the name of an Int8Arithmetic: exact runs the Q/DQ graph as written (DequantizeLinear, then
the float op), any other runs targets.arithmetic's emulation of it. Every int8 measurement of
the project (passes, tuner, verdict, debug) opens its session here, through reference_runner.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from foundation.errors import ModelLoadError, UsageError
from targets.arithmetic import ARITHMETICS, EXACT, arithmetic_model, exact_session
from targets.base import Runner, TensorSpec

HOST = "host"  # onnxruntime's own kernels on this CPU, graph optimizations on

ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
}


class OnnxRuntimeRunner(Runner):
    """onnxruntime InferenceSession, sequential execution, `threads` intra-op threads."""

    runtime = "onnxruntime"

    def __init__(
        self, path: Path, threads: int = 1, proxy_for: str | None = None, arithmetic: str = HOST
    ) -> None:
        if arithmetic != HOST and arithmetic not in ARITHMETICS:
            raise UsageError(
                f"No int8 arithmetic '{arithmetic}'; known: {HOST}, {', '.join(ARITHMETICS)}."
            )
        try:
            self._session = _open_session(Path(path), threads, arithmetic)
        except Exception as exc:
            raise ModelLoadError(f"onnxruntime could not open '{path}': {exc}") from exc
        self.proxy_for, self.arithmetic = proxy_for, arithmetic
        self._inputs = [_spec(i) for i in self._session.get_inputs()]
        self._outputs = [_spec(o) for o in self._session.get_outputs()]

    def _run_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = self._session.run(None, feeds)
        return {spec.name: value for spec, value in zip(self._outputs, values, strict=True)}


def _open_session(path: Path, threads: int, arithmetic: str) -> ort.InferenceSession:
    """onnxruntime as shipped (HOST), the exact Q/DQ arithmetic, or an emulated one."""
    if arithmetic != HOST:
        model = onnx.load(str(path))
        emulated = arithmetic_model(model, ARITHMETICS[arithmetic])
        if emulated is model and arithmetic == EXACT.name:  # a Q/DQ graph is exact as written
            return exact_session(path, threads)
        return exact_session(emulated.SerializeToString(), threads)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    skip = ["ConstantFolding"] if _has_branches(path) else []
    return ort.InferenceSession(
        str(path), options, providers=["CPUExecutionProvider"], disabled_optimizers=skip
    )


def _has_branches(path: Path) -> bool:
    """Whether the graph holds If nodes: onnxruntime 1.32's constant folding crashed the process
    (SIGSEGV) inlining the constant-condition Ifs of Silero VAD's shipped graph."""
    graph = onnx.load(str(path), load_external_data=False).graph
    return any(node.op_type == "If" for node in graph.node)


def _spec(arg: ort.NodeArg) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) else (d or None) for d in arg.shape)
    return TensorSpec(arg.name, shape, ORT_TYPES.get(arg.type, "float32"))
