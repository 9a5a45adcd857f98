"""Normalise an ONNX model from the wild before any pass: opset, IR, input lists, dims, shapes.

Zoo and vendor files come at opset 6-17 and IR 3-10. The passes (onnxslim, onnxruntime's
quantizer with per-channel Q/DQ) need a modern opset, IR >= 4 graphs whose initializers are
not also graph inputs, and known shapes. onnx's version converter does the upgrade; the result
is run in onnxruntime beside the original on the same sample and must give the same outputs.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import version_converter

from compressor.model.loading import onnx_input_specs
from foundation.errors import ModelLoadError
from foundation.resources import check_tensor_bytes
from targets.base import TensorSpec

# Outputs of the upgraded graph must match the original's within float32 round-off.
RTOL, ATOL = 1e-4, 1e-5
# Per-channel Q/DQ (DequantizeLinear's axis) needs opset 13; older models must be upgraded.
QDQ_OPSET = 13
# onnxruntime runs ai.onnx opset 7 and newer.
ORT_OLDEST_OPSET = 7


def normalize_model(
    model: onnx.ModelProto,
    specs: list[TensorSpec],
    opset: int,
    sample: dict[str, np.ndarray] | None = None,
) -> tuple[onnx.ModelProto, dict]:
    """The model upgraded to `opset`, IR bumped, initializers off the input list, input dims
    fixed from specs and shapes inferred; with what changed and how it was checked."""
    original = model.SerializeToString()
    before = default_opset(model)
    info = {"opset_before": before, "ir_before": model.ir_version}
    if before < opset:
        model, info["upgrade"] = _upgrade(model, before, opset)
    _drop_initializer_inputs(model)
    default = [o for o in model.opset_import if o.domain in ("", "ai.onnx")]
    model.ir_version = max(model.ir_version, onnx.helper.find_min_ir_version_for(default))
    fixed = _fix_input_dims(model, specs)
    model = _infer_shapes(model)
    info.update(opset=default_opset(model), ir=model.ir_version, dims_fixed=fixed)
    changed = (before, info["ir_before"]) != (info["opset"], info["ir"]) or fixed
    info["check"] = (
        _check_same_outputs(original, model, sample)
        if changed
        else "not needed: opset and IR unchanged"
    )
    return model, info


def default_opset(model: onnx.ModelProto) -> int:
    """The ai.onnx opset the model imports (1 when it imports none, as the spec says)."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)


def _upgrade(model: onnx.ModelProto, before: int, opset: int) -> tuple[onnx.ModelProto, str]:
    """onnx's version converter; a failure names the ops whose definition changed on the way.

    A model already at QDQ_OPSET or newer is kept as it is when the converter fails on it.
    """
    if not any(o.domain in ("", "ai.onnx") for o in model.opset_import):
        model.opset_import.append(onnx.helper.make_opsetid("", before))
    try:
        return version_converter.convert_version(model, opset), f"opset {before} -> {opset}"
    except Exception as exc:
        if before >= QDQ_OPSET:
            return model, f"kept at opset {before} (converter: {type(exc).__name__})"
        changed = sorted(_changed_ops(model, before, opset))
        raise ModelLoadError(
            f"Could not upgrade the ONNX model from opset {before} to {opset} "
            f"({type(exc).__name__}: {str(exc).strip()[:300]}). Ops whose definition changed "
            f"between these opsets: {changed or 'none'}. Re-export the model at opset {opset} "
            "or newer, or replace those ops."
        ) from exc


def _changed_ops(model: onnx.ModelProto, before: int, opset: int) -> set[str]:
    """Default-domain op types whose schema version differs between the two opsets."""
    changed = set()
    for op in {n.op_type for n in model.graph.node if n.domain in ("", "ai.onnx")}:
        try:
            old = onnx.defs.get_schema(op, before).since_version
            new = onnx.defs.get_schema(op, opset).since_version
        except onnx.defs.SchemaError:
            changed.add(op)
            continue
        if old != new:
            changed.add(op)
    return changed


def _drop_initializer_inputs(model: onnx.ModelProto) -> None:
    """IR 3 lists every initializer as a graph input too; since IR 4 they are constants only."""
    inits = {i.name for i in model.graph.initializer}
    keep = [v for v in model.graph.input if v.name not in inits]
    del model.graph.input[:]
    model.graph.input.extend(keep)


def _fix_input_dims(model: onnx.ModelProto, specs: list[TensorSpec]) -> dict[str, list]:
    """Write the specs' fixed dims (from --input-shape) over symbolic input dims."""
    by_name = {s.name: s for s in specs}
    fixed = {}
    for value in model.graph.input:
        spec = by_name.get(value.name)
        dims = value.type.tensor_type.shape.dim
        if spec is None or len(spec.shape) != len(dims):
            continue
        for dim, want in zip(dims, spec.shape, strict=True):
            if isinstance(want, int) and not dim.HasField("dim_value"):
                dim.Clear()
                dim.dim_value = want
                fixed[value.name] = list(spec.shape)
    if fixed:  # shapes inferred for the old dims no longer hold
        del model.graph.value_info[:]
    return fixed


def _infer_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    try:
        return onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception as exc:
        raise ModelLoadError(
            f"ONNX shape inference failed on the model ({type(exc).__name__}: {exc}). "
            "Check --input-shape against the model's inputs."
        ) from exc


def _check_same_outputs(
    original: bytes, model: onnx.ModelProto, sample: dict[str, np.ndarray] | None
) -> str:
    """Run both graphs in onnxruntime on one sample; raise when outputs differ."""
    feeds = sample or _random_feeds(onnx_input_specs(model))
    if feeds is None:
        return "not run: inputs have dynamic dims and no sample data was given"
    reference, against = _runnable_original(original)
    if reference is None:
        return f"not run: onnxruntime cannot run the original ({against})"
    try:
        want = _run(reference, feeds)
    except Exception as exc:  # the sample does not fit the original either
        return f"not run: the original fails on the sample ({type(exc).__name__})"
    try:
        got = _run(model.SerializeToString(), feeds)
    except Exception as exc:
        raise ModelLoadError(
            f"The upgraded ONNX model does not run in onnxruntime ({type(exc).__name__}: "
            f"{str(exc)[:300]}), though the original does. Re-export the model at a newer opset."
        ) from exc
    for (name, a), b in zip(want.items(), got.values(), strict=True):
        scale = float(np.nanmax(np.abs(a))) if a.size and not np.isnan(a).all() else 0.0
        close = a.shape == b.shape and np.allclose(
            a, b, rtol=RTOL, atol=ATOL * max(1.0, scale), equal_nan=True
        )
        if not close:
            diff = float(np.max(np.abs(a - b))) if a.shape == b.shape else "shape"
            raise ModelLoadError(
                f"Upgrading the ONNX model changed output '{name}' (max difference {diff}). "
                "Re-export the model at a newer opset."
            )
    return f"outputs identical to {against} in onnxruntime"


def _runnable_original(original: bytes) -> tuple[bytes | None, str]:
    """The original, or its upgrade to onnxruntime's oldest opset when it is older than that."""
    try:
        _session(original)
        return original, "the original"
    except Exception as exc:
        model = onnx.load_from_string(original)
        if default_opset(model) >= ORT_OLDEST_OPSET:
            return None, f"{type(exc).__name__}: {str(exc)[:200]}"
    try:
        oldest = version_converter.convert_version(model, ORT_OLDEST_OPSET)
        oldest.ir_version = max(oldest.ir_version, 4)
        _drop_initializer_inputs(oldest)
        data = oldest.SerializeToString()
        _session(data)
        return data, f"its opset-{ORT_OLDEST_OPSET} conversion"
    except Exception as exc:
        return None, f"{type(exc).__name__}: {str(exc)[:200]}"


def _session(model: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def _run(model: bytes, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = _session(model)
    names = [i.name for i in session.get_inputs()]
    outputs = session.run(None, {n: feeds[n] for n in names if n in feeds})
    return {o.name: v for o, v in zip(session.get_outputs(), outputs, strict=True)}


def _random_feeds(specs: list[TensorSpec]) -> dict[str, np.ndarray] | None:
    """Seeded inputs at batch 1; None when a dim other than the leading one is unknown."""
    rng = np.random.default_rng(0)
    feeds = {}
    for spec in specs:
        shape = [
            d if isinstance(d, int) and d > 0 else 1 if i == 0 else None
            for i, d in enumerate(spec.shape)
        ]
        if None in shape:
            return None
        dtype = np.dtype(spec.dtype)
        check_tensor_bytes(
            f"Model input '{spec.name}'",
            tuple(shape),
            dtype.itemsize,
            f"Fix its dims with --input-shape {spec.name}:1x3x224x224.",
        )
        feeds[spec.name] = (
            rng.standard_normal(shape).astype(dtype)
            if dtype.kind == "f"
            else np.zeros(shape, dtype)
        )
    return feeds
