"""Make a Q/DQ model's int8 weights safe for x86 kernels that sum u8×s8 pairs in int16."""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import numpy_helper

from targets.arithmetic.saturation import make_saturation_safe


def apply_saturation_safe(dst: Path, fp32: Path) -> dict:
    """Rewrite dst's weights at risk (rounded again from fp32's float weights) in place;
    the int8 pass's record of it: each layer at risk, what was done and why."""
    model = onnx.load(str(dst))
    floats = {i.name: i for i in onnx.load(str(fp32)).graph.initializer}
    weights = {}
    for init in model.graph.initializer:
        # onnxruntime's quantizer names a quantized weight `<float name>_quantized`.
        original = floats.get(init.name.removesuffix("_quantized"))
        if original is not None:
            weights[init.name] = numpy_helper.to_array(original)
    safe, layers = make_saturation_safe(model, weights)
    if layers:
        onnx.save(safe, str(dst))
    return {
        "applied": bool(layers),
        "layers": layers,
        "why": "the target's artifacts may run on x86 kernels without VNNI, which add pairs "
        "of u8×s8 products in a saturating int16; only weights whose pairs can leave it "
        "were changed, the rest keep 8 bits",
    }
