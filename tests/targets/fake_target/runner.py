"""Run a model.fakepkg folder: its model.onnx in onnxruntime, its sidecar checked on open."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort

from foundation.errors import ModelLoadError
from targets.base import Runner, TensorSpec

DTYPES = {"tensor(float)": "float32", "tensor(int64)": "int64", "tensor(uint8)": "uint8"}


class FakeRunner(Runner):
    """onnxruntime on the folder's model.onnx, `threads` intra-op threads."""

    runtime = "fake-ort"

    def __init__(self, folder: Path, threads: int = 1) -> None:
        try:
            self.meta = json.loads((folder / "meta.json").read_text())
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"'{folder}' is not a fake artifact folder: {exc}") from exc
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self._session = ort.InferenceSession(
            str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = [_spec(a) for a in self._session.get_inputs()]
        self._outputs = [_spec(a) for a in self._session.get_outputs()]

    def _run_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = self._session.run(None, feeds)
        return {s.name: v for s, v in zip(self._outputs, values, strict=True)}


def _spec(arg: ort.NodeArg) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) else None for d in arg.shape)
    return TensorSpec(arg.name, shape, DTYPES.get(arg.type, "float32"))
