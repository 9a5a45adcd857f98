"""Recurrent layers: LSTM → UNIDIRECTIONAL_SEQUENCE_LSTM or unrolled steps, GRU → unrolled steps.

LSTM with a zero (or absent) initial state whose final cell state Y_c is not read: ONNX's gate
blocks (i, o, f, c) are remapped to TFLite's (i, f, c, o), biases are Wb + Rb, h and c are
variable tensors (zero at start; the runner resets them before every run), and a bidirectional
layer is two ops, the backward one on the time-reversed input. In `dynamic` and `int8` modes
the LSTM weights are int8 (per tensor) with float activations: LiteRT's hybrid kernel.
Everything else — an initial state that is a graph input (streaming models carry it from run
to run), a read Y_c, clip, input_forget, Relu activations — and every GRU (no TFLite builtin)
is unrolled over its static time steps (recurrent_cells.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from foundation.errors import UnsupportedOp
from targets.tflite.emit import Lowering, Value
from targets.tflite.graph import Node
from targets.tflite.layout import PLAIN, Layout
from targets.tflite.recurrent_builtin import builtin_run
from targets.tflite.recurrent_cells import (
    GruCell,
    LstmCell,
    activation_ops,
    run_cell,
    unpack_steps,
)

DEFAULT_ACTIVATIONS = {"LSTM": ("Sigmoid", "Tanh", "Tanh"), "GRU": ("Sigmoid", "Tanh")}
INITIAL_H, INITIAL_C, SEQUENCE_LENS = 5, 6, 4


@dataclass(frozen=True)
class Run:
    """One direction's result: Y [seq, batch, hidden] in time order, final h and c."""

    y: Value
    h: Value
    c: Value | None


def _input(node: Node, index: int) -> str:
    return node.inputs[index] if len(node.inputs) > index else ""


def _read(ctx: Lowering, node: Node, index: int) -> bool:
    """True when output `index` exists and something reads it (a node or the graph)."""
    name = node.outputs[index] if len(node.outputs) > index else ""
    return bool(name) and (bool(ctx.consumers.get(name)) or name in ctx.graph_outputs)


def _attrs(node: Node) -> dict:
    """Attributes with decoded activations; per-direction lists of an ONNX bidirectional
    layer (forward then reverse functions) must repeat the same functions."""
    attrs = dict(node.attrs)
    names = tuple(a.decode() if isinstance(a, bytes) else a for a in attrs.get("activations", ()))
    per_direction = len(DEFAULT_ACTIVATIONS[node.op_type])
    names = names or DEFAULT_ACTIVATIONS[node.op_type]
    if len(names) > per_direction and names[per_direction:] != names[:per_direction]:
        raise UnsupportedOp(
            f"{node.op_type} '{node.name}' uses different activations per direction {names}; "
            "tflite lowers one set for both."
        )
    attrs["activation_names"] = names[:per_direction]
    attrs["activations"] = activation_ops(node.name, names[:per_direction])
    return attrs


def _check(ctx: Lowering, node: Node) -> None:
    """Refuse what the lowering does not map: batch-major layout, ragged sequence lengths,
    runtime weights, a dynamic batch or sequence."""
    seq = ctx.shape(node.inputs[0])[1 if _batch_major(node) else 0]
    lens = _input(node, SEQUENCE_LENS)
    problems = {
        "sequence_lens that are not all the full length": lens
        and not (ctx.graph.is_const(lens) and np.all(ctx.graph.consts[lens] == seq)),
        "runtime weights": not all(ctx.graph.is_const(n) for n in node.inputs[1:3]),
        "a dynamic batch or sequence (fix it with --input-shape)": None
        in ctx.shape(node.inputs[0]),
    }
    found = [what for what, bad in problems.items() if bad]
    if found:
        raise UnsupportedOp(
            f"{node.op_type} '{node.name}' has {', '.join(found)}; tflite cannot lower it."
        )


def _batch_major(node: Node) -> bool:
    """layout=1: X [batch, seq, in], states [batch, dirs, hidden], Y [batch, seq, dirs, hidden]."""
    return bool(node.attrs.get("layout", 0))


def _time_major(ctx: Lowering, node: Node, name: str) -> Value:
    """Input `name` (X or a state) with its first two axes in ONNX's time-major order: as it
    is for layout=0, through one TRANSPOSE for layout=1."""
    if not _batch_major(node):
        return ctx.get(name, PLAIN, "float32")
    value = ctx.get(name, Layout((1, 0, 2)), "float32")
    shape = (value.shape[1], value.shape[0], value.shape[2])
    return Value(value.tensor, PLAIN, value.dtype, value.quant, shape)


def _directions(node: Node) -> list[bool]:
    """Per direction: True when it runs over the time-reversed sequence."""
    direction = node.attrs.get("direction", b"forward")
    direction = direction.decode() if isinstance(direction, bytes) else direction
    return {"forward": [False], "reverse": [True], "bidirectional": [False, True]}[direction]


def _reshape(ctx: Lowering, tag: str, value: Value, shape: tuple) -> Value:
    dims = [int(d) for d in shape]
    options = ctx.options_of("ReshapeOptions", newShape=dims)
    inputs = [value.tensor, ctx.shape_const(f"{tag}/shape", dims)]
    return ctx.step("RESHAPE", inputs, tag, value, options, shape=tuple(shape))


def _finish(ctx: Lowering, name: str, parts: list[Value], axis: int, layout: Layout) -> None:
    """Register ONNX output `name` as the concatenation of parts (or the only part), laid out
    time-major (`layout` maps a batch-major ONNX output onto it; readers absorb it)."""
    if not name:
        return
    out = ctx.output(name, layout, False)
    if len(parts) == 1:
        dims = [int(d) for d in layout.shape(out.shape)]
        shape = ctx.shape_const(f"{name}/shape", dims)
        options = ctx.options_of("ReshapeOptions", newShape=dims)
        ctx.emit("RESHAPE", [parts[0].tensor, shape], [out], options)
        return
    options = ctx.options_of("ConcatenationOptions", axis=axis)
    ctx.emit("CONCATENATION", [p.tensor for p in parts], [out], options)


def _outputs(ctx: Lowering, node: Node, runs: list[Run]) -> None:
    """Y [seq, dirs, batch, hidden], Y_h and Y_c [dirs, batch, hidden] from each direction."""
    ys, hs, cs = [], [], []
    for index, run in enumerate(runs):
        tag = f"{node.name}/dir{index}"
        seq, batch, hidden = run.y.shape
        ys.append(_reshape(ctx, f"{tag}/y", run.y, (seq, 1, batch, hidden)))
        hs.append(_reshape(ctx, f"{tag}/yh", run.h, (1, batch, hidden)))
        if run.c is not None:
            cs.append(_reshape(ctx, f"{tag}/yc", run.c, (1, batch, hidden)))
    names = [node.outputs[i] if len(node.outputs) > i else "" for i in range(3)]
    major = _batch_major(node)
    y_layout, state_layout = (Layout((1, 2, 0, 3)), Layout((1, 0, 2))) if major else (PLAIN, PLAIN)
    _finish(ctx, names[0], ys, 1, y_layout)
    _finish(ctx, names[1], hs, 0, state_layout)
    if _read(ctx, node, 2):
        _finish(ctx, names[2], cs, 0, state_layout)


def _weights(
    ctx: Lowering, node: Node, gates: int
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """Hidden size, W, R and bias (zeros when absent) of an ONNX LSTM (4 gates) or GRU (3)."""
    hidden = int(node.attrs["hidden_size"])
    w, r = ctx.graph.float_const(node.inputs[1]), ctx.graph.float_const(node.inputs[2])
    if _input(node, 3):
        return hidden, w, r, ctx.graph.float_const(node.inputs[3])
    return hidden, w, r, np.zeros((w.shape[0], 2 * gates * hidden), np.float32)


def _zero_state(ctx: Lowering, name: str) -> bool:
    return not name or (ctx.graph.is_const(name) and not np.any(ctx.graph.float_const(name)))


def _initial_states(ctx: Lowering, node: Node, index: int, dirs: int) -> list[Value | None]:
    """Per direction, the initial state input `index` as [batch, hidden] (None when zero)."""
    name = _input(node, index)
    if _zero_state(ctx, name):
        return [None] * dirs
    if ctx.graph.is_const(name):
        array = ctx.graph.float_const(name)
        array = array.transpose(1, 0, 2) if _batch_major(node) else array
        return [_const_state(ctx, f"{node.name}/state{index}/{d}", array[d]) for d in range(dirs)]
    return unpack_steps(ctx, f"{node.name}/state{index}", _time_major(ctx, node, name))


def _const_state(ctx: Lowering, tag: str, array: np.ndarray) -> Value:
    """A constant [batch, hidden] state as a Value (a RESHAPE of the constant)."""
    index = ctx.const(f"{tag}/data", array.astype(np.float32), "float32")
    holder = Value(index, PLAIN, "float32", None, array.shape)
    return _reshape(ctx, tag, holder, array.shape)


def _builtin_fits(ctx: Lowering, node: Node, attrs: dict) -> bool:
    """UNIDIRECTIONAL_SEQUENCE_LSTM computes this LSTM: zero state, Y_c unread, plain gates."""
    return (
        ctx.options.lstm == "auto"
        and not _batch_major(node)
        and _zero_state(ctx, _input(node, INITIAL_H))
        and _zero_state(ctx, _input(node, INITIAL_C))
        and not _read(ctx, node, 2)
        and "clip" not in attrs
        and not attrs.get("input_forget", 0)
        and attrs["activation_names"] == DEFAULT_ACTIVATIONS["LSTM"]
    )


def lower_lstm(ctx: Lowering, node: Node) -> None:
    """LSTM → one UNIDIRECTIONAL_SEQUENCE_LSTM per direction, or unrolled steps."""
    _check(ctx, node)
    attrs = _attrs(node)
    hidden, w, r, bias = _weights(ctx, node, gates=4)
    peep = ctx.graph.float_const(node.inputs[7]) if _input(node, 7) else None
    x = _time_major(ctx, node, node.inputs[0])
    directions = _directions(node)
    if _builtin_fits(ctx, node, attrs):
        runs = []
        for index, reversed_ in enumerate(directions):
            parts = (w[index], r[index], bias[index], None if peep is None else peep[index])
            y, h = builtin_run(ctx, f"{node.name}/dir{index}", x, hidden, parts, reversed_)
            runs.append(Run(y, h, None))
        _outputs(ctx, node, runs)
        return
    hs = _initial_states(ctx, node, INITIAL_H, len(directions))
    cs = _initial_states(ctx, node, INITIAL_C, len(directions))
    runs = []
    for index, reversed_ in enumerate(directions):
        parts = (w[index], r[index], bias[index], None if peep is None else peep[index])
        cell = LstmCell(ctx, f"{node.name}/dir{index}", hidden, parts, attrs)
        y, (h, c) = run_cell(cell, x, (hs[index], cs[index]), reversed_)
        runs.append(Run(y, h, c))
    _outputs(ctx, node, runs)


def lower_gru(ctx: Lowering, node: Node) -> None:
    """GRU unrolled over its (static) time steps, per direction: one FULLY_CONNECTED projects
    every step's input for all three gates, one (or two) per step the hidden state."""
    _check(ctx, node)
    attrs = _attrs(node)
    hidden, w, r, bias = _weights(ctx, node, gates=3)
    x = _time_major(ctx, node, node.inputs[0])
    directions = _directions(node)
    hs = _initial_states(ctx, node, INITIAL_H, len(directions))
    runs = []
    for index, reversed_ in enumerate(directions):
        cell = GruCell(
            ctx, f"{node.name}/dir{index}", hidden, (w[index], r[index], bias[index]), attrs
        )
        y, (h, _) = run_cell(cell, x, (hs[index], None), reversed_)
        runs.append(Run(y, h, None))
    _outputs(ctx, node, runs)
