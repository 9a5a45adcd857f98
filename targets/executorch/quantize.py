"""int8 through PT2E for XNNPACK with the Q/DQ ONNX graph's decisions imposed, not re-made.

XNNPACKQuantizer annotates the patterns XNNPACK runs in int8; then, inside `annotate`:
1. each conv/linear takes the ONNX op's weights and bias as quantized there (matched by weight
   shape and direction, so equalization and bias correction carry over); one without a
   quantized counterpart there stays float;
2. each activation edge takes the scale and zero point of the ONNX tensor holding the same
   values (compared in that tensor's own quantization steps), as a fixed-qparams spec;
3. an annotated op with an edge the ONNX graph keeps float stays float (the placement).
Weight scales come from PT2E's per-channel observer on those weights: max|w| = 127 steps in
the ONNX graph, so they equal its scales."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import torch
from torch.fx import GraphModule, Interpreter, Node

from targets.executorch.qdq_ranges import QdqGraph, read_qdq, run_float

CONV_LINEAR = {
    torch.ops.aten.conv1d.default,
    torch.ops.aten.conv2d.default,
    torch.ops.aten.linear.default,
}
ZERO_PADS = {torch.ops.aten.constant_pad_nd.default, torch.ops.aten.pad.default}
ANNOTATION = "quantization_annotation"
MAX_MEAN_STEPS = 0.5  # an edge matches an ONNX tensor within half a quantization step


def quantize_program(
    program: torch.export.ExportedProgram,
    onnx_path,
    args: tuple[torch.Tensor, ...],
    real_data: bool = True,
) -> tuple[GraphModule, dict]:
    """The converted (Q/DQ-annotated) module and what carrying the ONNX decisions did; args
    without real data are redrawn inside each input's calibrated range (values outside it
    clip in the Q/DQ graph only, and nothing downstream would match)."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    model = onnx.load(str(onnx_path))
    graph = read_qdq(model)
    if not real_data:
        args = _in_range(args, [i.name for i in _real_inputs(model)], graph)
    feeds = {i.name: a.numpy() for i, a in zip(_real_inputs(model), args, strict=True)}
    run_float(model, graph, feeds)
    quantizer = _onnx_quantizer_class()(graph, args)
    quantizer.set_global(get_symmetric_quantization_config(is_per_channel=True))
    prepared = prepare_pt2e(program.module(), quantizer)
    prepared(*args)  # the per-channel weight observers see the imposed weights
    return convert_pt2e(prepared), quantizer.facts


def _in_range(args: tuple, names: list[str], graph: QdqGraph) -> tuple[torch.Tensor, ...]:
    """Float inputs drawn uniformly inside their quantized range (seeded)."""
    generator = torch.Generator().manual_seed(0)
    drawn = []
    for arg, name in zip(args, names, strict=True):
        if arg.is_floating_point() and name in graph.qparams:
            scale, zero = graph.qparams[name]
            low, high = (-128 - zero) * scale, (127 - zero) * scale
            arg = torch.rand(arg.shape, generator=generator) * (high - low) + low
        drawn.append(arg)
    return tuple(drawn)


def _real_inputs(model: onnx.ModelProto) -> list:
    inits = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


def _onnx_quantizer_class() -> type:
    """XNNPACKQuantizer with the ONNX graph's weights, ranges and placement imposed."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer

    class OnnxRangesQuantizer(XNNPACKQuantizer):
        def __init__(self, graph: QdqGraph, args: tuple[torch.Tensor, ...]) -> None:
            super().__init__()
            self.qdq, self.args, self.facts = graph, args, {}

        def annotate(self, model: GraphModule) -> GraphModule:
            model = super().annotate(model)
            done, unmatched = impose_weights(model, self.qdq)
            values = _node_values(model, self.args)
            self.facts.update(impose_ranges(model, self.qdq, values))
            self.facts["weights_from_onnx"] = done
            self.facts["float_in_placement"] = unmatched + self.facts["float_in_placement"]
            return model

    return OnnxRangesQuantizer


def impose_weights(model: GraphModule, graph: QdqGraph) -> tuple[int, list[str]]:
    """Each conv/linear takes the weights and bias of the ONNX op whose weight is closest in
    direction (same shape); one with no counterpart there (or none quantized) stays float.
    (ops given ONNX weights, ops left float)."""
    unused = list(graph.weighted)
    done, unmatched = 0, []
    for node in model.graph.nodes:
        if node.op != "call_function" or node.target not in CONV_LINEAR:
            continue
        weight = _attr(model, node.args[1])
        match = None if weight is None else _closest(weight.detach().numpy(), unused)
        if match is None:
            if node.meta.pop(ANNOTATION, None) is not None:
                unmatched.append(node.name)
            continue
        unused.remove(match)
        _set_attr(model, node.args[1], match.weight.reshape(weight.shape))
        bias = node.args[2] if len(node.args) > 2 else None
        if match.bias is not None and isinstance(bias, Node):
            _set_attr(model, bias, match.bias)
        done += 1
    return done, unmatched


def _closest(weight: np.ndarray, candidates: list) -> object | None:
    flat = weight.ravel()
    best, score = None, 0.5  # cosine similarity floor: an unrelated layer scores near 0
    for cand in candidates:
        if cand.weight.size != flat.size or cand.weight.shape[0] != weight.shape[0]:
            continue
        other = cand.weight.ravel()
        cos = float(flat @ other / (np.linalg.norm(flat) * np.linalg.norm(other) + 1e-30))
        if cos > score:
            best, score = cand, cos
    return best


def _attr(model: GraphModule, node: object) -> torch.Tensor | None:
    if not isinstance(node, Node) or node.op != "get_attr":
        return None
    return _owner(model, node.target)[1]


def _owner(model: GraphModule, target: str) -> tuple[torch.nn.Module, torch.Tensor]:
    *path, leaf = target.split(".")
    module = model.get_submodule(".".join(path)) if path else model
    return module, getattr(module, leaf)


def _set_attr(model: GraphModule, node: Node, value: np.ndarray) -> None:
    module, old = _owner(model, node.target)
    tensor = torch.from_numpy(np.ascontiguousarray(value)).to(old.dtype).reshape(old.shape)
    leaf = node.target.split(".")[-1]
    if isinstance(old, torch.nn.Parameter):
        tensor = torch.nn.Parameter(tensor, requires_grad=False)
    setattr(module, leaf, tensor)


def _node_values(model: GraphModule, args: tuple[torch.Tensor, ...]) -> dict[Node, np.ndarray]:
    """Every float tensor the module computes on args, by node."""
    values = {}

    class Recorder(Interpreter):
        def run_node(self, n: Node) -> object:
            out = super().run_node(n)
            if isinstance(out, torch.Tensor) and out.is_floating_point():
                values[n] = out.detach().numpy()
            return out

    with torch.no_grad():
        Recorder(model).run(*args)
    return values


def impose_ranges(model: GraphModule, graph: QdqGraph, values: dict) -> dict:
    """Fixed ONNX qparams on every annotated activation edge; ops with an edge the ONNX graph
    keeps float lose their annotation. What happened, for the artifact's info."""
    from torchao.quantization.pt2e.quantizer import FixedQParamsQuantizationSpec

    cache: dict[Node, str | None] = {}
    floated, used = [], Counter()
    for node in model.graph.nodes:
        ann = node.meta.get(ANNOTATION)
        if ann is None or not ann._annotated:
            continue
        edges = _activation_edges(node, ann)
        names = [_edge_tensor(e, values, graph, cache) for e in edges]
        if any(name is None for name in names):
            floated.append(node.name)
            node.meta.pop(ANNOTATION)
            continue
        specs = {}
        for edge, name in zip(edges, names, strict=True):
            scale, zero = graph.qparams[name]
            specs[edge] = FixedQParamsQuantizationSpec(
                torch.int8, scale, zero, -128, 127, torch.per_tensor_affine
            )
            used[name] += 1
        _replace_specs(node, ann, specs)
    floated += _drop_float_outputs(model)
    _drop_dangling_shares(model)
    used.update(_quantized_tensors(model, graph, values, cache))
    return {
        "onnx_ranges_used": len(used),
        "onnx_ranges_total": len(graph.qparams),
        "float_in_placement": floated,
        "onnx_quantized_not_in_xnnpack": sorted(set(graph.qparams) - set(used)),
    }


def _quantized_tensors(model: GraphModule, graph: QdqGraph, values: dict, cache: dict) -> set:
    """The ONNX tensors some int8 tensor of the annotated module holds (shared specs too)."""
    found = set()
    for node in model.graph.nodes:
        ann = node.meta.get(ANNOTATION)
        if ann is None:
            continue
        edges = [n for n in ann.input_qspec_map if n.op != "get_attr" and n in values]
        edges += [node] if ann.output_qspec is not None else []
        found.update(_edge_tensor(e, values, graph, cache) for e in edges)
    return found - {None}


def _activation_edges(node: Node, ann: object) -> list[Node]:
    """The tensors whose quantization the annotation sets itself (weights and bias aside)."""
    from torchao.quantization.pt2e.quantizer import QuantizationSpec

    weights = set(node.args[1:3]) if node.target in CONV_LINEAR else set()
    edges = [
        inp
        for inp, spec in ann.input_qspec_map.items()
        if isinstance(spec, QuantizationSpec) and inp not in weights
    ]
    if isinstance(ann.output_qspec, QuantizationSpec):
        edges.append(node)
    return edges


def _edge_tensor(edge: Node, values: dict, graph: QdqGraph, cache: dict) -> str | None:
    """The quantized ONNX tensor an edge holds (None: none, the edge stays float). A zero pad's
    output takes its input's tensor: the ONNX export folds the pad into the Conv's `pads`, so
    no ONNX tensor has the padded shape, and zero is exact in every int8 range (it is the zero
    point), so padding the int8 tensor gives the int8 padded tensor."""
    if edge not in cache:
        cache[edge] = _matching_tensor(values.get(edge), graph)
        if cache[edge] is None and _is_zero_pad(edge):
            cache[edge] = _edge_tensor(edge.args[0], values, graph, cache)
    return cache[edge]


def _is_zero_pad(node: Node) -> bool:
    """aten.constant_pad_nd / aten.pad filling with 0, without negative (cropping) amounts."""
    if node.op != "call_function" or node.target not in ZERO_PADS:
        return False
    names = [a.name for a in node.target._schema.arguments]
    given = {**dict(zip(names, node.args, strict=False)), **node.kwargs}
    return (
        given.get("mode", "constant") == "constant"
        and not given.get("value")
        and min(given["pad"], default=0) >= 0
    )


def _matching_tensor(value: np.ndarray | None, graph: QdqGraph) -> str | None:
    """The quantized ONNX tensor holding value: same shape, mean gap under half a step after
    both are quantized with that tensor's parameters (a ReLU folded into a range matches)."""
    if value is None:
        return None
    best, best_gap = None, MAX_MEAN_STEPS
    for name, other in graph.values.items():
        if other.shape != value.shape:
            continue
        scale, zero = graph.qparams[name]
        gap = float(np.mean(np.abs(_steps(value, scale, zero) - _steps(other, scale, zero))))
        if gap < best_gap:
            best, best_gap = name, gap
    return best


def _steps(x: np.ndarray, scale: float, zero: int) -> np.ndarray:
    return np.clip(np.round(x / scale) + zero, -128, 127)


def _replace_specs(node: Node, ann: object, specs: dict) -> None:
    for inp in list(ann.input_qspec_map):
        if inp in specs:
            ann.input_qspec_map[inp] = specs[inp]
    if node in specs:
        ann.output_qspec = specs[node]


def _drop_float_outputs(model: GraphModule) -> list[str]:
    """Conv/linear ops whose output (theirs or that of the activation fused after them) ended
    float lose their annotation too: XNNPACK delegates no int8 op with a float output."""
    dropped = []
    for node in model.graph.nodes:
        ann = node.meta.get(ANNOTATION)
        if ann is None or node.op != "call_function" or node.target not in CONV_LINEAR:
            continue
        users = list(node.users)
        fused = users[0].meta.get(ANNOTATION) if len(users) == 1 else None
        if ann.output_qspec is None and (fused is None or fused.output_qspec is None):
            node.meta.pop(ANNOTATION)
            dropped.append(node.name)
    return dropped


def _drop_dangling_shares(model: GraphModule) -> None:
    """Shared specs pointing at an op that lost its annotation go too (repeated to a fixpoint)."""
    from torchao.quantization.pt2e.quantizer import SharedQuantizationSpec

    changed = True
    while changed:
        changed = False
        for node in model.graph.nodes:
            ann = node.meta.get(ANNOTATION)
            if ann is None:
                continue
            specs = [*ann.input_qspec_map.values(), ann.output_qspec]
            for spec in specs:
                if isinstance(spec, SharedQuantizationSpec) and _lost(spec.edge_or_node):
                    node.meta.pop(ANNOTATION)
                    changed = True
                    break


def _lost(edge_or_node: object) -> bool:
    node = edge_or_node[1] if isinstance(edge_or_node, tuple) else edge_or_node
    return ANNOTATION not in node.meta
