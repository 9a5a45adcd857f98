"""Make a loaded model trainable and prunable: torch.export graphs get real nn layers back.

`torch.export.load(...).module()` returns a GraphModule whose `train()`/`eval()` raise
NotImplementedError and whose layers are functional aten calls (`aten.conv2d(x, w, b)`), so
neither BatchNorm/dropout mode switches nor Torch-Pruning (which prunes nn.Conv2d/nn.Linear
modules) can work on it. torch 2.13 no longer ships `torch.ao.quantization.
move_exported_model_to_train` (it moved to torchao, not a dependency here), and that helper only
swaps op patterns and could not help pruning anyway. So we rebuild: every conv, linear,
batch-norm and dropout call whose weights are graph attributes becomes a call to a real
nn.Conv2d / nn.Linear / nn.BatchNormNd / nn.Dropout holding the same tensors, under the same
names, in a plain `torch.fx.GraphModule` whose train()/eval() work as in eager PyTorch.
"""

from __future__ import annotations

import copy
import io
import warnings
from collections.abc import Callable

import torch
from torch import fx, nn

from compressor.model.loading import LoadedModel
from foundation.errors import UsageError

aten = torch.ops.aten


def trainable_module(model: LoadedModel) -> nn.Module:
    """A deep copy of the model's module that supports train()/eval() and module-level pruning."""
    if model.kind == "onnx":
        raise UsageError(
            f"'{model.path}' is an ONNX model: pruning and distillation need a torch model "
            "(.pt2 from torch.export, TorchScript, or a state dict with --model-factory)."
        )
    if model.kind == "exported":
        return rebuild_layers(model.exported.module(check_guards=False))
    return clone_module(model.module)


def clone_module(module: nn.Module) -> nn.Module:
    """A deep copy; TorchScript goes through save/load (deepcopy leaves non-leaf parameters)."""
    if not isinstance(module, torch.jit.ScriptModule):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch's own pytree spec deprecation
            return copy.deepcopy(module)
    buffer = io.BytesIO()
    torch.jit.save(module, buffer)
    buffer.seek(0)
    return torch.jit.load(buffer, map_location="cpu")


def rebuild_layers(graph_module: fx.GraphModule) -> fx.GraphModule:
    """Turn functional conv/linear/batch-norm/dropout calls into nn modules (see module doc)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch's own pytree spec deprecation
        graph = copy.deepcopy(graph_module.graph)
    root = nn.Module()
    attrs = _attributes(graph_module)
    for node in list(graph.nodes):
        build = LAYER_BUILDERS.get(node.target) if node.op == "call_function" else None
        layer = build(node, attrs) if build else None
        if layer is None:
            continue
        name, module, inputs = layer
        if name in dict(root.named_modules()):
            continue  # a weight shared by two calls stays functional
        _set_submodule(root, name, module)
        with graph.inserting_before(node):
            call = graph.call_module(name, tuple(inputs))
        call.meta = dict(node.meta)
        node.replace_all_uses_with(call)
        graph.erase_node(node)
    for node in list(graph.nodes):
        if node.op == "get_attr" and not node.users:
            graph.erase_node(node)
        elif node.op == "get_attr" and node.target not in dict(root.named_parameters()):
            _set_attribute(root, node.target, attrs[node.target])
    graph.lint()
    return fx.GraphModule(root, graph).eval()


def _attributes(module: nn.Module) -> dict[str, torch.Tensor]:
    return {**dict(module.named_parameters()), **dict(module.named_buffers())}


def _attr(node: object, attrs: dict) -> torch.Tensor | None:
    """The tensor behind a get_attr node, None for anything else (computed or absent)."""
    if isinstance(node, fx.Node) and node.op == "get_attr":
        return attrs.get(node.target)
    return None


def _owner(node: fx.Node) -> str:
    """The layer name that owns a weight attribute: `features.0.weight` → `features.0`."""
    return node.target.rpartition(".")[0] or node.target


def _param(tensor: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(tensor.detach().clone())


def _conv(node: fx.Node, attrs: dict) -> tuple | None:
    x, w, b, stride, padding, dilation, groups = [*node.args, *CONV_DEFAULTS[len(node.args) :]]
    weight, bias = _attr(w, attrs), _attr(b, attrs)
    if weight is None or (b is not None and bias is None) or weight.dim() != 4:
        return None
    out_ch, in_per_group, kh, kw = weight.shape
    conv = nn.Conv2d(
        in_per_group * groups,
        out_ch,
        (kh, kw),
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        bias=bias is not None,
    )
    conv.weight = _param(weight)
    if bias is not None:
        conv.bias = _param(bias)
    return _owner(w), conv, [x]


CONV_DEFAULTS = (None, None, None, [1, 1], [0, 0], [1, 1], 1)


def _linear(node: fx.Node, attrs: dict) -> tuple | None:
    x, w, b = [*node.args, None][:3]
    weight, bias = _attr(w, attrs), _attr(b, attrs)
    if weight is None or (b is not None and bias is None):
        return None
    linear = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    linear.weight = _param(weight)
    if bias is not None:
        linear.bias = _param(bias)
    return _owner(w), linear, [x]


def _batch_norm(node: fx.Node, attrs: dict) -> tuple | None:
    x, w, b, mean, var, _training, momentum, eps = node.args[:8]
    weight, bias = _attr(w, attrs), _attr(b, attrs)
    running_mean, running_var = _attr(mean, attrs), _attr(var, attrs)
    if weight is None or bias is None or running_mean is None or running_var is None:
        return None
    val = x.meta.get("val") if isinstance(x, fx.Node) else None
    rank = val.dim() if isinstance(val, torch.Tensor) else 4
    cls = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}[rank]
    bn = cls(weight.numel(), eps=eps, momentum=momentum)
    bn.weight, bn.bias = _param(weight), _param(bias)
    bn.running_mean.copy_(running_mean)
    bn.running_var.copy_(running_var)
    return _owner(w), bn, [x]


def _dropout(node: fx.Node, attrs: dict) -> tuple | None:
    x, p = node.args[:2]
    name = f"dropout_{node.name}"
    return name, nn.Dropout(p), [x]


LAYER_BUILDERS: dict[object, Callable[[fx.Node, dict], tuple | None]] = {
    aten.conv2d.default: _conv,
    aten.linear.default: _linear,
    aten.batch_norm.default: _batch_norm,
    aten.dropout.default: _dropout,
}


def _parent_of(root: nn.Module, path: str) -> tuple[nn.Module, str]:
    """The module that holds `path`'s last name, creating empty containers on the way."""
    parent = root
    *parents, leaf = path.split(".")
    for part in parents:
        if not hasattr(parent, part):
            parent.add_module(part, nn.Module())
        parent = getattr(parent, part)
    return parent, leaf


def _set_submodule(root: nn.Module, path: str, module: nn.Module) -> None:
    parent, leaf = _parent_of(root, path)
    parent.add_module(leaf, module)


def _set_attribute(root: nn.Module, path: str, tensor: torch.Tensor) -> None:
    """Keep a weight that stays functional (e.g. a LayerNorm scale) under its own name."""
    parent, leaf = _parent_of(root, path)
    if hasattr(parent, leaf):
        return
    if isinstance(tensor, nn.Parameter):
        parent.register_parameter(leaf, _param(tensor))
    else:
        parent.register_buffer(leaf, tensor.detach().clone())
