"""Lower ONNX (float or onnxruntime Q/DQ) straight to a .tflite flatbuffer, no TensorFlow.

Stages: load + shape inference → fold Q/DQ into tensor params (qdq.py) → check every op has a
rule → lower node by node in NHWC with layout propagation (emit.py, rules.py) → public I/O in
the user's layout and dtype → flatbuffer with a SignatureDef (writer.py).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
import onnx

from foundation.errors import UnsupportedOp
from targets.base import Artifact, Runner, Target, TargetOptions
from targets.tflite.batch import fix_batch, identity_gathers, rewrite_identity_gathers
from targets.tflite.branches import fold_branches, has_control_flow
from targets.tflite.capabilities import CAPABILITIES
from targets.tflite.conv1d import rewrite_1d
from targets.tflite.emit import Lowering, LoweringOptions, Value
from targets.tflite.fuse import fuse_gelu, fuse_hard_swish
from targets.tflite.graph import Node, OnnxGraph, load_graph
from targets.tflite.guards import check_graph, check_io, upgrade_opset
from targets.tflite.layout import PLAIN, layout_for_rank
from targets.tflite.options import TfliteOptions
from targets.tflite.qdq import QDQ_OPS, fold_qdq
from targets.tflite.rules import RULES, SHAPE_ARITHMETIC
from targets.tflite.trace import tensor_places, trace_tensors
from targets.tflite.writer import IO_LAYOUT_KEY, TENSOR_TYPES


class TfliteTarget(Target):
    """TFLite / LiteRT: a .tflite file run by ai-edge-litert's interpreter."""

    name = "tflite"
    capabilities = CAPABILITIES
    options_type = TfliteOptions

    def availability(self) -> tuple[bool, str]:
        try:
            from targets.tflite.runner import runtime_version
        except ImportError as exc:
            return False, f"no LiteRT interpreter ({exc}); pip install -e '.[tflite]'"
        return True, runtime_version()

    def describe_io(self, path: Path) -> dict:
        """I/O as the file holds it (NHWC, int8 with its quantization), not the runner's view."""
        from targets.tflite.runner import describe_tflite_io

        return describe_tflite_io(path)

    def _lower_impl(
        self, onnx_path: Path, precision: str, work: Path, options: TargetOptions
    ) -> Artifact:
        started = time.perf_counter()
        ctx = lower_onnx(onnx.load(str(onnx_path)), precision, options)
        data = ctx.builder.to_bytes()
        elapsed = time.perf_counter() - started
        dst = work / "model.tflite"
        dst.write_bytes(data)
        from targets.tflite.runner import check_opens

        check_opens(dst)
        info = _info(ctx, elapsed, options)
        return Artifact(dst, self.name, precision, info=info, lowering=tensor_places(ctx))

    def _open_runner_impl(self, path: Path, threads: int, options: TargetOptions) -> Runner:
        from targets.tflite.runner import LiteRtRunner

        return LiteRtRunner(path, threads, options.resolver)

    def trace_layers(
        self, artifact: Artifact, feeds: dict[str, np.ndarray]
    ) -> dict[str, tuple[np.ndarray, str]] | None:
        """Every ONNX tensor the lowering kept, read from LiteRT's builtin kernels; None for a
        file not lowered by this process (its layouts and fusions are not recorded in it)."""
        places = artifact.lowering
        return None if places is None else trace_tensors(Path(artifact.path), places, feeds)


def lower_onnx(model: onnx.ModelProto, precision: str, options: TfliteOptions) -> Lowering:
    """Lower an ONNX model in memory; raises UnsupportedOp before anything is written."""
    model, upgrade_notes = upgrade_opset(model)
    check_io(model)
    graph, notes = _prepare(model)
    check_graph(graph)
    notes = upgrade_notes + notes
    ctx = Lowering(
        graph, LoweringOptions(precision, options.nhwc_io, options.int8_io, options.lstm)
    )
    ctx.notes.extend(notes)
    if graph.unquantizable:
        ctx.notes.append(
            f"tflite: {len(graph.unquantizable)} tensor(s) calibrated to an infinite range "
            f"({', '.join(graph.unquantizable[:3])}; e.g. an attention mask holding -inf) stay "
            "float; onnxruntime's Q/DQ graph quantizes them with scale inf, so qdq_reference "
            "disagrees with this file there while the comparison with torch holds."
        )
    _lower_inputs(ctx)
    for node in graph.nodes:
        if node.name not in ctx.fused:
            _apply_rule(ctx, node)
            for name in node.outputs:
                ctx.settle(name, node.op_type in FIXED_OUTPUT_OPS)
    _lower_outputs(ctx)
    _record_io_layout(ctx)
    return ctx


def _apply_rule(ctx: Lowering, node: Node) -> None:
    """Run the node's rule; a rule reading a runtime input as a constant (weights, pads,
    axes, scales fed as graph inputs) refuses the node by name instead of crashing."""
    try:
        RULES[node.op_type](ctx, node)
    except KeyError as exc:
        name = exc.args[0] if exc.args else None
        if name not in node.inputs or ctx.graph.is_const(name):
            raise
        raise UnsupportedOp(
            f"{node.op_type} '{node.name}' needs input '{name}' as a constant; it is computed "
            "at run time. Fold it into the model (e.g. make it an initializer)."
        ) from exc


def _prepare(model: onnx.ModelProto) -> tuple[OnnxGraph, list[str]]:
    """Decode, fold Q/DQ and fuse; inline decidable Ifs (branches.py); resolve index
    arithmetic on the dynamic batch (batch.py)."""
    if has_control_flow(model):
        model, branch_notes = fold_branches(model)
        graph, notes = _prepare(model)
        return graph, branch_notes + notes
    graph = _folded(model)
    unsupported = {n.op_type for n in graph.nodes if n.op_type not in RULES}
    if not unsupported and _needs_static_batch(graph):
        graph = _folded(fix_batch(model))
        check_supported(graph)
        return graph, [
            "tflite: batch fixed to 1: recurrent state tensors (LSTM/GRU) have a static batch."
        ]
    if not unsupported or not unsupported <= SHAPE_ARITHMETIC:
        check_supported(graph)
        return graph, []
    gathers = identity_gathers(model, graph)
    if gathers is not None and all(shape is not None for shape in gathers.values()):
        rewritten = rewrite_identity_gathers(graph, gathers)
        if all(n.op_type in RULES for n in rewritten.nodes):
            return rewritten, [
                f"tflite: {len(gathers)} Gather(s) over batch-dependent indices read their "
                "input in order at every probed batch; lowered as reshapes (batch stays dynamic)."
            ]
    graph = _folded(fix_batch(model))
    check_supported(graph)
    return graph, [
        f"tflite: batch fixed to 1 because the graph computes indices from its dynamic "
        f"batch ({', '.join(sorted(unsupported))})."
    ]


def _needs_static_batch(graph: OnnxGraph) -> bool:
    """A recurrent layer over an input with a dynamic batch (its state needs a fixed one)."""
    recurrent = [n for n in graph.nodes if n.op_type in STATIC_BATCH_OPS]
    return any(None in graph.shapes.get(n.inputs[0], (None,)) for n in recurrent)


# Ops whose TFLite form needs every dim of their input known (state tensors, unrolling).
STATIC_BATCH_OPS = {"LSTM", "GRU"}


def _folded(model: onnx.ModelProto) -> OnnxGraph:
    graph = load_graph(model)
    if any(node.op_type in QDQ_OPS for node in graph.nodes):
        graph = fold_qdq(graph)
    return fuse_gelu(fuse_hard_swish(rewrite_1d(graph)))


# ONNX ops lowered to kernels with fixed int8 output params (LOGISTIC, TANH).
FIXED_OUTPUT_OPS = {"Sigmoid", "Tanh"}


def check_supported(graph: OnnxGraph) -> None:
    """Name every node whose op has no rule, before any work is done."""
    missing = [f"{n.op_type} (node '{n.name}')" for n in graph.nodes if n.op_type not in RULES]
    if missing:
        raise UnsupportedOp(
            f"Target 'tflite' cannot lower {', '.join(missing)}. Supported ONNX ops: "
            f"{sorted(op for op in RULES if op != 'Requantize')}. Rewrite the model to avoid "
            "them, or use --target onnx."
        )


def _lower_inputs(ctx: Lowering) -> None:
    for name in ctx.graph.inputs:
        shape = ctx.shape(name)
        layout = layout_for_rank(len(shape)) if ctx.options.nhwc_io else PLAIN
        quant = ctx.graph.act_quant.get(name) if ctx.int8 and ctx.options.int8_io else None
        value = ctx.new_value(
            name, shape, layout, "int8" if quant else ctx.plain_dtype(name), quant
        )
        ctx.values[name] = value
        ctx.builder.inputs.append((name, value.tensor))
        ctx.public_layouts[value.tensor] = value.layout


def _lower_outputs(ctx: Lowering) -> None:
    used = {index for _, index in ctx.builder.inputs}
    for public, internal in ctx.graph.outputs:
        value = ctx.values[internal]
        rank = len(value.shape)
        layout = layout_for_rank(rank) if ctx.options.nhwc_io else PLAIN
        keep_int8 = ctx.options.int8_io and value.dtype == "int8"
        value = ctx.get(internal, layout, "int8" if keep_int8 else "float32")
        if value.tensor in used:  # an input or another output: a copy of its own
            value = _copy(ctx, public, value)
        used.add(value.tensor)
        ctx.builder.tensors[value.tensor].name = public
        ctx.builder.outputs.append((public, value.tensor))
        ctx.public_layouts[value.tensor] = value.layout


def _copy(ctx: Lowering, name: str, value: Value) -> Value:
    """A RESHAPE to the same shape: a distinct tensor holding value (TFLite's graph outputs
    must differ from its inputs and from each other)."""
    dims = [-1 if d is None else int(d) for d in value.layout.shape(value.shape)]
    copy = ctx.new_value(f"{name}/copy", value.shape, value.layout, value.dtype, value.quant)
    options = ctx.options_of("ReshapeOptions", newShape=dims)
    ctx.emit(
        "RESHAPE", [value.tensor, ctx.shape_const(f"{name}/copy_shape", dims)], [copy], options
    )
    return copy


def _record_io_layout(ctx: Lowering) -> None:
    """Store which public I/O the file lays out differently from the ONNX model (nhwc_io):
    runners read it to take and return the model's own layout (runner.py)."""
    layouts = {}
    for public, index in ctx.builder.inputs + ctx.builder.outputs:
        layout = ctx.public_layouts.get(index)
        if layout is not None and layout.perm is not None:
            layouts[public] = list(layout.perm)
    if layouts:
        ctx.builder.metadata[IO_LAYOUT_KEY] = json.dumps(layouts).encode()


def float_islands(ctx: Lowering) -> dict[str, int]:
    """int8 models: TFLite ops that compute in float (DEQUANTIZE → op → QUANTIZE islands)."""
    if not ctx.int8:
        return {}
    float_type = TENSOR_TYPES["float32"]
    found: Counter = Counter()
    for op, operator in zip(ctx.builder.op_names, ctx.builder.operators, strict=True):
        outputs = [ctx.builder.tensors[i] for i in operator.outputs]
        if op != "DEQUANTIZE" and any(t.type == float_type for t in outputs):
            found[op] += 1
    return dict(sorted(found.items()))


def _info(ctx: Lowering, elapsed: float, options: TfliteOptions) -> dict:
    ops = Counter(ctx.builder.op_names)
    islands = float_islands(ctx)
    island_note = [f"tflite int8: ops left in float (islands): {islands}."] if islands else []
    return {
        "float_ops": islands,
        "runtime": _runtime_label(),
        "conversion_s": round(elapsed, 4),
        "op_counts": dict(sorted(ops.items())),
        "transpose_ops": ops.get("TRANSPOSE", 0),
        "transpose_inner": ctx.transposes["inner"],
        "transpose_edge": ctx.transposes["edge"],
        "io_layout": "NHWC in the file (runners take NCHW)"
        if options.nhwc_io
        else "as the ONNX model (NCHW)",
        "resolver": options.resolver,
        "notes": ctx.notes
        + island_note
        + [
            f"tflite: {sum(ops.values())} ops, {ops.get('TRANSPOSE', 0)} TRANSPOSE "
            f"({ctx.transposes['inner']} inside the graph), lowered in {elapsed * 1000:.0f} ms."
        ],
    }


def _runtime_label() -> str:
    try:
        from targets.tflite.runner import runtime_version

        return runtime_version()
    except ImportError:
        return "litert (not installed)"
