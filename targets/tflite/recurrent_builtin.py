"""UNIDIRECTIONAL_SEQUENCE_LSTM for an ONNX LSTM direction with a zero initial state.

ONNX's gate blocks (i, o, f, c) are remapped to TFLite's (i, f, c, o), peepholes (i, o, f) to
(i, f, o), biases are Wb + Rb; h and c are variable tensors (zero at start; the runner resets
them before every run). In `dynamic` and `int8` modes the weights are int8 per tensor with
float activations: LiteRT's hybrid kernel.
"""

from __future__ import annotations

import numpy as np

from targets.tflite.emit import Lowering, Value
from targets.tflite.layout import PLAIN
from targets.tflite.weights import quantize_symmetric, weight_tensor

# ONNX LSTM gate blocks are i, o, f, c; TFLite's inputs go i, f, c, o.
LSTM_GATES = (0, 2, 3, 1)
# ONNX peephole P is (i, o, f); TFLite's cell_to_* inputs go i, f, o.
PEEPHOLES = (0, 2, 1)
LSTM_INPUTS = 24
HYBRID_LSTM_VERSION = 2


def _reverse(ctx: Lowering, tag: str, value: Value) -> Value:
    axis = ctx.const(f"{tag}/axis", np.array([0], np.int32), "int32")
    return ctx.step("REVERSE_V2", [value.tensor, axis], tag, value)


def _last_step(ctx: Lowering, tag: str, sequence: Value) -> Value:
    """sequence[-1] of a [seq, batch, hidden] tensor, as [batch, hidden]."""
    seq, batch, hidden = sequence.shape
    inputs = [sequence.tensor] + [
        ctx.shape_const(f"{tag}/{k}", v)
        for k, v in (
            ("begin", [seq - 1, 0, 0]),
            ("end", [seq, batch, hidden]),
            ("strides", [1, 1, 1]),
        )
    ]
    options = ctx.options_of("StridedSliceOptions", shrinkAxisMask=1)
    return ctx.step("STRIDED_SLICE", inputs, tag, sequence, options, shape=(batch, hidden))


def builtin_run(
    ctx: Lowering, tag: str, x: Value, hidden: int, parts: tuple, reversed_: bool
) -> tuple[Value, Value]:
    """One direction on the builtin op: (Y in time order, final h)."""
    source = _reverse(ctx, f"{tag}/reversed", x) if reversed_ else x
    run = _lstm_op(ctx, tag, source, hidden, parts)
    last = _last_step(ctx, f"{tag}/last", run)
    return (_reverse(ctx, f"{tag}/unreversed", run) if reversed_ else run), last


def _lstm_weight(ctx: Lowering, tag: str, array: np.ndarray) -> int:
    """A gate matrix: int8 per tensor (hybrid kernel) in dynamic/int8 modes, else as weights go."""
    if ctx.options.precision in ("dynamic", "int8"):
        q, params = quantize_symmetric(array, None)
        return ctx.const(tag, q, "int8", params)
    return weight_tensor(ctx, tag, np.ascontiguousarray(array), 0)[0]


def _lstm_op(ctx: Lowering, tag: str, x: Value, hidden: int, parts: tuple) -> Value:
    w, r, b, peep = parts
    seq, batch, _ = x.shape
    gate = lambda a, g: a[g * hidden : (g + 1) * hidden]  # noqa: E731
    inputs = [-1] * LSTM_INPUTS
    inputs[0] = x.tensor
    for slot, g in enumerate(LSTM_GATES):
        inputs[1 + slot] = _lstm_weight(ctx, f"{tag}/w{slot}", gate(w, g))
        inputs[5 + slot] = _lstm_weight(ctx, f"{tag}/r{slot}", gate(r, g))
        total = gate(b[: 4 * hidden], g) + gate(b[4 * hidden :], g)
        inputs[12 + slot] = ctx.const(f"{tag}/b{slot}", total.astype(np.float32), "float32")
    if peep is not None:
        for slot, g in enumerate(PEEPHOLES):
            # The hybrid kernel wants the peepholes int8 like the gate matrices.
            inputs[9 + slot] = _lstm_weight(ctx, f"{tag}/p{slot}", gate(peep, g))
    state = (batch, hidden)
    inputs[18] = ctx.builder.add_tensor(f"{tag}/h", state, "float32", variable=True)
    inputs[19] = ctx.builder.add_tensor(f"{tag}/c", state, "float32", variable=True)
    out = ctx.new_value(f"{tag}/out", (seq, batch, hidden), PLAIN, "float32", None)
    options = ctx.options_of(
        "UnidirectionalSequenceLSTMOptions",
        fusedActivationFunction=4,
        timeMajor=True,  # TANH
    )
    hybrid = ctx.options.precision in ("dynamic", "int8")
    ctx.emit(
        "UNIDIRECTIONAL_SEQUENCE_LSTM", inputs, [out], options, HYBRID_LSTM_VERSION if hybrid else 1
    )
    return out
