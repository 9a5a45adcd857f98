"""The int8 layers of a Q/DQ graph as onnxruntime's U8S8 kernels see them, and their K pairs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

# Ops whose int8 form runs on a U8S8 GEMM/conv kernel with constant int8 weights.
WEIGHTED_OPS = ("Conv", "MatMul", "Gemm")
INT16_MAX, INT16_MIN = 32767, -32768


@dataclass
class QLayer:
    """One Conv/MatMul/Gemm reading a dequantized 8-bit activation and constant int8 weights."""

    node: onnx.NodeProto
    activation: str  # the 8-bit tensor before its DequantizeLinear
    x_scale: float
    x_zero: int
    x_signed: bool
    weight_dq: onnx.NodeProto
    weight: np.ndarray  # int8 values as stored (Conv OIHW, MatMul KN, Gemm as transB says)
    w_scale: np.ndarray  # one per output channel (broadcast when per tensor)

    @property
    def rows(self) -> np.ndarray:
        """The weights as [output channel, K] int32 rows, K in the initializer's own order."""
        return weight_rows(self.node, self.weight.astype(np.int32))

    @property
    def groups(self) -> int:
        """Conv groups (1 for MatMul/Gemm)."""
        return _attr(self.node, "group", 1) if self.node.op_type == "Conv" else 1

    @property
    def depthwise(self) -> bool:
        """A Conv with one input and one output channel per group (MLAS's depthwise kernel)."""
        if self.node.op_type != "Conv":
            return False
        return self.weight.shape[1] == 1 and self.weight.shape[0] == self.groups

    @property
    def u8_zero(self) -> int:
        """The activation zero point as the kernel's unsigned input sees it (s8 is shifted)."""
        return self.x_zero + 128 if self.x_signed else self.x_zero


def weight_rows(node: onnx.NodeProto, weight: np.ndarray) -> np.ndarray:
    """A weight tensor of node as [output channel, K] rows (a view, dtype kept)."""
    if node.op_type == "Conv":
        return weight.reshape(weight.shape[0], -1)
    if node.op_type == "Gemm" and _attr(node, "transB", 0):
        return weight
    return weight.T


def conv_pads(
    node: onnx.NodeProto, kernel: tuple[int, ...], spatial: tuple[int | None, ...]
) -> list[int] | None:
    """A Conv's [begins..., ends...] pads, auto_pad SAME_* resolved from the input's spatial
    size as the ONNX spec says; None when auto_pad needs a size that is not known."""
    dims = len(kernel)
    auto = _auto_pad(node)
    ints = {a.name: list(a.ints) for a in node.attribute if a.ints}
    if auto in ("NOTSET", "VALID"):
        return ints.get("pads", [0] * 2 * dims) if auto == "NOTSET" else [0] * 2 * dims
    if len(spatial) != dims or any(not isinstance(n, int) or n <= 0 for n in spatial):
        return None
    strides = ints.get("strides", [1] * dims)
    dilations = ints.get("dilations", [1] * dims)
    total = [
        max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
        for size, k, s, d in zip(spatial, kernel, strides, dilations, strict=True)
    ]
    small = [t // 2 for t in total]  # SAME_UPPER puts the odd pad at the end
    begins = small if auto == "SAME_UPPER" else [t - h for t, h in zip(total, small, strict=True)]
    return begins + [t - b for t, b in zip(total, begins, strict=True)]


def pads_need_input_size(node: onnx.NodeProto) -> bool:
    """Whether conv_pads needs the input's spatial size (auto_pad SAME_UPPER/SAME_LOWER)."""
    return _auto_pad(node) in ("SAME_UPPER", "SAME_LOWER")


def _auto_pad(node: onnx.NodeProto) -> str:
    return next((a.s.decode() for a in node.attribute if a.name == "auto_pad"), "NOTSET")


def transposed_input(node: onnx.NodeProto) -> bool:
    """A Gemm reading its activation as [K, M] (transA): the kernel's K runs along rows."""
    return node.op_type == "Gemm" and bool(_attr(node, "transA", 0))


def _attr(node: onnx.NodeProto, name: str, default: int) -> int:
    return next((a.i for a in node.attribute if a.name == name), default)


def find_qlayers(model: onnx.ModelProto) -> list[QLayer]:
    """Every weighted op whose data input is DQ(8-bit tensor) and weight DQ(int8 constant)."""
    producer = {o: n for n in model.graph.node for o in n.output}
    inits = {i.name: i for i in model.graph.initializer}
    found = []
    for node in model.graph.node:
        if node.op_type not in WEIGHTED_OPS or len(node.input) < 2:
            continue
        x_dq, w_dq = producer.get(node.input[0]), producer.get(node.input[1])
        if not (_is_dq(x_dq) and _is_dq(w_dq) and w_dq.input[0] in inits):
            continue
        weight = numpy_helper.to_array(inits[w_dq.input[0]])
        x_params = [_constant(name, inits, producer) for name in x_dq.input[1:3]]
        if weight.dtype != np.int8 or x_params[0] is None or x_params[0].size != 1:
            continue
        zero = x_params[1] if len(x_params) > 1 and x_params[1] is not None else np.uint8(0)
        w_scale = numpy_helper.to_array(inits[w_dq.input[1]]).astype(np.float64).reshape(-1)
        layer = QLayer(
            node,
            x_dq.input[0],
            float(x_params[0].reshape(())),
            int(zero.reshape(())),
            zero.dtype == np.int8,
            w_dq,
            weight,
            w_scale,
        )
        if w_scale.size not in (1, layer.rows.shape[0]) or not _scaled_per_output(layer):
            continue  # scales along K: no U8S8 kernel takes them, the op stays float
        layer.w_scale = np.broadcast_to(w_scale, (layer.rows.shape[0],)).copy()
        found.append(layer)
    return found


def runs_int8(model: onnx.ModelProto, layer: QLayer) -> bool:
    """Whether onnxruntime (1.2x, ORT_ENABLE_ALL) runs the layer on its int8 kernels.

    Found under qemu -cpu Haswell: MatMul and Gemm always fuse (QLinearMatMul or
    MatMulIntegerToFloat, QGemm); a Conv only when its output goes to one QuantizeLinear,
    directly or through a Relu/Clip that the Q makes redundant (else it runs as float Conv).
    """
    if layer.node.op_type != "Conv":
        return True
    consumers = _consumers(model)
    outputs = {o.name for o in model.graph.output}
    tensor = layer.node.output[0]
    for _ in range(2):
        users = consumers.get(tensor, [])
        if tensor in outputs or len(users) != 1:
            return False
        if users[0].op_type == "QuantizeLinear":
            return True
        if not _redundant_before(model, users[0], consumers):
            return False
        tensor = users[0].output[0]
    return False


def _consumers(model: onnx.ModelProto) -> dict[str, list[onnx.NodeProto]]:
    found: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            found.setdefault(name, []).append(node)
    return found


def _redundant_before(model: onnx.ModelProto, node: onnx.NodeProto, consumers: dict) -> bool:
    """A Relu/Clip whose only consumer, a QuantizeLinear, clamps at least as tightly."""
    users = consumers.get(node.output[0], [])
    if node.op_type not in ("Relu", "Clip") or len(users) != 1:
        return False
    q = users[0]
    if q.op_type != "QuantizeLinear" or len(q.input) < 3:
        return False
    inits = {i.name: i for i in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    scale, zero = (_constant(name, inits, producer) for name in q.input[1:3])
    if scale is None or zero is None or scale.size != 1:
        return False
    info = np.iinfo(zero.dtype)
    low = (info.min - int(zero.reshape(()))) * float(scale.reshape(()))
    high = (info.max - int(zero.reshape(()))) * float(scale.reshape(()))
    if node.op_type == "Relu":
        return low == 0.0
    bounds = [_constant(name, inits, producer) for name in node.input[1:3]]
    clip_low = float(bounds[0]) if bounds and bounds[0] is not None else -np.inf
    clip_high = float(bounds[1]) if len(bounds) > 1 and bounds[1] is not None else np.inf
    return clip_low <= low and high <= clip_high


def _scaled_per_output(layer: QLayer) -> bool:
    """Whether per-channel weight scales run along the output channels (per tensor: True)."""
    if layer.w_scale.size == 1:
        return True
    axis = _attr(layer.weight_dq, "axis", 1) % layer.weight.ndim
    if layer.node.op_type == "Conv":
        return axis == 0
    transposed = layer.node.op_type == "Gemm" and _attr(layer.node, "transB", 0)
    return axis == (0 if transposed else layer.weight.ndim - 1)


def _is_dq(node: onnx.NodeProto | None) -> bool:
    return node is not None and node.op_type == "DequantizeLinear"


def _constant(name: str, inits: dict, producer: dict) -> np.ndarray | None:
    if name in inits:
        return numpy_helper.to_array(inits[name])
    node = producer.get(name)
    if node is not None and node.op_type == "Constant":
        return numpy_helper.to_array(node.attribute[0].t)
    return None


def kernel_pairs(layer: QLayer) -> np.ndarray:
    """[pairs, 2] indices into a row of `layer.rows` that the AVX2 kernel sums in one int16
    (-1: a zero the kernel pads with); empty for kernels that sum in int32 (depthwise)."""
    if layer.depthwise:
        return np.zeros((0, 2), np.int64)
    if layer.node.op_type == "Conv":
        cin, taps = layer.weight.shape[1], int(np.prod(layer.weight.shape[2:]))
        # The kernel reads K as (tap, input channel), channels fastest: NHWC im2col order.
        order = (np.arange(cin)[None, :] * taps + np.arange(taps)[:, None]).reshape(-1)
    else:
        order = np.arange(layer.rows.shape[1])
    if order.size % 2:
        order = np.append(order, -1)
    return order.reshape(-1, 2)


def pair_sums_bound(layer: QLayer, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per [channel, pair]: the largest and smallest a1*w1 + a2*w2 over u8 inputs a."""
    rows = np.concatenate([layer.rows, np.zeros((layer.rows.shape[0], 1), np.int32)], axis=1)
    w = rows[:, pairs]  # [OC, P, 2]
    high = 255 * np.clip(w, 0, None).sum(-1)
    low = 255 * np.clip(w, None, 0).sum(-1)
    return high, low


def pairs_at_risk(layer: QLayer, pairs: np.ndarray | None = None) -> np.ndarray:
    """[channel, pair] mask of the pairs whose int16 sum can saturate for some u8 input."""
    pairs = kernel_pairs(layer) if pairs is None else pairs
    high, low = pair_sums_bound(layer, pairs)
    return (high > INT16_MAX) | (low < INT16_MIN)
