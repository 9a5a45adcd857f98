"""Run an ONNX file in onnxruntime on CPU with a fixed thread count."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from foundation.errors import ModelLoadError
from targets.base import Runner, TensorSpec

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

    def __init__(self, path: Path, threads: int = 1, proxy_for: str | None = None) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise ModelLoadError(f"onnxruntime could not open '{path}': {exc}") from exc
        self.proxy_for = proxy_for
        self._inputs = [_spec(i) for i in self._session.get_inputs()]
        self._outputs = [_spec(o) for o in self._session.get_outputs()]

    def _run_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = self._session.run(None, feeds)
        return {spec.name: value for spec, value in zip(self._outputs, values, strict=True)}


def _spec(arg: ort.NodeArg) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) else (d or None) for d in arg.shape)
    return TensorSpec(arg.name, shape, ORT_TYPES.get(arg.type, "float32"))
