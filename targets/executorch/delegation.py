"""What ran inside the XNNPACK delegate and what fell out of it, read from the lowered program."""

from __future__ import annotations

from collections import Counter

# Nodes of an ExecuTorch program that are plumbing, not operators: delegate calls, tuple
# reads, memory planning, views and symbolic sizes.
PLUMBING = ("executorch_call_delegate", "getitem", "alloc", "view", "sym_size", "executorch_prim")


def delegation_info(edge: object, program: object) -> dict:
    """Partitions, the ops inside them (from the lowered modules' original graphs) and the ops
    left to ExecuTorch's portable kernels (from the final program), as name → count."""
    inside: Counter = Counter()
    partitions = 0
    for _, module in edge.exported_program().graph_module.named_children():
        original = getattr(module, "original_module", None)
        if original is None:
            continue
        partitions += 1
        inside.update(_op_counts(original.graph))
    outside = _op_counts(program.exported_program().graph)
    return {
        "xnnpack_partitions": partitions,
        "delegated_ops": dict(sorted(inside.items())),
        "not_delegated_ops": dict(sorted(outside.items())),
        "not_delegated": sum(outside.values()),
    }


def _op_counts(graph: object) -> Counter:
    counts: Counter = Counter()
    for node in graph.nodes:
        if node.op != "call_function":
            continue
        name = _op_name(node.target)
        if not any(word in name for word in PLUMBING):
            counts[name] += 1
    return counts


def _op_name(target: object) -> str:
    """aten.mean.out → aten.mean; edge dialect names lose their overload too."""
    name = getattr(target, "__name__", None) or str(target)
    name = str(getattr(target, "_name", name)).replace("::", ".")
    parts = name.split(".")
    if parts[0] == "aten" and len(parts) > 2:
        return ".".join(parts[:2])
    return name
