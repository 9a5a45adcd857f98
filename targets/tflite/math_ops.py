"""Float math of sequence and audio models: unary functions, comparisons, Where, Cast, Pow, Erf.

These ops run in float (in an int8 model `ctx.get` puts a DEQUANTIZE before them and the next
quantized reader a QUANTIZE after: a float island). Ints and bools pass through as they are.
"""

from __future__ import annotations

from foundation.errors import UnsupportedOp
from targets.tflite.emit import Lowering, Value
from targets.tflite.graph import ONNX_DTYPES, Node
from targets.tflite.layout import Layout
from targets.tflite.operands import operands
from targets.tflite.writer import TENSOR_TYPES

UNARY = {
    "Sqrt": "SQRT",
    "Neg": "NEG",
    "Log": "LOG",
    "Exp": "EXP",
    "Abs": "ABS",
    "Floor": "FLOOR",
    "Ceil": "CEIL",
    "Round": "ROUND",
    "Sin": "SIN",
    "Cos": "COS",
    "Sign": "SIGN",
    "Not": "LOGICAL_NOT",
    "Elu": "ELU",
    "Gelu": "GELU",
}
# Ops whose LiteRT int8 kernel accepts the calibrated output params.
INT8_UNARY = {"Gelu"}
BINARY = {
    "Equal": "EQUAL",
    "Less": "LESS",
    "Greater": "GREATER",
    "LessOrEqual": "LESS_EQUAL",
    "GreaterOrEqual": "GREATER_EQUAL",
    "And": "LOGICAL_AND",
    "Or": "LOGICAL_OR",
    "Max": "MAXIMUM",
    "Min": "MINIMUM",
    "Pow": "POW",
}
# Pow with these constant exponents is one cheaper op (or none).
POW_SHORTCUTS = {2.0: "SQUARE", 0.5: "SQRT", -0.5: "RSQRT", 1.0: None}
# Abramowitz & Stegun 7.1.26: |erf error| <= 1.5e-7.
ERF_P = 0.3275911
ERF_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def _gelu_options(ctx: Lowering, node: Node) -> tuple[int, object]:
    """GELU exact or with ONNX's approximate='tanh' (TFLite's approximate flag)."""
    approximate = node.attrs.get("approximate", b"none") in (b"tanh", "tanh")
    return ctx.options_of("GeluOptions", approximate=approximate)


def _emit_as(ctx: Lowering, node: Node, op: str, inputs: list[int], layout: Layout) -> Value:
    out = ctx.output(node.outputs[0], layout, False)
    options = _gelu_options(ctx, node) if op == "GELU" else None
    ctx.emit(op, inputs, [out], options)
    return out


def lower_unary_math(ctx: Lowering, node: Node) -> None:
    """Sqrt/Neg/Log/Exp/Abs/Floor/Ceil/Round/Sin/Cos/Sign/Not/Elu/Gelu → one TFLite op."""
    if node.op_type == "Elu" and float(node.attrs.get("alpha", 1.0)) != 1.0:
        _scaled_elu(ctx, node, float(node.attrs["alpha"]), 1.0)
        return
    if node.op_type in INT8_UNARY and ctx.quantized(node):
        _int8_unary(ctx, node)
        return
    layout, inputs = operands(ctx, node, node.inputs[:1])
    _emit_as(ctx, node, UNARY[node.op_type], inputs, layout)


def _int8_unary(ctx: Lowering, node: Node) -> None:
    """An op with an int8 kernel that takes any output params (GELU): stays integer."""
    x = ctx.get(node.inputs[0], ctx.preferred_layout(node.inputs[0]), "int8")
    out = ctx.output(node.outputs[0], x.layout, True)
    options = _gelu_options(ctx, node) if node.op_type == "Gelu" else None
    ctx.emit(UNARY[node.op_type], [x.tensor], [out], options)


def lower_binary_math(ctx: Lowering, node: Node) -> None:
    """Comparisons, logical ops, Max/Min (two inputs) and Pow, with numpy broadcasting."""
    if len(node.inputs) != 2:
        raise UnsupportedOp(
            f"{node.op_type} '{node.name}' has {len(node.inputs)} inputs; tflite needs 2."
        )
    if node.op_type == "Pow" and ctx.graph.is_const(node.inputs[1]):
        exponent = ctx.graph.float_const(node.inputs[1]).reshape(-1)
        if exponent.size == 1 and float(exponent[0]) in POW_SHORTCUTS:
            _pow_shortcut(ctx, node, POW_SHORTCUTS[float(exponent[0])])
            return
    if node.op_type == "Pow":
        _lower_pow(ctx, node)
        return
    layout, inputs = operands(ctx, node, node.inputs)
    _emit_as(ctx, node, BINARY[node.op_type], inputs, layout)


def _lower_pow(ctx: Lowering, node: Node) -> None:
    """POW needs both operands of the base's type (float32 or int32): a constant exponent is
    converted, a runtime one goes through CAST."""
    base, exponent = node.inputs
    dtype = ctx.plain_dtype(base) if not ctx.graph.is_const(base) else "float32"
    if dtype not in ("float32", "int32"):
        raise UnsupportedOp(f"Pow '{node.name}' on {dtype}; tflite's POW takes float32 or int32.")
    layout, inputs = operands(ctx, node, [base])
    if ctx.graph.is_const(exponent):
        array = ctx.graph.float_const(exponent).astype(dtype)
        rank = len(ctx.shape(node.outputs[0]))
        array = array.reshape((1,) * (rank - array.ndim) + array.shape)
        inputs.append(ctx.const(f"{node.name}/exponent", layout.apply(array), dtype))
    else:
        value = ctx.get(
            exponent,
            layout if len(ctx.shape(exponent)) == len(ctx.shape(base)) else None,
            "float32",
        )
        if value.dtype != dtype:
            cast = ctx.new_value(f"{node.name}/exponent", value.shape, value.layout, dtype, None)
            options = ctx.options_of(
                "CastOptions",
                inDataType=TENSOR_TYPES[value.dtype],
                outDataType=TENSOR_TYPES[dtype],
            )
            ctx.emit("CAST", [value.tensor], [cast], options)
            value = cast
        inputs.append(value.tensor)
    _emit_as(ctx, node, "POW", inputs, layout)


def _pow_shortcut(ctx: Lowering, node: Node, op: str | None) -> None:
    if op is None:
        ctx.values[node.outputs[0]] = ctx.get(node.inputs[0], None, "float32")
        return
    layout, inputs = operands(ctx, node, node.inputs[:1])
    _emit_as(ctx, node, op, inputs, layout)


def lower_reciprocal(ctx: Lowering, node: Node) -> None:
    """Reciprocal → DIV(1, x)."""
    layout, inputs = operands(ctx, node, node.inputs[:1])
    _emit_as(ctx, node, "DIV", [ctx.scalar(f"{node.name}/one", 1.0), *inputs], layout)


def lower_where(ctx: Lowering, node: Node) -> None:
    """Where(cond, a, b) → SELECT_V2 (broadcasting)."""
    layout, inputs = operands(ctx, node, node.inputs)
    _emit_as(ctx, node, "SELECT_V2", inputs, layout)


def lower_is_nan(ctx: Lowering, node: Node) -> None:
    """IsNaN(x) → NOT_EQUAL(x, x) (NaN is the only value unequal to itself)."""
    layout, inputs = operands(ctx, node, node.inputs[:1])
    _emit_as(ctx, node, "NOT_EQUAL", inputs * 2, layout)


def lower_cast(ctx: Lowering, node: Node) -> None:
    """Cast → CAST between float32/int32/int64/bool/uint8 (same dtype: no op)."""
    target = ONNX_DTYPES.get(int(node.attrs["to"]))
    source = ctx.get(node.inputs[0], None, "float32")
    if target not in TENSOR_TYPES or target in ("float16", "int8"):
        raise UnsupportedOp(
            f"Cast '{node.name}' to ONNX type {node.attrs['to']} is not lowered to tflite."
        )
    if target == source.dtype:
        ctx.values[node.outputs[0]] = source
        return
    out = ctx.new_value(node.outputs[0], ctx.shape(node.outputs[0]), source.layout, target, None)
    ctx.values[node.outputs[0]] = out
    options = ctx.options_of(
        "CastOptions", inDataType=TENSOR_TYPES[source.dtype], outDataType=TENSOR_TYPES[target]
    )
    ctx.emit("CAST", [source.tensor], [out], options)


def lower_erf(ctx: Lowering, node: Node) -> None:
    """Erf (no TFLite op): sign(x)·(1 − poly(t)·exp(−x²)), t = 1/(1 + p|x|); error ≤ 1.5e-7."""
    layout, (x,) = operands(ctx, node, node.inputs[:1])
    like = Value(x, layout, "float32", None, ctx.shape(node.outputs[0]))
    tag = node.name
    t = ctx.step("ABS", [x], f"{tag}/abs", like)
    t = ctx.step("MUL", [t.tensor, ctx.scalar(f"{tag}/p", ERF_P)], f"{tag}/px", like)
    t = ctx.step("ADD", [t.tensor, ctx.scalar(f"{tag}/one", 1.0)], f"{tag}/den", like)
    t = ctx.step("DIV", [ctx.scalar(f"{tag}/one_n", 1.0), t.tensor], f"{tag}/t", like)
    poly = ctx.step("MUL", [t.tensor, ctx.scalar(f"{tag}/a5", ERF_A[4])], f"{tag}/h4", like)
    for index in (3, 2, 1, 0):
        poly = ctx.step(
            "ADD",
            [poly.tensor, ctx.scalar(f"{tag}/a{index + 1}", ERF_A[index])],
            f"{tag}/s{index}",
            like,
        )
        poly = ctx.step("MUL", [poly.tensor, t.tensor], f"{tag}/h{index}", like)
    square = ctx.step("SQUARE", [x], f"{tag}/sq", like)
    gauss = ctx.step(
        "EXP", [ctx.step("NEG", [square.tensor], f"{tag}/nsq", like).tensor], f"{tag}/exp", like
    )
    tail = ctx.step("MUL", [poly.tensor, gauss.tensor], f"{tag}/tail", like)
    magnitude = ctx.step("SUB", [ctx.scalar(f"{tag}/one_m", 1.0), tail.tensor], f"{tag}/mag", like)
    sign = ctx.step("SIGN", [x], f"{tag}/sign", like)
    out = ctx.output(node.outputs[0], layout, False)
    ctx.emit("MUL", [sign.tensor, magnitude.tensor], [out])


def lower_selu(ctx: Lowering, node: Node) -> None:
    """Selu → gamma·(max(x, 0) + alpha·(exp(min(x, 0)) − 1))."""
    alpha = float(node.attrs.get("alpha", 1.67326319217681884765625))
    gamma = float(node.attrs.get("gamma", 1.05070102214813232421875))
    _scaled_elu(ctx, node, alpha, gamma)


def _scaled_elu(ctx: Lowering, node: Node, alpha: float, gamma: float) -> None:
    """gamma·(max(x, 0) + alpha·(exp(min(x, 0)) − 1)): Elu with any alpha, and Selu."""
    layout, (x,) = operands(ctx, node, node.inputs[:1])
    like = Value(x, layout, "float32", None, ctx.shape(node.outputs[0]))
    tag, zero = node.name, ctx.scalar(f"{node.name}/zero", 0.0)
    negative = ctx.step("MINIMUM", [x, zero], f"{tag}/neg", like)
    expm1 = ctx.step("EXP", [negative.tensor], f"{tag}/exp", like)
    expm1 = ctx.step("SUB", [expm1.tensor, ctx.scalar(f"{tag}/one", 1.0)], f"{tag}/expm1", like)
    scaled = ctx.step("MUL", [expm1.tensor, ctx.scalar(f"{tag}/alpha", alpha)], f"{tag}/sc", like)
    positive = ctx.step("MAXIMUM", [x, zero], f"{tag}/pos", like)
    total = ctx.step("ADD", [positive.tensor, scaled.tensor], f"{tag}/sum", like)
    out = ctx.output(node.outputs[0], layout, False)
    ctx.emit("MUL", [total.tensor, ctx.scalar(f"{tag}/gamma", gamma)], [out])


def lower_softplus(ctx: Lowering, node: Node) -> None:
    """Softplus → max(x, 0) + log(1 + exp(−|x|)) (no overflow for large |x|)."""
    layout, (x,) = operands(ctx, node, node.inputs[:1])
    like = Value(x, layout, "float32", None, ctx.shape(node.outputs[0]))
    positive, tail = _softplus_terms(ctx, x, like, node.name)
    out = ctx.output(node.outputs[0], layout, False)
    ctx.emit("ADD", [positive, tail], [out])


def lower_mish(ctx: Lowering, node: Node) -> None:
    """Mish → x · tanh(softplus(x)) (TFLite has no MISH builtin)."""
    layout, (x,) = operands(ctx, node, node.inputs[:1])
    like = Value(x, layout, "float32", None, ctx.shape(node.outputs[0]))
    positive, tail = _softplus_terms(ctx, x, like, node.name)
    soft = ctx.step("ADD", [positive, tail], f"{node.name}/softplus", like)
    gate = ctx.step("TANH", [soft.tensor], f"{node.name}/tanh", like)
    out = ctx.output(node.outputs[0], layout, False)
    ctx.emit("MUL", [x, gate.tensor], [out])


def _softplus_terms(ctx: Lowering, x: int, like: Value, tag: str) -> tuple[int, int]:
    """The tensors max(x, 0) and log(1 + exp(−|x|)), whose sum is softplus(x)."""
    tail = ctx.step("NEG", [ctx.step("ABS", [x], f"{tag}/abs", like).tensor], f"{tag}/nabs", like)
    tail = ctx.step("EXP", [tail.tensor], f"{tag}/exp", like)
    tail = ctx.step("ADD", [tail.tensor, ctx.scalar(f"{tag}/one", 1.0)], f"{tag}/1p", like)
    tail = ctx.step("LOG", [tail.tensor], f"{tag}/log", like)
    positive = ctx.step("RELU", [x], f"{tag}/relu", like)
    return positive.tensor, tail.tensor


def lower_softsign(ctx: Lowering, node: Node) -> None:
    """Softsign → x / (1 + |x|)."""
    layout, (x,) = operands(ctx, node, node.inputs[:1])
    like = Value(x, layout, "float32", None, ctx.shape(node.outputs[0]))
    den = ctx.step("ABS", [x], f"{node.name}/abs", like)
    den = ctx.step(
        "ADD", [den.tensor, ctx.scalar(f"{node.name}/one", 1.0)], f"{node.name}/den", like
    )
    out = ctx.output(node.outputs[0], layout, False)
    ctx.emit("DIV", [x, den.tensor], [out])


def lower_clip_runtime(ctx: Lowering, node: Node) -> None:
    """Clip with runtime bounds → MAXIMUM(x, low) then MINIMUM(·, high) (absent bounds skipped)."""
    bounds = [
        (op, name)
        for op, name in zip(("MAXIMUM", "MINIMUM"), node.inputs[1:3], strict=False)
        if name
    ]
    layout, tensors = operands(ctx, node, [node.inputs[0]] + [name for _, name in bounds])
    like = Value(tensors[0], layout, "float32", None, ctx.shape(node.outputs[0]))
    current = tensors[0]
    for index, ((op, _), bound) in enumerate(zip(bounds, tensors[1:], strict=True)):
        if index < len(bounds) - 1:
            current = ctx.step(op, [current, bound], f"{node.name}/{op.lower()}", like).tensor
            continue
        out = ctx.output(node.outputs[0], layout, False)
        ctx.emit(op, [current, bound], [out])
