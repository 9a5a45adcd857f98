"""Make a Q/DQ model's int8 weights safe for x86 kernels that sum u8×s8 pairs in int16."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from calibration.activations import iterate_activations
from calibration.dataset import Dataset
from targets.arithmetic.compensate import input_moment
from targets.arithmetic.layers import find_qlayers, pairs_at_risk
from targets.arithmetic.saturation import make_saturation_safe

MOMENT_SAMPLES = 128  # calibration samples whose layer inputs weigh the fix's output error


def apply_saturation_safe(dst: Path, fp32: Path, data: Dataset, batch_size: int = 16) -> dict:
    """Rewrite dst's weights at risk (rounded again from fp32's float weights, weighed by
    each layer's input moments on calibration data) in place; the int8 pass's record."""
    model = onnx.load(str(dst))
    safe, layers = make_saturation_safe(
        model, _float_weights(model, fp32), _moments(model, fp32, data, batch_size)
    )
    if layers:
        onnx.save(safe, str(dst))
    return {
        "applied": bool(layers),
        "layers": layers,
        "why": "the target's artifacts may run on x86 kernels without VNNI, which add pairs "
        "of u8×s8 products in a saturating int16; only weights whose pairs can leave it "
        "were changed, the rest keep 8 bits",
    }


def _float_weights(model: onnx.ModelProto, fp32: Path) -> dict[str, np.ndarray]:
    """The float originals of the quantized initializers, by the quantized name."""
    floats = {i.name: i for i in onnx.load(str(fp32)).graph.initializer}
    weights = {}
    for init in model.graph.initializer:
        # onnxruntime's quantizer names a quantized weight `<float name>_quantized`.
        original = floats.get(init.name.removesuffix("_quantized"))
        if original is not None:
            weights[init.name] = numpy_helper.to_array(original)
    return weights


def _moments(model: onnx.ModelProto, fp32: Path, data: Dataset, batch: int) -> dict:
    """E[x x^T] of the float input of every layer at risk, by node name."""
    producer = {o: n for n in model.graph.node for o in n.output}
    wanted = {}
    for layer in find_qlayers(model):
        q = producer.get(layer.activation)
        if q is not None and q.op_type == "QuantizeLinear" and pairs_at_risk(layer).any():
            wanted.setdefault(q.input[0], []).append(layer)
    sums: dict[str, list] = {}
    for values, _ in iterate_activations(fp32, data.take(MOMENT_SAMPLES), batch, list(wanted)):
        for name, value in values.items():
            for layer in wanted.get(name, []):
                found = input_moment(layer, np.asarray(value, np.float32))
                if found is not None:
                    total = sums.setdefault(layer.node.name, [0.0, 0])
                    total[0], total[1] = total[0] + found[0], total[1] + found[1]
    return {name: moment / max(count, 1) for name, (moment, count) in sums.items()}
