"""Control flow before lowering: If nodes whose condition is known once shapes are fixed.

Exports of streaming models (Silero VAD) branch on a constant (the sample rate folded into the
model) and on input shapes (torch's LSTMCell export checks whether the state is batched).
With the shapes static, onnxslim's constant folding decides every such condition and inlines
the taken branch; an If that still depends on runtime data has no TFLite form here (TFLite's
IF op needs subgraphs this writer does not emit) and is refused with its condition named.
"""

from __future__ import annotations

import onnx

from foundation.errors import UnsupportedOp
from targets.tflite.batch import fix_batch

CONTROL_FLOW = {"If", "Loop", "Scan"}


def has_control_flow(model: onnx.ModelProto) -> bool:
    """True when the top-level graph holds an If, Loop or Scan."""
    return any(n.op_type in CONTROL_FLOW for n in model.graph.node)


def fold_branches(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """The model with every If on a foldable condition inlined (batch fixed to 1 when that is
    what decides them), with a note; raises UnsupportedOp for what stays."""
    import onnxslim

    count = sum(n.op_type in CONTROL_FLOW for n in model.graph.node)
    folded, note = onnxslim.slim(model), "shapes as given"
    if has_control_flow(folded):
        folded, note = fix_batch(model), "batch fixed to 1"
    left = [n for n in folded.graph.node if n.op_type in CONTROL_FLOW]
    if left:
        inputs = {i.name for i in folded.graph.input}
        named = ", ".join(
            f"{n.op_type} '{n.name}' (condition from '{n.input[0] if n.input else ''}'"
            f"{', a graph input' if n.input and n.input[0] in inputs else ''})"
            for n in left[:3]
        )
        raise UnsupportedOp(
            f"Target 'tflite' cannot lower control flow whose condition depends on runtime data: "
            f"{named}. Fix the input shapes (--input-shape) and fold inputs that select a branch "
            "(e.g. a sample rate) into the model as constants, or use --target onnx."
        )
    return folded, [f"tflite: {count} If node(s) folded to their taken branch ({note})."]
