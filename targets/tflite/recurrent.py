"""Recurrent layers: LSTM → UNIDIRECTIONAL_SEQUENCE_LSTM, GRU → unrolled FULLY_CONNECTED steps.

LSTM: ONNX's gate blocks (i, o, f, c) are remapped to TFLite's (i, f, c, o), biases are Wb + Rb,
h and c are variable tensors (zero at start; the runner resets them before every run), and a
bidirectional layer is two ops, the backward one on the time-reversed input. In `dynamic` and
`int8` modes the LSTM weights are int8 (per tensor) with float activations: LiteRT's hybrid
kernel. GRU has no TFLite builtin: each time step is FULLY_CONNECTED + LOGISTIC/TANH + MUL/ADD.
"""

from __future__ import annotations

import numpy as np

from foundation.errors import UnsupportedOp
from targets.tflite.dense import fc_version
from targets.tflite.emit import Lowering, Value
from targets.tflite.graph import Node
from targets.tflite.layout import PLAIN
from targets.tflite.weights import bias_tensor, quantize_symmetric, weight_tensor

# ONNX LSTM gate blocks are i, o, f, c; TFLite's inputs go i, f, c, o.
LSTM_GATES = (0, 2, 3, 1)
# ONNX peephole P is (i, o, f); TFLite's cell_to_* inputs go i, f, o.
PEEPHOLES = (0, 2, 1)
LSTM_INPUTS = 24
HYBRID_LSTM_VERSION = 2


def _check(ctx: Lowering, node: Node, defaults: tuple[str, ...]) -> None:
    """Refuse what the lowering does not map: batch-major layout, sequence lengths, clip,
    non-default activations, runtime weights or a non-zero initial state, a dynamic batch."""
    acts = tuple(
        a.decode() if isinstance(a, bytes) else a for a in node.attrs.get("activations", defaults)
    )
    problems = {
        "layout=1": node.attrs.get("layout", 0),
        "sequence_lens": len(node.inputs) > 4 and node.inputs[4],
        "clip": "clip" in node.attrs,
        "input_forget": node.attrs.get("input_forget", 0),
        f"activations {acts}": acts != defaults,
        "runtime weights": not all(ctx.graph.is_const(n) for n in node.inputs[1:3]),
        "a dynamic batch or sequence (fix it with --input-shape)": None
        in ctx.shape(node.inputs[0]),
    }
    for index in (5, 6):
        name = node.inputs[index] if len(node.inputs) > index else ""
        if name and (not ctx.graph.is_const(name) or np.any(ctx.graph.float_const(name))):
            problems["a non-zero initial state"] = True
    found = [what for what, bad in problems.items() if bad]
    if found:
        raise UnsupportedOp(
            f"{node.op_type} '{node.name}' has {', '.join(found)}; tflite cannot lower it."
        )


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


def _reverse(ctx: Lowering, tag: str, value: Value) -> Value:
    axis = ctx.const(f"{tag}/axis", np.array([0], np.int32), "int32")
    return ctx.step("REVERSE_V2", [value.tensor, axis], tag, value)


def _finish(ctx: Lowering, name: str, parts: list[Value], axis: int) -> None:
    """Register ONNX output `name` as the concatenation of parts (or the only part)."""
    if not name:
        return
    out = ctx.output(name, PLAIN, False)
    if len(parts) == 1:
        shape = ctx.shape_const(f"{name}/shape", list(out.shape))
        options = ctx.options_of("ReshapeOptions", newShape=list(out.shape))
        ctx.emit("RESHAPE", [parts[0].tensor, shape], [out], options)
        return
    options = ctx.options_of("ConcatenationOptions", axis=axis)
    ctx.emit("CONCATENATION", [p.tensor for p in parts], [out], options)


def _last_step(ctx: Lowering, tag: str, sequence: Value) -> Value:
    """sequence[-1:] of a [seq, batch, hidden] tensor."""
    seq, batch, hidden = sequence.shape
    inputs = [sequence.tensor] + [
        ctx.shape_const(f"{tag}/{k}", v)
        for k, v in (
            ("begin", [seq - 1, 0, 0]),
            ("end", [seq, batch, hidden]),
            ("strides", [1, 1, 1]),
        )
    ]
    return ctx.step(
        "STRIDED_SLICE",
        inputs,
        tag,
        sequence,
        ctx.options_of("StridedSliceOptions"),
        shape=(1, batch, hidden),
    )


def _outputs(ctx: Lowering, node: Node, runs: list[tuple[Value, bool]]) -> None:
    """Y [seq, dirs, batch, hidden] and Y_h [dirs, batch, hidden] from each direction's run."""
    ys, last = [], []
    for index, (run, reversed_) in enumerate(runs):
        tag = f"{node.name}/dir{index}"
        last.append(_last_step(ctx, f"{tag}/last", run))
        ordered = _reverse(ctx, f"{tag}/unreversed", run) if reversed_ else run
        seq, batch, hidden = run.shape
        ys.append(_reshape(ctx, f"{tag}/y", ordered, (seq, 1, batch, hidden)))
    _finish(ctx, node.outputs[0] if node.outputs else "", ys, 1)
    _finish(ctx, node.outputs[1] if len(node.outputs) > 1 else "", last, 0)
    if len(node.outputs) > 2 and node.outputs[2] and ctx.consumers.get(node.outputs[2]):
        raise UnsupportedOp(
            f"{node.op_type} '{node.name}': the final cell state Y_c is not lowered."
        )


def _lstm_weight(ctx: Lowering, tag: str, array: np.ndarray) -> int:
    """A gate matrix: int8 per tensor (hybrid kernel) in dynamic/int8 modes, else as weights go."""
    if ctx.options.precision in ("dynamic", "int8"):
        q, params = quantize_symmetric(array, None)
        return ctx.const(tag, q, "int8", params)
    return weight_tensor(ctx, tag, np.ascontiguousarray(array), 0)[0]


def _weights(
    ctx: Lowering, node: Node, gates: int
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """Hidden size, W, R and bias (zeros when absent) of an ONNX LSTM (4 gates) or GRU (3)."""
    hidden = int(node.attrs["hidden_size"])
    w, r = ctx.graph.float_const(node.inputs[1]), ctx.graph.float_const(node.inputs[2])
    if len(node.inputs) > 3 and node.inputs[3]:
        return hidden, w, r, ctx.graph.float_const(node.inputs[3])
    return hidden, w, r, np.zeros((w.shape[0], 2 * gates * hidden), np.float32)


def lower_lstm(ctx: Lowering, node: Node) -> None:
    """LSTM → one UNIDIRECTIONAL_SEQUENCE_LSTM per direction (time-major, zero initial state)."""
    _check(ctx, node, ("Sigmoid", "Tanh", "Tanh"))
    hidden, w, r, bias = _weights(ctx, node, gates=4)
    peep = (
        ctx.graph.float_const(node.inputs[7]) if len(node.inputs) > 7 and node.inputs[7] else None
    )
    x = ctx.get(node.inputs[0], PLAIN, "float32")
    runs = []
    for index, reversed_ in enumerate(_directions(node)):
        tag = f"{node.name}/dir{index}"
        source = _reverse(ctx, f"{tag}/reversed", x) if reversed_ else x
        parts = (w[index], r[index], bias[index], None if peep is None else peep[index])
        runs.append((_lstm_op(ctx, tag, source, hidden, parts), reversed_))
    _outputs(ctx, node, runs)


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


def lower_gru(ctx: Lowering, node: Node) -> None:
    """GRU unrolled over its (static) time steps, per direction: one FULLY_CONNECTED projects
    every step's input for all three gates, one (or two) per step the hidden state."""
    _check(ctx, node, ("Sigmoid", "Tanh"))
    hidden, w, r, bias = _weights(ctx, node, gates=3)
    x = ctx.get(node.inputs[0], PLAIN, "float32")
    seq, batch, _ = x.shape
    before_reset = bool(node.attrs.get("linear_before_reset", 0))
    runs = []
    for index, reversed_ in enumerate(_directions(node)):
        cell = _GruCell(ctx, f"{node.name}/dir{index}", hidden, (w[index], r[index], bias[index]))
        steps = _unpack(ctx, f"{cell.tag}/steps", cell.project(x))
        h = None
        outs = []
        for t, step in enumerate(reversed(steps) if reversed_ else steps):
            h = cell.step(step, h, t, before_reset)
            outs.append(h)
        packed = ctx.new_value(f"{cell.tag}/seq", (seq, batch, hidden), PLAIN, "float32", None)
        options = ctx.options_of("PackOptions", valuesCount=seq, axis=0)
        ctx.emit("PACK", [o.tensor for o in outs], [packed], options)
        runs.append((packed, reversed_))
    _outputs(ctx, node, runs)


def _unpack(ctx: Lowering, tag: str, x: Value) -> list[Value]:
    seq, batch, size = x.shape
    outs = [ctx.new_value(f"{tag}/{t}", (batch, size), PLAIN, "float32", None) for t in range(seq)]
    ctx.emit("UNPACK", [x.tensor], outs, ctx.options_of("UnpackOptions", num=seq, axis=0))
    return outs


class _GruCell:
    """One GRU direction: gate weights (z, r, n) as FULLY_CONNECTED constants."""

    def __init__(self, ctx: Lowering, tag: str, hidden: int, parts: tuple) -> None:
        w, r, b = parts
        self.ctx, self.tag, self.hidden = ctx, tag, hidden
        wb, rb = b[: 3 * hidden], b[3 * hidden :]
        zeros = np.zeros(hidden, np.float32)
        # z and r add both biases; n's recurrent bias stays with its recurrent term.
        self.x_bias = wb + np.concatenate([rb[: 2 * hidden], zeros])
        self.w, self.r, self.rb_n = w, r, rb[2 * hidden :]

    def fc(self, tag: str, x: Value, weight: np.ndarray, bias: np.ndarray) -> Value:
        """x · weightᵀ + bias (keep_num_dims for a [seq, batch, in] input)."""
        ctx, keep = self.ctx, len(x.shape) > 2
        w_index, w_quant = weight_tensor(ctx, f"{tag}/w", np.ascontiguousarray(weight), 0)
        b_index = bias_tensor(ctx, f"{tag}/b", bias, None, None)
        shape = (*x.shape[:-1], weight.shape[0])
        out = ctx.new_value(tag, shape, PLAIN, "float32", None)
        options = ctx.options_of("FullyConnectedOptions", keepNumDims=keep)
        version = fc_version(x, w_quant, keep)
        ctx.emit("FULLY_CONNECTED", [x.tensor, w_index, b_index], [out], options, version)
        return out

    def project(self, x: Value) -> Value:
        """Every time step's input projection for the three gates: [seq, batch, 3·hidden]."""
        return self.fc(f"{self.tag}/xproj", x, self.w, self.x_bias)

    def split(self, tag: str, value: Value, parts: int) -> list[Value]:
        """value [batch, parts·hidden] → parts tensors [batch, hidden]."""
        shape = (value.shape[0], self.hidden)
        outs = [
            self.ctx.new_value(f"{tag}/{i}", shape, PLAIN, "float32", None) for i in range(parts)
        ]
        axis = self.ctx.const(f"{tag}/axis", np.array(1, np.int32), "int32")
        options = self.ctx.options_of("SplitOptions", numSplits=parts)
        self.ctx.emit("SPLIT", [axis, value.tensor], outs, options)
        return outs

    def step(self, xs: Value, h: Value | None, t: int, before_reset: bool) -> Value:
        """h' = n + z·(h − n); z, r = σ(x + h terms); n = tanh(xn + recurrent n term)."""
        ctx, tag = self.ctx, f"{self.tag}/t{t}"
        xz, xr, xn = self.split(f"{tag}/xsplit", xs, 3)
        if h is None:  # zero initial state: the recurrent terms are their biases
            z, r, rec = self._first_gates(tag, xz, xr, xn, before_reset)
        else:
            z, r, rec = self._gates(tag, (xz, xr, xn), h, before_reset)
        n = ctx.step("ADD", [xn.tensor, rec], f"{tag}/npre", xn)
        n = ctx.step("TANH", [n.tensor], f"{tag}/n", xn)
        if h is None:  # h' = n − z·n
            gated = ctx.step("MUL", [z.tensor, n.tensor], f"{tag}/zn", xn)
            return ctx.step("SUB", [n.tensor, gated.tensor], f"{tag}/h", xn)
        diff = ctx.step("SUB", [h.tensor, n.tensor], f"{tag}/diff", h)
        gated = ctx.step("MUL", [z.tensor, diff.tensor], f"{tag}/zdiff", h)
        return ctx.step("ADD", [n.tensor, gated.tensor], f"{tag}/h", h)

    def _first_gates(self, tag: str, xz: Value, xr: Value, xn: Value, before_reset: bool) -> tuple:
        """z, r and n's recurrent term (a tensor index) at h = 0."""
        ctx = self.ctx
        z = ctx.step("LOGISTIC", [xz.tensor], f"{tag}/z", xz)
        r = ctx.step("LOGISTIC", [xr.tensor], f"{tag}/r", xr)
        rb_n = ctx.const(f"{tag}/rbn", self.rb_n.astype(np.float32), "float32")
        if not before_reset:  # (r·0)·Rnᵀ + Rbn
            return z, r, rb_n
        return z, r, ctx.step("MUL", [r.tensor, rb_n], f"{tag}/rec", xn).tensor

    def _gates(self, tag: str, xs: tuple, h: Value, before_reset: bool) -> tuple:
        """z, r and n's recurrent term (a tensor index) from the previous hidden state."""
        ctx, hidden = self.ctx, self.hidden
        rows = 3 if before_reset else 2
        bias = np.concatenate([np.zeros(2 * hidden, np.float32), self.rb_n])[: rows * hidden]
        projected = self.fc(f"{tag}/hproj", h, self.r[: rows * hidden], bias)
        hz, hr, *hn = self.split(f"{tag}/hsplit", projected, rows)
        gates = []
        for name, x_part, h_part in (("z", xs[0], hz), ("r", xs[1], hr)):
            pre = ctx.step("ADD", [x_part.tensor, h_part.tensor], f"{tag}/{name}pre", h)
            gates.append(ctx.step("LOGISTIC", [pre.tensor], f"{tag}/{name}", h))
        z, r = gates
        if before_reset:
            return z, r, ctx.step("MUL", [r.tensor, hn[0].tensor], f"{tag}/rec", h).tensor
        reset = ctx.step("MUL", [r.tensor, h.tensor], f"{tag}/rh", h)
        return z, r, self.fc(f"{tag}/hn", reset, self.r[2 * hidden :], self.rb_n).tensor
