"""Graph cleanup: constant folding, BatchNorm folding and simplification through onnxslim."""

from __future__ import annotations

from pathlib import Path

import onnx
import onnxslim

from compressor.errors import ExportError


def cleanup_onnx(src: Path, dst: Path) -> dict:
    """Simplify src into dst and return node counts before and after.

    onnxslim is pure Python (2.9 MB) and simplified our zoo as well as onnxsim (38 MB binary)
    in the measurements in shared/notes/stack.md, so it is the one we depend on.
    """
    model = onnx.load(str(src))
    before = len(model.graph.node)
    try:
        slim = onnxslim.slim(model)
    except Exception as exc:
        raise ExportError(f"Simplifying the ONNX graph failed: {exc}") from exc
    onnx.checker.check_model(slim)
    onnx.save(slim, str(dst))
    counts = _op_counts(slim)
    return {
        "nodes_before": before,
        "nodes_after": len(slim.graph.node),
        "batchnorm_left": counts.get("BatchNormalization", 0),
    }


def _op_counts(model: onnx.ModelProto) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts
