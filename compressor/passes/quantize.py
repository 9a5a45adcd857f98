"""Graph quantization passes: static int8 Q/DQ, dynamic int8 and fp16, all via onnxruntime."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import onnx
from onnxruntime.quantization import (
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)

from calibration.activations import collect_stats
from calibration.dataset import Dataset
from calibration.ranges import range_method, write_ranges_cache
from calibration.reader import DatasetReader
from compressor.passes.bias_correction import correct_biases
from compressor.passes.float_tensors import drop_qdq
from compressor.passes.int8_prepare import Prepared, prepare_for_int8
from compressor.passes.placement import keep_fused_inputs_float, select_nodes
from compressor.passes.qdq_rules import nodes_reading_constants, tensors_kept_float
from compressor.passes.saturation_safe import apply_saturation_safe
from compressor.passes.smooth import SMOOTH_MUL
from compressor.recipe import Int8Config
from foundation.errors import DataError, UsageError
from targets.base import QuantScheme

QUANT_TYPES = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}
DYNAMIC_OP_TYPES = ["MatMul", "Gemm", "LSTM", "GRU", "Attention"]


def quantize_int8_static(
    src: Path,
    dst: Path,
    data: Dataset,
    scheme: QuantScheme,
    method: str = "minmax",
    batch_size: int = 1,
    on_batch: Callable[[int], None] | None = None,
    plan: tuple[str, ...] = (),
    stats: dict | None = None,
    config: Int8Config | None = None,
) -> dict:
    """Calibrate once on `data` and write a Q/DQ model laid out as the target's scheme says.

    Tensors the placement rules (qdq_rules) name stay float; so do the tensors and nodes of the
    tuner's `plan` (a block: an activation and the weighted ops reading it, weights included).
    Unless `stats` are given (the tuner prepares once, see prepare_int8), the float graph first
    goes through the held-back-judged steps of int8_prepare (method "auto" chooses the ranges).
    """
    data.check_finite()
    config = config or Int8Config()
    work = dst.with_name(dst.stem + ".prepare")
    prepared = Prepared(src, method, {})
    if stats is None:
        prepared = prepare_int8(src, work, data, scheme, method, batch_size, config)
    graph, method = prepared.graph, prepared.method
    if stats is None:
        stats = collect_stats(graph, data, batch_size, range_method(method).histograms, on_batch)
    kept, fused, floated, safe = _place_qdq(
        graph, dst, data, scheme, method, stats, plan, batch_size
    )
    corrected = (
        correct_biases(graph, dst, data, batch_size, scheme.arithmetic)
        if config.bias_correction
        else {"applied": False, "why": "turned off"}
    )
    shutil.rmtree(work, ignore_errors=True)
    model = onnx.load(str(dst))
    q = sum(n.op_type == "QuantizeLinear" for n in model.graph.node)
    if q == 0 and not plan:  # a tuner plan may keep every block float
        raise DataError("Quantization placed no Q/DQ nodes: the model has no quantizable ops.")
    recurrent = sum(n.op_type in ("LSTM", "GRU", "RNN") for n in model.graph.node)
    return {
        "quantize_nodes": q,
        "float_recurrent_ops": recurrent,
        "calibration_samples": len(data),
        "method": method,
        "scheme": scheme.description,
        "kept_float": [k.to_dict() for k in kept if k.kind == "node" or k.tensor in floated],
        **({"steps": prepared.steps} if prepared.steps else {}),
        "bias_correction": corrected,
        **({"plan": list(plan)} if plan else {}),
        **({"saturation_safe_weights": safe} if safe else {}),
        **({"residual_inputs_left_float": fused} if scheme.residual_ops else {}),
    }


def prepare_int8(
    src: Path,
    work: Path,
    data: Dataset,
    scheme: QuantScheme,
    method: str,
    batch_size: int,
    config: Int8Config,
) -> Prepared:
    """The float graph (in work/) and range method to quantize with, judged on held-back data."""
    work.mkdir(parents=True, exist_ok=True)

    def quantize(graph: Path, dst: Path, fit: Dataset, name: str, stats: dict) -> None:
        _place_qdq(graph, dst, fit, scheme, name, stats, batch=batch_size)

    return prepare_for_int8(
        src, work, data, method, batch_size, config, quantize, scheme.arithmetic
    )


def _place_qdq(
    src: Path,
    dst: Path,
    data: Dataset,
    scheme: QuantScheme,
    method: str,
    stats: dict,
    plan: tuple[str, ...] = (),
    batch: int = 1,
) -> tuple[list, int, list[str], dict | None]:
    """Q/DQ from statistics, rules applied: (rule decisions, fused inputs left float, floated,
    the saturation-safe weights record when the scheme asks for them)."""
    kept = tensors_kept_float(onnx.load(str(src)), stats, scheme)
    cache = dst.with_name(dst.name + ".ranges.json")
    write_ranges_cache(stats, method, cache)
    _quantize_with_ranges(src, dst, data, scheme, cache, kept, plan)
    cache.unlink()
    fused = keep_fused_inputs_float(dst, scheme)
    floated = drop_qdq(dst, {k.tensor for k in kept if k.kind == "tensor"} | set(plan), src)
    # batch: the run's calibration batch, which suits a model with a fixed batch size
    safe = apply_saturation_safe(dst, src, data, batch) if scheme.saturation_safe_weights else None
    return kept, fused, floated, safe


def _quantize_with_ranges(
    src: Path,
    dst: Path,
    data: Dataset,
    scheme: QuantScheme,
    cache: Path,
    kept: list,
    plan: tuple[str, ...] = (),
) -> None:
    """onnxruntime's quantize_static with our ranges (a calibration cache) and exclusions."""
    extra = {
        "ActivationSymmetric": scheme.activation_symmetric,
        "WeightSymmetric": scheme.weight_symmetric,
        "QuantizeBias": scheme.quantize_bias,
        "OpTypesToExcludeOutputQuantization": []
        if scheme.quantize_outputs
        else list(scheme.op_types),
    }
    model_input, placement = select_nodes(src, scheme)
    model = model_input if isinstance(model_input, onnx.ModelProto) else onnx.load(model_input)
    for index, node in enumerate(model.graph.node):
        node.name = node.name or f"{node.op_type}_{index}"
    excluded = nodes_reading_constants(model, {k.tensor for k in kept})
    excluded += [k.tensor for k in kept if k.kind == "node"]
    excluded += [n.name for n in model.graph.node if n.name in plan]
    excluded += [n.name for n in model.graph.node if n.name.startswith(SMOOTH_MUL)]
    placement["nodes_to_exclude"] = placement.get("nodes_to_exclude", []) + excluded
    logging.getLogger("root").setLevel(logging.ERROR)
    quantize_static(
        model,
        str(dst),
        DatasetReader(data, 1),
        quant_format=QuantFormat.QDQ,
        activation_type=QUANT_TYPES[scheme.activation_type],
        weight_type=QUANT_TYPES[scheme.weight_type],
        per_channel=scheme.per_channel,
        calibrate_method=CalibrationMethod.MinMax,
        calibration_cache_path=str(cache),
        extra_options=extra,
        **placement,
    )


def quantize_int8_dynamic(src: Path, dst: Path) -> dict:
    """Int8 weights, activations quantized at run time: suits MatMul/LSTM-heavy models."""
    quantize_dynamic(
        str(src),
        str(dst),
        per_channel=False,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=DYNAMIC_OP_TYPES,
    )
    model = onnx.load(str(dst))
    changed = sum(
        "Integer" in n.op_type or n.op_type.startswith("Dynamic") for n in model.graph.node
    )
    if changed == 0:
        raise UsageError(
            f"--dynamic found nothing to quantize: it covers {', '.join(DYNAMIC_OP_TYPES)} "
            "and this model has none with constant weights. Use --int8 with --calib for "
            "convolutional models."
        )
    return {"dynamic_ops": changed, "op_types": DYNAMIC_OP_TYPES}


def convert_fp16(src: Path, dst: Path) -> dict:
    """fp16 weights and compute with float32 I/O kept for callers."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))
    return {"keep_io_types": True}
