"""The torch fake-quant model that mirrors a Q/DQ ONNX graph, Q/DQ for Q/DQ.

QAT is only worth its time if what it trains is what ships. So the fake-quant points are not
chosen here: the student is exported and quantized once by the real quantize pass (the target's
QuantScheme, its placement rules, the calibration ranges), and that Q/DQ graph says which
activations carry Q/DQ, with which scale and zero point, and which weights are int8. Each
quantized ONNX activation is matched to the torch fx node that computes the same values on a
sample (names differ between torch and ONNX; values do not), and a fake-quant is placed after
that node; each quantized Conv/Gemm weight gets per-channel symmetric fake-quant computed as
onnxruntime computes it. Ops are torch's own fake-quant kernels (`torch.fake_quantize_*`, with
LSQ's learnable-scale kernel), which round half to even and clamp as QuantizeLinear does.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import fx, nn

from compressor.passes.trainable import rebuild_layers
from foundation.errors import UsageError
from targets.arithmetic import exact_session

QDQ_INPUT_SUFFIX = "_QuantizeLinear_Input"  # onnxruntime's rename of a quantized graph output
DTYPE_RANGES = {np.uint8: (0, 255), np.int8: (-128, 127)}
MATCH_TOLERANCE = 1e-4  # max |torch - onnx| relative to the tensor's max |value|


@dataclass(frozen=True)
class ActQuant:
    """One quantized activation of the Q/DQ graph: its scale/zero point and their initializer."""

    tensor: str
    scale_name: str
    scale: float
    zero_point: int
    qmin: int
    qmax: int


def read_qdq(graph: onnx.ModelProto, fp32_names: set[str]) -> tuple[list[ActQuant], dict]:
    """Activation quantizers of a Q/DQ graph and the per-channel scales of its int8 weights."""
    inits = {i.name: numpy_helper.to_array(i) for i in graph.graph.initializer}
    acts, weights = [], {}
    for node in graph.graph.node:
        source = node.input[0]
        if node.op_type == "DequantizeLinear" and source in inits:
            if source.endswith("_quantized") and not source.endswith(".bias_quantized"):
                weights[source.removesuffix("_quantized")] = inits[node.input[1]]
        if node.op_type != "QuantizeLinear" or source in inits:
            continue
        name = source
        if name not in fp32_names and name.endswith(QDQ_INPUT_SUFFIX):
            name = name.removesuffix(QDQ_INPUT_SUFFIX)
        zp = inits[node.input[2]]
        qmin, qmax = DTYPE_RANGES[zp.dtype.type]
        scale = float(inits[node.input[1]])
        acts.append(ActQuant(name, node.input[1], scale, int(zp), qmin, qmax))
    return acts, weights


def to_fx(student: nn.Module, example: tuple[torch.Tensor, ...]) -> fx.GraphModule:
    """The student as an fx graph of real nn layers with BatchNorm folded into its conv/linear:
    the exported ONNX has it folded too, so the weights QAT quantizes are the ones that ship."""
    if isinstance(student, torch.jit.ScriptModule):
        raise UsageError("--qat needs a .pt2 or --model-factory model; TorchScript cannot train.")
    if not isinstance(student, fx.GraphModule):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.export.export(student.eval(), example, strict=False)
        student = rebuild_layers(program.module(check_guards=False))
    from torch.fx.experimental.optimization import fuse

    return split_composites(fuse(student.eval(), no_trace=True).eval())


aten = torch.ops.aten
# Ops the ONNX export writes as several nodes with a quantized tensor between them.
COMPOSITES = {
    aten.hardswish.default: lambda g, x: g.call_function(
        aten.mul.Tensor, (x, g.call_function(aten.hardsigmoid.default, (x,)))
    ),
}


def split_composites(module: fx.GraphModule) -> fx.GraphModule:
    """HardSwish as x * HardSigmoid(x), as its ONNX form: the Q/DQ graph quantizes the
    HardSigmoid between them, so torch needs a node there to mirror it."""
    for node in list(module.graph.nodes):
        split = COMPOSITES.get(node.target) if node.op == "call_function" else None
        if split is None:
            continue
        with module.graph.inserting_before(node):
            new = split(module.graph, node.args[0])
        node.replace_all_uses_with(new)
        module.graph.erase_node(node)
    module.recompile()
    return module


def node_values(module: fx.GraphModule, example: tuple[torch.Tensor, ...]) -> dict[str, object]:
    """Every fx node's output on the example, by node name."""
    values: dict[str, object] = {}

    class Recorder(fx.Interpreter):
        def run_node(self, n: fx.Node) -> object:
            out = super().run_node(n)
            values[n.name] = out
            return out

    with torch.no_grad():
        Recorder(module).run(*example)
    return values


def onnx_values(fp32: onnx.ModelProto, names: list[str], feeds: dict) -> dict[str, np.ndarray]:
    """The named tensors of the fp32 ONNX graph on the feeds (exact, no graph optimizations)."""
    model = onnx.ModelProto()
    model.CopyFrom(fp32)
    present = {o.name for o in model.graph.output}
    model.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names if n not in present)
    session = exact_session(model.SerializeToString())
    outputs = [o.name for o in session.get_outputs()]
    return dict(zip(outputs, session.run(outputs, feeds), strict=True))


def match_nodes(
    module: fx.GraphModule, torch_vals: dict, onnx_vals: dict[str, np.ndarray], inputs: list[str]
) -> dict[str, str]:
    """ONNX tensor → the fx node computing the same values (graph inputs by position)."""
    placeholders = [n.name for n in module.graph.nodes if n.op == "placeholder"]
    candidates = [
        (name, v.detach().numpy())
        for name, v in torch_vals.items()
        if isinstance(v, torch.Tensor) and v.is_floating_point()
    ]
    found = {}
    for tensor, value in onnx_vals.items():
        scale = max(float(np.abs(value).max()), 1e-12)
        for name, candidate in candidates:
            same = candidate.shape == value.shape
            if same and np.abs(candidate - value).max() <= MATCH_TOLERANCE * scale:
                found[tensor] = name
                break
    found.update(zip(inputs, placeholders, strict=False))
    return found


class ActFakeQuant(nn.Module):
    """Per-tensor fake-quant with the Q/DQ graph's scale and zero point; LSQ learns the scale."""

    def __init__(self, quant: ActQuant, learn: bool) -> None:
        super().__init__()
        self.qmin, self.qmax, self.learn = quant.qmin, quant.qmax, learn
        # the log of the step size: Adam's steps then change it by a fraction, whatever its size
        self.log_scale = nn.Parameter(torch.tensor([quant.scale]).log(), requires_grad=learn)
        self.register_buffer("zero_point", torch.tensor([quant.zero_point], dtype=torch.int32))

    @property
    def scale(self) -> torch.Tensor:
        """The step size, as float32 (what the Q/DQ graph stores)."""
        return self.log_scale.exp()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.learn:
            return torch._fake_quantize_learnable_per_tensor_affine(
                x, self.scale, self.zero_point.float(), self.qmin, self.qmax, 1.0
            )
        return torch.fake_quantize_per_tensor_affine(
            x, float(self.scale), int(self.zero_point), self.qmin, self.qmax
        )


class WeightFakeQuant(nn.Module):
    """A conv/linear whose weight is fake-quantized per output channel, symmetric int8, with
    onnxruntime's scale (|w|max * 2 / 254 in float64, stored float32); the layer is shared."""

    def __init__(self, layer: nn.Module, per_channel: bool) -> None:
        super().__init__()
        self.layer, self.per_channel = layer, per_channel
        # onnxruntime raises a channel's weight scale where its int32 bias would overflow
        # (tiny weights, large bias): those raised scales, read from the Q/DQ graph, are kept
        self.register_buffer("floor", torch.zeros(len(layer.weight)))

    def weight_scale(self) -> torch.Tensor:
        """The scale per output channel (one repeated scale when per-tensor)."""
        w = self.layer.weight.detach()
        absmax = w.abs().flatten(1).amax(1) if self.per_channel else w.abs().max().expand(len(w))
        scale = torch.maximum((absmax.double() * 2 / 254).float(), self.floor)
        return torch.where(scale > 0, scale, torch.ones_like(scale))

    def keep_raised(self, graph_scale: np.ndarray) -> None:
        """Take the Q/DQ graph's scale as a floor where it is above absmax / 127."""
        theirs = torch.from_numpy(np.asarray(graph_scale, np.float32)).reshape(-1)
        if theirs.numel() == self.floor.numel():
            raised = theirs > self.weight_scale() * (1 + 1e-6)
            self.floor.copy_(torch.where(raised, theirs, torch.zeros_like(theirs)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        zeros = torch.zeros(len(self.layer.weight), dtype=torch.int32)
        w = torch.fake_quantize_per_channel_affine(
            self.layer.weight, self.weight_scale(), zeros, 0, -127, 127
        )
        if isinstance(self.layer, nn.Linear):
            return nn.functional.linear(x, w, self.layer.bias)
        return self.layer._conv_forward(x, w, self.layer.bias)


@dataclass
class Mirror:
    """The fake-quant model and what it mirrors of the Q/DQ graph."""

    model: fx.GraphModule
    acts: dict[str, ActFakeQuant]  # scale initializer name → its (shared) fake-quant
    tensors: dict[str, str]  # ONNX tensor → scale initializer name
    weights: list[str]  # quantized weight names
    unmatched: list[str]  # quantized ONNX tensors no torch node computes (left unmirrored)
    scale_gap: float  # max relative gap between our weight scales and the Q/DQ graph's


def build_mirror(
    student: fx.GraphModule,
    acts: list[ActQuant],
    weights: dict[str, np.ndarray],
    matches: dict[str, str],
    learn: bool,
    per_channel: bool,
) -> Mirror:
    """A GraphModule sharing the student's layers, with fake-quant where the Q/DQ graph has it."""
    graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    modules = dict(student.named_modules())
    root: dict[str, object] = {}
    fakes: dict[str, ActFakeQuant] = {}
    after: dict[str, str] = {}
    tensors, unmatched = {}, []
    for quant in acts:
        node = matches.get(quant.tensor)
        if node is None:
            unmatched.append(quant.tensor)
            continue
        fakes.setdefault(quant.scale_name, ActFakeQuant(quant, learn))
        after.setdefault(node, quant.scale_name)
        tensors[quant.tensor] = quant.scale_name
    scale_gap, wrapped = 0.0, []
    for node in student.graph.nodes:
        if node.op == "call_module" and f"{node.target}.weight" in weights:
            wrapper = WeightFakeQuant(modules[node.target], per_channel)
            wrapper.keep_raised(weights[f"{node.target}.weight"])
            scale_gap = max(
                scale_gap, _gap(wrapper.weight_scale(), weights[f"{node.target}.weight"])
            )
            root[f"qat_w_{len(wrapped)}"] = wrapper
            new = graph.call_module(f"qat_w_{len(wrapped)}", _map_args(node.args, env))
            wrapped.append(f"{node.target}.weight")
        else:
            new = graph.node_copy(node, lambda n: env[n])
            if node.op in ("call_module", "get_attr"):
                root[node.target] = _resolve(student, node.target)
        if node.name in after:
            key = f"qat_a_{len(root)}"
            root[key] = fakes[after[node.name]]
            new = graph.call_module(key, (new,))
        env[node] = new
    model = fx.GraphModule(root, graph).eval()
    return Mirror(model, fakes, tensors, wrapped, unmatched, scale_gap)


def _map_args(args: tuple, env: dict) -> tuple:
    return fx.node.map_arg(args, lambda n: env[n])


def _resolve(module: nn.Module, target: str) -> object:
    for part in target.split("."):
        module = getattr(module, part)
    return module


def _gap(ours: torch.Tensor, theirs: np.ndarray) -> float:
    theirs = torch.from_numpy(np.asarray(theirs, np.float32)).reshape(-1)
    if theirs.numel() != ours.numel():
        return float("inf")
    return float(((ours - theirs).abs() / theirs.abs().clamp(min=1e-30)).max())


def act_range(fake: ActFakeQuant, symmetric_range: tuple[int, int] | None) -> tuple[float, float]:
    """The calibration range from which onnxruntime recomputes this fake-quant's scale and zero
    point: (qmin - zp) * s .. (qmax - zp) * s, or ±s (qmax - qmin) / 2 when symmetric."""
    s = float(fake.scale.detach().abs())
    if symmetric_range is not None:
        half = s * (symmetric_range[1] - symmetric_range[0]) / 2
        return -half, half
    zp = int(fake.zero_point)
    return (fake.qmin - zp) * s, (fake.qmax - zp) * s
