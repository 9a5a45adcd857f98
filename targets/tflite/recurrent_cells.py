"""Unrolled recurrent cells: GRU, and LSTM where the builtin op cannot serve (a runtime initial
state, a read final cell state, clip, input_forget, other activations).

Each time step is FULLY_CONNECTED + LOGISTIC/TANH + MUL/ADD on plain tensors, so an initial
state is an ordinary input tensor and the final state an ordinary output: a streaming model
(Silero VAD, keyword spotters) feeds its state each run through the SignatureDef like any
other input, and XNNPACK delegates every op (it leaves UNIDIRECTIONAL_SEQUENCE_LSTM to the
builtin kernel). A step whose state is zero drops its recurrent terms (closed form).
"""

from __future__ import annotations

import numpy as np

from foundation.errors import UnsupportedOp
from targets.tflite.dense import fc_version
from targets.tflite.emit import Lowering, Value
from targets.tflite.layout import PLAIN
from targets.tflite.weights import bias_tensor, weight_tensor

# ONNX recurrent activations → the TFLite op computing them (alpha/beta-free ones only).
ACTIVATIONS = {"Sigmoid": "LOGISTIC", "Tanh": "TANH", "Relu": "RELU"}


def activation_ops(node_name: str, names: tuple[str, ...]) -> tuple[str, ...]:
    """TFLite ops for an ONNX activations list; refuses those needing alpha/beta."""
    missing = [n for n in names if n not in ACTIVATIONS]
    if missing:
        raise UnsupportedOp(
            f"Recurrent node '{node_name}': activations {missing} are not lowered to tflite "
            f"(supported: {sorted(ACTIVATIONS)})."
        )
    return tuple(ACTIVATIONS[n] for n in names)


def unpack_steps(ctx: Lowering, tag: str, x: Value) -> list[Value]:
    """[n, batch, size] → n tensors [batch, size] (time steps, or directions of a state)."""
    count, batch, size = x.shape
    outs = [
        ctx.new_value(f"{tag}/{t}", (batch, size), PLAIN, "float32", None) for t in range(count)
    ]
    ctx.emit("UNPACK", [x.tensor], outs, ctx.options_of("UnpackOptions", num=count, axis=0))
    return outs


def pack_steps(ctx: Lowering, tag: str, steps: list[Value]) -> Value:
    """Per-step [batch, hidden] tensors → [seq, batch, hidden]."""
    batch, hidden = steps[0].shape
    packed = ctx.new_value(tag, (len(steps), batch, hidden), PLAIN, "float32", None)
    options = ctx.options_of("PackOptions", valuesCount=len(steps), axis=0)
    ctx.emit("PACK", [s.tensor for s in steps], [packed], options)
    return packed


class Cell:
    """What every unrolled cell shares: constant FULLY_CONNECTEDs, gate splits, clipping."""

    def __init__(self, ctx: Lowering, tag: str, hidden: int, clip: float | None = None) -> None:
        self.ctx, self.tag, self.hidden, self.clip = ctx, tag, hidden, clip

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

    def act(self, op: str, tag: str, value: Value, clipped: bool = True) -> Value:
        """An activation f(value), its input clipped to [-clip, clip] first when clip is set."""
        if self.clip is not None and clipped:
            for bound_op, bound in (("MINIMUM", self.clip), ("MAXIMUM", -self.clip)):
                const = self.ctx.const(
                    f"{tag}/{bound_op}", np.array([bound], np.float32), "float32"
                )
                value = self.ctx.step(bound_op, [value.tensor, const], f"{tag}/{bound_op}", value)
        return self.ctx.step(op, [value.tensor], tag, value)

    def binary(self, op: str, tag: str, a: Value, b: Value | int) -> Value:
        """ADD/SUB/MUL of a with a tensor (Value) or a tensor index."""
        other = b.tensor if isinstance(b, Value) else b
        return self.ctx.step(op, [a.tensor, other], tag, a)

    def const(self, tag: str, array: np.ndarray) -> int:
        """A float constant operand."""
        return self.ctx.const(tag, array.astype(np.float32), "float32")


class LstmCell(Cell):
    """One LSTM direction: ONNX gate blocks (i, o, f, c) as FULLY_CONNECTED constants."""

    def __init__(self, ctx: Lowering, tag: str, hidden: int, parts: tuple, attrs: dict) -> None:
        w, r, b, peep = parts
        super().__init__(ctx, tag, hidden, attrs.get("clip"))
        self.w, self.r, self.peep = w, r, peep
        self.x_bias = b[: 4 * hidden] + b[4 * hidden :]
        self.f, self.g, self.h = attrs["activations"]
        self.input_forget = bool(attrs.get("input_forget", 0))

    def project(self, x: Value) -> Value:
        """Every time step's input projection for the four gates: [seq, batch, 4·hidden]."""
        return self.fc(f"{self.tag}/xproj", x, self.w, self.x_bias)

    def _peephole(self, tag: str, gate: Value, c: Value | None, index: int) -> Value:
        """gate + P[index]·c (ONNX peephole order i, o, f); unchanged without P or c."""
        if self.peep is None or c is None:
            return gate
        weight = self.peep[index * self.hidden : (index + 1) * self.hidden]
        scaled = self.binary("MUL", f"{tag}/peep", c, self.const(f"{tag}/p", weight))
        return self.binary("ADD", f"{tag}/peeped", gate, scaled)

    def step(self, xs: Value, state: tuple, t: int) -> tuple[Value, Value]:
        """(h', c'): i, f = f(· + P·c), c' = f·c + i·g(·), o = f(· + P·c'), h' = o·h(c')."""
        h, c = state
        tag = f"{self.tag}/t{t}"
        pre = xs
        if h is not None:
            zeros = np.zeros(4 * self.hidden, np.float32)
            pre = self.binary("ADD", f"{tag}/pre", xs, self.fc(f"{tag}/hproj", h, self.r, zeros))
        i, o, f, g = self.split(f"{tag}/gates", pre, 4)
        i = self.act(self.f, f"{tag}/i", self._peephole(f"{tag}/i", i, c, 0))
        if self.input_forget:  # f = 1 − i
            f = self.ctx.step(
                "SUB", [self.const(f"{tag}/one", np.ones(1)), i.tensor], f"{tag}/f", i
            )
        else:
            f = self.act(self.f, f"{tag}/f", self._peephole(f"{tag}/f", f, c, 2))
        cell = self.binary("MUL", f"{tag}/ig", i, self.act(self.g, f"{tag}/g", g))
        if c is not None:
            cell = self.binary("ADD", f"{tag}/c", cell, self.binary("MUL", f"{tag}/fc", f, c))
        o = self.act(self.f, f"{tag}/o", self._peephole(f"{tag}/o", o, cell, 1))
        return self.binary(
            "MUL", f"{tag}/h", o, self.act(self.h, f"{tag}/hc", cell, clipped=False)
        ), cell


class GruCell(Cell):
    """One GRU direction: gate weights (z, r, n) as FULLY_CONNECTED constants."""

    def __init__(self, ctx: Lowering, tag: str, hidden: int, parts: tuple, attrs: dict) -> None:
        w, r, b = parts
        super().__init__(ctx, tag, hidden, attrs.get("clip"))
        wb, rb = b[: 3 * hidden], b[3 * hidden :]
        zeros = np.zeros(hidden, np.float32)
        # z and r add both biases; n's recurrent bias stays with its recurrent term.
        self.x_bias = wb + np.concatenate([rb[: 2 * hidden], zeros])
        self.w, self.r, self.rb_n = w, r, rb[2 * hidden :]
        self.f, self.g = attrs["activations"]
        self.before_reset = bool(attrs.get("linear_before_reset", 0))

    def project(self, x: Value) -> Value:
        """Every time step's input projection for the three gates: [seq, batch, 3·hidden]."""
        return self.fc(f"{self.tag}/xproj", x, self.w, self.x_bias)

    def step(self, xs: Value, state: tuple, t: int) -> tuple[Value, None]:
        """h' = n + z·(h − n); z, r = f(x + h terms); n = g(xn + recurrent n term)."""
        (h, _), tag = state, f"{self.tag}/t{t}"
        xz, xr, xn = self.split(f"{tag}/xsplit", xs, 3)
        if h is None:  # zero state: the recurrent terms are their biases
            z, r, rec = self._first_gates(tag, xz, xr, xn)
        else:
            z, r, rec = self._gates(tag, (xz, xr, xn), h)
        n = self.act(self.g, f"{tag}/n", self.binary("ADD", f"{tag}/npre", xn, rec))
        if h is None:  # h' = n − z·n
            return self.binary("SUB", f"{tag}/h", n, self.binary("MUL", f"{tag}/zn", z, n)), None
        diff = self.binary("SUB", f"{tag}/diff", h, n)
        return self.binary("ADD", f"{tag}/h", n, self.binary("MUL", f"{tag}/zd", z, diff)), None

    def _first_gates(self, tag: str, xz: Value, xr: Value, xn: Value) -> tuple:
        """z, r and n's recurrent term (a tensor index) at h = 0."""
        z, r = self.act(self.f, f"{tag}/z", xz), self.act(self.f, f"{tag}/r", xr)
        rb_n = self.const(f"{tag}/rbn", self.rb_n)
        if not self.before_reset:  # (r·0)·Rnᵀ + Rbn
            return z, r, rb_n
        return z, r, self.binary("MUL", f"{tag}/rec", r, rb_n).tensor

    def _gates(self, tag: str, xs: tuple, h: Value) -> tuple:
        """z, r and n's recurrent term (a tensor index) from the previous hidden state."""
        hidden, rows = self.hidden, 3 if self.before_reset else 2
        bias = np.concatenate([np.zeros(2 * hidden, np.float32), self.rb_n])[: rows * hidden]
        projected = self.fc(f"{tag}/hproj", h, self.r[: rows * hidden], bias)
        hz, hr, *hn = self.split(f"{tag}/hsplit", projected, rows)
        z = self.act(self.f, f"{tag}/z", self.binary("ADD", f"{tag}/zpre", xs[0], hz))
        r = self.act(self.f, f"{tag}/r", self.binary("ADD", f"{tag}/rpre", xs[1], hr))
        if self.before_reset:
            return z, r, self.binary("MUL", f"{tag}/rec", r, hn[0]).tensor
        reset = self.binary("MUL", f"{tag}/rh", r, h)
        return z, r, self.fc(f"{tag}/hn", reset, self.r[2 * hidden :], self.rb_n).tensor


def run_cell(cell: Cell, x: Value, state: tuple, reverse: bool) -> tuple[Value, tuple]:
    """Unroll cell over x [seq, batch, in] from state (h, c; None = zero): Y (in input time
    order) and the final (h, c)."""
    steps = unpack_steps(cell.ctx, f"{cell.tag}/steps", cell.project(x))
    outs = []
    for t, step in enumerate(reversed(steps) if reverse else steps):
        state = cell.step(step, state, t)
        outs.append(state[0])
    ordered = outs[::-1] if reverse else outs
    return pack_steps(cell.ctx, f"{cell.tag}/seq", ordered), state
