"""A graph with If nodes opens in onnxruntime without constant folding (its If inlining crashed
the process on Silero VAD's shipped graph) and still computes the chosen branch."""

from pathlib import Path

import numpy as np
import onnx

from targets.onnx.runner import OnnxRuntimeRunner, _has_branches
from tests.compressor.passes.test_cleanup import _if_model


def test_if_graph_runs_with_constant_folding_off(tmp_path: Path) -> None:
    path = tmp_path / "if.onnx"
    onnx.save(_if_model(), str(path))
    assert _has_branches(path)
    x = np.arange(4, dtype=np.float32).reshape(1, 4)
    with OnnxRuntimeRunner(path) as runner:
        np.testing.assert_allclose(runner.run({"x": x})["y"], x * 2.0)
