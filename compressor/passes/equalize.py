"""Cross-layer equalization (Nagel et al., 2019) of Conv pairs in the fp32 ONNX graph.

Conv A's output channel i is divided by s_i and Conv B's input channel i multiplied by s_i,
with s_i = sqrt(rA_i / rB_i) (r: the channel's weight |max|), so both ranges become
sqrt(rA_i · rB_i) and A's output channels, which int8 shares one activation scale across,
come closer in range. Depthwise convs take part on either side (a group conv scales its
group's rows). The function is unchanged only when nothing or a positive-homogeneous
activation (Relu, LeakyRelu, PRelu: f(x/s) = f(x)/s for s > 0) sits between A and B.

Clip pairs (ReLU6, Hardtanh: Clip(lo ≤ 0, hi)) are equalized within the clip when the caller
gives each channel's calibrated range at the Clip's input: scaling channel i keeps the
function only where the clip never acts on it, so a channel that reaches the clip (within
CLIP_HEADROOM) keeps s_i = 1, and the others get s_i no smaller than their range over the
clip's, so the scaled channel still stays inside the unchanged clip. This is AIMET's and the
DFQ paper's ReLU6 → ReLU replacement made per channel and only where the calibration shows it
changes nothing: a per-channel clip at 6/s_i would have no fused int8 form in onnxruntime.
HardSwish pairs are left alone. Chains (A→B→C) are equalized pair by pair until settled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

# per-channel ops with f(x/s) = f(x)/s for s > 0, walked through between the two Convs
HOMOGENEOUS = ("Relu", "LeakyRelu", "PRelu", "MaxPool", "AveragePool")
CLIP_HEADROOM = 4.0  # a channel whose calibrated range comes within 1/4 of the clip is bound;
# measured on EfficientNet-Lite0 held-back photos: 1.25 and 2 changed float outputs by 1.3e-2
# and 5.4e-3 of range (unseen photos cross the moved clip), 4 by 4.7e-7
ROUNDS = 20
SETTLED = 1e-3  # stop when no scale moves by more than this (in log)


@dataclass
class ConvPair:
    """Two Convs where A's output channels are B's input channels, through `between`."""

    first: onnx.NodeProto
    second: onnx.NodeProto
    between: str  # the ops between them, "+"-joined, or "" for none
    clip: ClipBound | None = None  # the one Clip between them, if any


@dataclass(frozen=True)
class ClipBound:
    """A Clip between a pair: its input tensor (whose ranges bound s) and its limits."""

    tensor: str
    low: float
    high: float


def _uses(graph: onnx.GraphProto) -> dict[str, int]:
    counts: dict[str, int] = {o.name: 1 for o in graph.output}
    for node in graph.node:
        for name in node.input:
            counts[name] = counts.get(name, 0) + 1
    return counts


def _group(node: onnx.NodeProto) -> int:
    return next((a.i for a in node.attribute if a.name == "group"), 1)


def _clip_bound(node: onnx.NodeProto, values: dict[str, np.ndarray]) -> ClipBound | None:
    """The Clip's constant limits when lo ≤ 0 < hi (so x ↦ x/s keeps its zero), else None."""
    names = (list(node.input[1:3]) + ["", ""])[:2]
    if any(name and name not in values for name in names) or not names[1]:
        return None  # a computed limit, or no upper one (then it is not a clip we bound)
    low = float(values[names[0]]) if names[0] else -np.inf
    high = float(values[names[1]])
    return ClipBound(node.input[0], low, high) if low <= 0 < high else None


def find_pairs(model: onnx.ModelProto) -> list[ConvPair]:
    """Conv pairs whose joining tensors have no other reader and whose weights are constants."""
    graph = model.graph
    inits = {i.name for i in graph.initializer}
    small = {i.name: numpy_helper.to_array(i) for i in graph.initializer if len(i.dims) == 0}
    producer = {o: n for n in graph.node for o in n.output}
    uses = _uses(graph)

    def private(name: str) -> bool:
        return uses.get(name, 0) == 1

    def own_weights(conv: onnx.NodeProto) -> bool:
        return all(i in inits and private(i) for i in conv.input[1:] if i)

    pairs = []
    for second in graph.node:
        if second.op_type != "Conv" or not own_weights(second) or not private(second.input[0]):
            continue
        node, between, clips = producer.get(second.input[0]), [], []
        while node is not None and (node.op_type in HOMOGENEOUS or node.op_type == "Clip"):
            between.append(node.op_type)
            if node.op_type == "Clip":
                clips.append(_clip_bound(node, small))
            extra = [i for i in node.input[1:] if i and i not in inits]  # PRelu slope
            private_in = private(node.input[0]) and len(node.output) == 1  # MaxPool indices
            node = None if extra or not private_in else producer.get(node.input[0])
        if None in clips or len(clips) > 1:
            continue
        if node is not None and node.op_type == "Conv" and own_weights(node):
            clip = clips[0] if clips else None
            pairs.append(ConvPair(node, second, "+".join(reversed(between)), clip))
    return pairs


def _clip_limit(pair: ConvPair, s: np.ndarray, ranges: dict[str, np.ndarray]) -> np.ndarray:
    """s bounded so the pair's clip never acts on a scaled channel; 1 where it already may."""
    if pair.clip is None:
        return s
    clip, (low, high) = pair.clip, ranges[pair.clip.tensor]  # per-channel calibrated min, max
    bound = high * CLIP_HEADROOM >= clip.high
    least = high * CLIP_HEADROOM / clip.high
    if np.isfinite(clip.low) and clip.low < 0:
        bound |= low * CLIP_HEADROOM <= clip.low
        least = np.maximum(least, low * CLIP_HEADROOM / clip.low)
    s = np.where(bound, 1.0, np.maximum(s, least))
    ranges[clip.tensor] = (low / s, high / s)
    return s


def _ranges_out(weight: np.ndarray) -> np.ndarray:
    return np.abs(weight).reshape(weight.shape[0], -1).max(1)


def _ranges_in(weight: np.ndarray, groups: int) -> np.ndarray:
    """|max| of the weights reading each input channel (a group conv's rows of that group)."""
    out, per_group = weight.shape[0], weight.shape[1]
    grouped = np.abs(weight).reshape(groups, out // groups, per_group, -1)
    return grouped.max(axis=(1, 3)).reshape(-1)


def _scale_in(weight: np.ndarray, groups: int, s: np.ndarray) -> np.ndarray:
    out, per_group = weight.shape[0], weight.shape[1]
    grouped = weight.reshape(groups, out // groups, per_group, -1)
    return (grouped * s.reshape(groups, 1, per_group, 1)).reshape(weight.shape)


def _equalize_pair(pair: ConvPair, values: dict[str, np.ndarray], ranges: dict) -> float:
    """Rescale one pair in `values` (name -> float64 array); returns the largest |log s|."""
    w1, w2 = values[pair.first.input[1]], values[pair.second.input[1]]
    r1, r2 = _ranges_out(w1), _ranges_in(w2, _group(pair.second))
    if r1.shape != r2.shape:
        return 0.0
    s = np.where((r1 > 0) & (r2 > 0), np.sqrt(r1 / np.maximum(r2, 1e-300)), 1.0)
    s = _clip_limit(pair, s, ranges)
    values[pair.first.input[1]] = w1 / s.reshape(-1, *([1] * (w1.ndim - 1)))
    if len(pair.first.input) > 2 and pair.first.input[2]:
        values[pair.first.input[2]] = values[pair.first.input[2]] / s
    values[pair.second.input[1]] = _scale_in(w2, _group(pair.second), s)
    return float(np.abs(np.log(s)).max())


def equalize_convs(model: onnx.ModelProto, clip_ranges: dict | None = None) -> dict:
    """Equalize every eligible Conv pair of model in place; returns what was done.

    clip_ranges: Clip input tensor -> (per-channel min, per-channel max) on calibration data;
    a pair through a Clip is equalized only when its tensor is given.
    """
    ranges = {
        k: (np.asarray(lo, np.float64), np.asarray(hi, np.float64))
        for k, (lo, hi) in (clip_ranges or {}).items()
    }
    pairs = [p for p in find_pairs(model) if p.clip is None or p.clip.tensor in ranges]
    before = {k: v[1] for k, v in ranges.items()}
    inits = {i.name: i for i in model.graph.initializer}
    names = {n for p in pairs for c in (p.first, p.second) for n in c.input[1:] if n}
    values = {n: numpy_helper.to_array(inits[n]).astype(np.float64) for n in names}
    rounds = 0
    while pairs and rounds < ROUNDS:
        rounds += 1
        if max(_equalize_pair(p, values, ranges) for p in pairs) < SETTLED:
            break
    for name, value in values.items():
        inits[name].CopyFrom(numpy_helper.from_array(value.astype(np.float32), name))
    return {
        "pairs": len(pairs),
        "through": sorted({p.between or "none" for p in pairs}),
        "rounds": rounds,
        **_clip_summary(pairs, before, ranges),
    }


def _clip_summary(pairs: list[ConvPair], before: dict, ranges: dict) -> dict:
    """How many pairs went through a clip and how many of their channels the clip held at 1."""
    clipped = [p.clip.tensor for p in pairs if p.clip is not None]
    if not clipped:
        return {}
    held = sum(int(np.sum(before[t] == ranges[t][1])) for t in clipped)
    total = sum(before[t].size for t in clipped)
    return {"through_clip": len(clipped), "clip_channels_left": f"{held}/{total}"}
