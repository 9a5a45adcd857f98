"""Learned weight rounding (AdaRound, Nagel et al., 2020) of a Q/DQ graph's int8 weights.

Nearest rounding minimises each weight's own error, not the layer's output error. AdaRound
learns, per weight, whether to round down or up: a soft rounding h(V) = clip(σ(V)(ζ-γ)+γ, 0, 1)
is optimised (Adam, in torch on the CPU) so that the layer's output on its quantized input,
with weights s·clip(floor(W/s) + h(V), qmin, qmax), reconstructs the fp32 layer output, while
an annealed regulariser Σ 1-|2h-1|^β pushes every h to 0 or 1. Scales (per-channel, as the
Q/DQ graph has them) and the integer range stay as they are; only the integers change, so
every target lowers the learned weights unchanged. Where the scheme takes saturation-safe
weights (issue 19), the learned graph is made safe again before it is judged. No labels:
inputs and targets come from the calibration samples. A layer keeps its learned integers only
if its reconstruction loss falls; the whole graph only if held-back output SQNR rises. It runs
inside a time budget (iterations per layer sized to fit). Written by hand because onnxruntime
has no learned rounding and AIMET/MQBench need their own model graph.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper

from calibration.activations import iterate_activations
from calibration.dataset import Dataset
from compressor.passes.held_back import MIN_GAIN_DB, output_sqnr, split_held_back
from compressor.progress import progress_bar
from targets.registry import EXACT_ARITHMETIC

ROUNDED_OPS = ("Conv", "Gemm", "MatMul")
ZETA, GAMMA = 1.1, -0.1  # the rectified sigmoid's stretch (the paper's values)
REG_WEIGHT = 0.01  # λ of the regulariser, its mean over the weights (loss relative: scale-free)
BETA = (20.0, 2.0)  # β annealed from 20 to 2 after the warm-up
WARMUP = 0.2  # fraction of iterations with no regulariser
LR = 1e-2  # 10x AIMET's: our budgets allow hundreds of steps, not its 10 000
MAX_ITERATIONS = 2000
MIN_ITERATIONS = 50  # fewer cannot anneal: such a layer is left at nearest rounding
CACHE_BYTES = 12 << 20  # per layer: the cached inputs and fp32 outputs (samples capped to fit)
QUANTIZED_OUTPUT = "_QuantizeLinear_Input"  # onnxruntime's name for a graph output it quantizes
STAGES = 8  # passes that refresh the layers' inputs from the graph rounded so far
MINIBATCH_ROWS = 4096  # output positions (samples × pixels) per step, at least one sample


@dataclass
class Layer:
    """One int8-weighted op: its node, the DQ of its weight, the fp32 weight's name."""

    node: onnx.NodeProto
    weight: onnx.NodeProto  # the DequantizeLinear of the int8 weight
    original: str
    target: str  # the op's output in the fp32 graph (a graph output is renamed in Q/DQ)
    clamp: tuple[float, float] | None  # a Relu/Clip the Q/DQ graph folded into the output's Q


def _folded_clamp(fp32: onnx.ModelProto, op: str, target: str) -> tuple | None | bool:
    """The Relu/Clip onnxruntime folded (the fp32 producer of target), None, or False: not ours."""
    producer = next((n for n in fp32.graph.node if target in n.output), None)
    if producer is None or producer.op_type == op:
        return None
    if producer.op_type == "Relu":
        return (0.0, float("inf"))
    inits = {i.name: numpy_helper.to_array(i) for i in fp32.graph.initializer}
    limits = (list(producer.input[1:3]) + ["", ""])[:2]
    if producer.op_type != "Clip" or any(n and n not in inits for n in limits):
        return False
    low, high = (
        float(inits[n]) if n else d for n, d in zip(limits, (-np.inf, np.inf), strict=True)
    )
    return (low, high)


def _attr(node: onnx.NodeProto, name: str, default: object) -> object:
    found = next((a for a in node.attribute if a.name == name), None)
    return default if found is None else onnx.helper.get_attribute_value(found)


def _plain(node: onnx.NodeProto) -> bool:
    """Ops whose torch form below is exact: no auto_pad, no Gemm alpha or transposed input."""
    if node.op_type == "Conv":
        return _attr(node, "auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET")
    if node.op_type == "Gemm":
        return _attr(node, "alpha", 1.0) == 1.0 and _attr(node, "transA", 0) == 0
    return True


def find_layers(qdq: onnx.ModelProto, fp32: onnx.ModelProto) -> list[Layer]:
    """The Conv/Gemm/MatMul ops with a constant int8 weight DQ and a quantized input."""
    producer = {o: n for n in qdq.graph.node for o in n.output}
    inits = {i.name: i for i in qdq.graph.initializer}
    fp32_inits = {i.name for i in fp32.graph.initializer}
    fp32_outputs = {o for n in fp32.graph.node for o in n.output}
    layers = []
    for node in qdq.graph.node:
        if node.op_type not in ROUNDED_OPS or len(node.input) < 2 or not _plain(node):
            continue
        weight, data = producer.get(node.input[1]), producer.get(node.input[0])
        if weight is None or weight.op_type != "DequantizeLinear" or weight.input[0] not in inits:
            continue
        original = weight.input[0].removesuffix("_quantized")
        quantized_input = data is not None and data.op_type == "DequantizeLinear"
        target = node.output[0]
        target = target if target in fp32_outputs else target.removesuffix(QUANTIZED_OUTPUT)
        if original not in fp32_inits or not quantized_input or target not in fp32_outputs:
            continue
        clamp = _folded_clamp(fp32, node.op_type, target)
        if clamp is not False:
            layers.append(Layer(node, weight, original, target, clamp))
    return layers


def _capture(path: Path, data: Dataset, batch: int, caps: dict[str, int]) -> dict:
    """The named tensors on their first caps[name] samples (0: sized to CACHE_BYTES / 3)."""
    kept: dict[str, list[np.ndarray]] = {name: [] for name in caps}
    counts = dict.fromkeys(caps, 0)
    for values, _ in iterate_activations(path, data, batch, list(caps)):
        for name, value in values.items():
            if caps[name] == 0:
                caps[name] = max(1, int(CACHE_BYTES // 3 // max(value[0].nbytes, 1)))
            take = min(len(value), caps[name] - counts[name])
            if take > 0:
                kept[name].append(value[:take])
                counts[name] += take
        if all(counts[n] >= caps[n] > 0 for n in caps):
            break
    return {name: np.concatenate(parts) for name, parts in kept.items() if parts}


def _value(model: onnx.ModelProto, name: str) -> np.ndarray | None:
    """A constant input as the graph computes it: an initializer or a DQ of one."""
    inits = {i.name: i for i in model.graph.initializer}
    if name in inits:
        return numpy_helper.to_array(inits[name]).astype(np.float32)
    dq = next((n for n in model.graph.node if name in n.output), None)
    if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in inits:
        return None
    q = numpy_helper.to_array(inits[dq.input[0]]).astype(np.float64)
    scale = numpy_helper.to_array(inits[dq.input[1]]).astype(np.float64)
    return (q * scale).astype(np.float32)


@dataclass
class Problem:
    """One layer's rounding problem in torch: fixed parts, cached data, the learned V."""

    layer: Layer
    forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    weight: torch.Tensor  # fp32 weight / scale
    scale: torch.Tensor
    nearest: torch.Tensor  # the integers of the Q/DQ graph
    limit: float  # |integer| bound (the nearest integers' largest magnitude)
    inputs: torch.Tensor
    targets: torch.Tensor

    def rounded(self, up: torch.Tensor) -> torch.Tensor:
        """Integers floor(W/s) + up, clipped to the range; `up` soft (0..1) or hard."""
        return torch.clamp(torch.floor(self.weight) + up, -self.limit, self.limit)

    def loss(
        self, integers: torch.Tensor, rows: slice | torch.Tensor = slice(None)
    ) -> torch.Tensor:
        """Output reconstruction error relative to the fp32 output's energy (scale-free)."""
        out = self.forward(self.inputs[rows], integers * self.scale)
        if self.layer.clamp is not None:
            out = torch.clamp(out, *self.layer.clamp)
        target = self.targets[rows]
        return (out - target).pow(2).mean() / target.pow(2).mean().clamp_min(1e-30)


def _forward(model: onnx.ModelProto, node: onnx.NodeProto) -> Callable:
    """The op as a torch function of (input, weight): Conv 1-D/2-D, Gemm or MatMul."""
    bias_value = _value(model, node.input[2]) if len(node.input) > 2 and node.input[2] else None
    bias = None if bias_value is None else torch.from_numpy(bias_value)
    if node.op_type == "MatMul":
        return lambda x, w: x @ w
    if node.op_type == "Gemm":
        trans, beta = _attr(node, "transB", 0), _attr(node, "beta", 1.0)
        add = 0.0 if bias is None else beta * bias
        return lambda x, w: x @ (w.T if trans else w) + add
    strides, dilations = _attr(node, "strides", None), _attr(node, "dilations", None)
    pads, group = _attr(node, "pads", None), _attr(node, "group", 1)

    def conv(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        dims = w.dim() - 2
        if pads:  # ONNX pads: all begins then all ends; F.pad: last dim first
            x = F.pad(x, [p for d in reversed(range(dims)) for p in (pads[d], pads[d + dims])])
        fn = F.conv1d if dims == 1 else F.conv2d
        return fn(x, w, bias, strides or 1, 0, dilations or 1, group)

    return conv


def _problem(model: onnx.ModelProto, fp32: onnx.ModelProto, layer: Layer, cached: dict) -> Problem:
    """The layer's rounding problem from the Q/DQ graph's integers and scales."""
    inits = {i.name: i for i in model.graph.initializer}
    dq = layer.weight
    nearest = numpy_helper.to_array(inits[dq.input[0]]).astype(np.float32)
    scale = numpy_helper.to_array(inits[dq.input[1]]).astype(np.float32)
    axis = int(_attr(dq, "axis", 1)) % nearest.ndim
    shape = [-1 if d == axis else 1 for d in range(nearest.ndim)] if scale.size > 1 else []
    scale = scale.reshape(shape)
    original = next(i for i in fp32.graph.initializer if i.name == layer.original)
    weight = numpy_helper.to_array(original).astype(np.float32) / scale
    return Problem(
        layer,
        _forward(model, layer.node),
        torch.from_numpy(weight),
        torch.from_numpy(np.ascontiguousarray(scale)),
        torch.from_numpy(nearest),
        float(np.abs(nearest).max()),
        torch.from_numpy(cached[layer.node.input[0]]),
        torch.from_numpy(cached[layer.target]),
    )


def _soft(v: torch.Tensor) -> torch.Tensor:
    return torch.clamp(torch.sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)


def _fit_count(problem: Problem) -> int:
    """Cached samples the rounding is fitted on: 3/4 (the rest judge it), all if only one."""
    n = len(problem.inputs)
    return max(1, n * 3 // 4) if n > 1 else 1


def _full_loss(problem: Problem, integers: torch.Tensor) -> float:
    """Reconstruction error on the cached samples the fit did not see (all, if it saw all)."""
    per = max(1, MINIBATCH_ROWS // max(problem.targets[0].numel() // problem.targets.shape[1], 1))
    first, n = _fit_count(problem) % len(problem.inputs), len(problem.inputs)
    with torch.no_grad():
        parts = [
            problem.loss(integers, slice(i, min(i + per, n))) * (min(i + per, n) - i)
            for i in range(first, n, per)
        ]
    return float(sum(parts) / (n - first))


def optimise(problem: Problem, seconds: float, seed: int = 0) -> tuple[torch.Tensor, int]:
    """Learned integers for one layer within `seconds` (iterations sized to fit), and the count."""
    rest = problem.weight - torch.floor(problem.weight)
    v = (-torch.log((ZETA - GAMMA) / (rest - GAMMA) - 1.0)).requires_grad_(True)
    optimiser = torch.optim.Adam([v], lr=LR)
    generator = torch.Generator().manual_seed(seed)
    per = max(1, MINIBATCH_ROWS // max(problem.targets[0].numel() // problem.targets.shape[1], 1))
    n = _fit_count(problem)
    start, total, step = time.perf_counter(), MAX_ITERATIONS, 0
    while step < total:
        rows = torch.randint(0, n, (min(per, n),), generator=generator)
        loss = problem.loss(problem.rounded(_soft(v)), rows)
        warm = int(total * WARMUP)
        if step >= warm:
            beta = BETA[1] + (BETA[0] - BETA[1]) * (1 - (step - warm) / max(total - warm, 1))
            loss = loss + REG_WEIGHT * (1 - (2 * _soft(v) - 1).abs().pow(beta)).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        step += 1
        if step in (5, 20, 50):  # size the schedule to the time left as a step's cost is known
            each = (time.perf_counter() - start) / step
            total = int(min(MAX_ITERATIONS, seconds / max(each, 1e-9)))
    if total < MIN_ITERATIONS:
        return problem.nearest, step
    return problem.rounded((v.detach() >= 0).float()), step


def _write(model: onnx.ModelProto, layer: Layer, integers: torch.Tensor) -> None:
    init = next(i for i in model.graph.initializer if i.name == layer.weight.input[0])
    dtype = numpy_helper.to_array(init).dtype
    init.CopyFrom(numpy_helper.from_array(integers.numpy().astype(dtype), init.name))


def _stage_data(model: onnx.ModelProto, fp32: Path, qdq: Path, stage: list, fit, batch) -> dict:
    """Inputs of the stage's layers in the graph rounded so far, and their fp32 outputs."""
    current = qdq.with_name(qdq.stem + ".rounding.onnx")
    onnx.save(model, str(current))
    try:
        inputs = _capture(current, fit, batch, {layer.node.input[0]: 0 for layer in stage})
    finally:
        current.unlink()
    caps = {layer.target: len(inputs[layer.node.input[0]]) for layer in stage}
    return inputs | _capture(fp32, fit, batch, caps)


def _record(layer: Layer, steps: int, kept: bool, before: float, after: float) -> dict:
    return {
        "layer": layer.node.name or layer.node.output[0],
        "iterations": steps,
        "kept": kept,
        "loss": {"nearest": float(f"{before:.4g}"), "learned": float(f"{after:.4g}")},
    }


def _round_layers(
    model: onnx.ModelProto, fp32_path: Path, qdq: Path, fit: Dataset, batch: int, seconds: float
) -> list[dict]:
    """Learn every layer's rounding into model, in STAGES: each stage's inputs come from the
    graph with the earlier stages' rounding (AdaRound's sequential order, in a few passes)."""
    deadline = time.perf_counter() + seconds
    fp32 = onnx.load(str(fp32_path))
    layers = find_layers(model, fp32)
    records: list[dict] = []
    with progress_bar("learned rounding", len(layers)) as advance:
        for stage in np.array_split(np.arange(len(layers)), min(STAGES, len(layers))):
            if time.perf_counter() >= deadline:  # out of budget: the rest keep nearest
                break
            cached = _stage_data(model, fp32_path, qdq, [layers[i] for i in stage], fit, batch)
            for index in stage:
                share = (deadline - time.perf_counter()) / (len(layers) - index)
                if share <= 0:
                    break
                problem = _problem(model, fp32, layers[index], cached)
                learned, steps = optimise(problem, share, seed=int(index))
                before, after = _full_loss(problem, problem.nearest), _full_loss(problem, learned)
                if after < before:
                    _write(model, layers[index], learned)
                records.append(_record(layers[index], steps, after < before, before, after))
                advance(1)
    return records


def learn_rounding(
    fp32: Path,
    qdq: Path,
    data: Dataset,
    batch: int,
    seconds: float,
    arithmetic: str = EXACT_ARITHMETIC,
    make_safe: Callable[[Path], dict] | None = None,
) -> dict:
    """Learn qdq's int8 weight rounding in place if held-back output SQNR, measured in the
    scheme's int8 arithmetic, rises (layer inputs are captured unfused: exact arithmetic)."""
    split = split_held_back(data, batch)
    if isinstance(split, str):
        return {"applied": False, "why": split}
    fit, held = split
    start = time.perf_counter()
    model = onnx.load(str(qdq))
    threads = torch.get_num_threads()
    # one thread: each step is a small op whose thread hand-off costs more than it saves
    # (measured on a busy 2-core host: a 16-channel 12x12 conv step 0.66 s on 2, 0.02 s on 1)
    torch.set_num_threads(1)
    try:
        records = _round_layers(model, fp32, qdq, fit, batch, seconds)
    finally:
        torch.set_num_threads(threads)
    if not records:
        return {
            "applied": False,
            "why": "no int8-weighted Conv/Gemm/MatMul with a quantized input, or no time",
        }
    candidate = qdq.with_name(qdq.stem + ".rounded.onnx")
    onnx.save(model, str(candidate))
    safe = make_safe(candidate) if make_safe else None  # the scheme's saturation-safe weights
    before = output_sqnr(fp32, qdq, held, batch, arithmetic)
    after = output_sqnr(fp32, candidate, held, batch, arithmetic)
    keep = after > before + MIN_GAIN_DB
    if keep:
        shutil.move(candidate, qdq)
    else:
        candidate.unlink()
    return {
        "applied": keep,
        "layers": sum(r["kept"] for r in records),
        "layers_tried": len(records),  # the budget may end before the last layers
        "seconds": round(time.perf_counter() - start, 1),
        "budget_s": seconds,
        "held_back_samples": len(held),
        "held_back_sqnr_db": {"without": round(before, 2), "with": round(after, 2)},
        **({"saturation_safe_weights": safe} if safe else {}),
        "per_layer": records,
    }
