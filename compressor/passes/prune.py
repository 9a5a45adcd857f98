"""Structured channel pruning with Torch-Pruning's dependency graph (coupled layers kept in step).

Torch-Pruning 1.6.1 installs cleanly beside torch 2.13 (pure Python, CPU) and already tracks
the couplings a channel cut must respect (residual adds, concatenations, depthwise convs,
BatchNorm, the Linear after a flatten) through the autograd graph, so we reuse it rather than
writing our own graph walk.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch_pruning as tp
from torch import nn

from compressor.recipe import PruneConfig
from foundation.errors import CompressError, UsageError

IMPORTANCES: dict[str, Callable[[], tp.importance.Importance]] = {
    "l1": lambda: tp.importance.GroupMagnitudeImportance(p=1),
    "l2": lambda: tp.importance.GroupMagnitudeImportance(p=2),
    "taylor": lambda: tp.importance.GroupTaylorImportance(),
}
LAYER_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
TRANSPOSES = {"TBackward0", "TransposeBackward0", "PermuteBackward0"}


def output_layer_names(module: nn.Module, example: tuple[torch.Tensor, ...]) -> set[str]:
    """Names of the weight layers whose results reach the outputs with no other layer between."""
    owners = {
        id(p): name.rpartition(".")[0]
        for name, p in module.named_parameters()
        if name.endswith("weight") and p.dim() >= 2
    }
    with torch.enable_grad():
        outputs = module(*example)
    outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
    stack = [o.grad_fn for o in outputs if isinstance(o, torch.Tensor) and o.grad_fn]
    found, seen = set(), set()
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        names = {owners[id(v)] for v in _weights_of(fn) if id(v) in owners}
        if names:
            found |= names
            continue
        stack.extend(nxt for nxt, _ in fn.next_functions)
    return found


def _weights_of(fn: object) -> list[torch.Tensor]:
    """Leaf tensors an autograd node reads directly or through a transpose (Linear's weight.T)."""
    leaves = []
    for nxt, _ in fn.next_functions:
        if nxt is None:
            continue
        if hasattr(nxt, "variable"):
            leaves.append(nxt.variable)
        elif type(nxt).__name__ in TRANSPOSES:
            leaves.extend(n.variable for n, _ in nxt.next_functions if hasattr(n, "variable"))
    return leaves


def protected_layers(
    module: nn.Module, config: PruneConfig, example: tuple[torch.Tensor, ...]
) -> set[str]:
    """Output layers plus the user's --prune-exclude names (each checked to exist)."""
    known = {name for name, _ in module.named_modules()}
    unknown = [name for name in config.exclude if name not in known]
    if unknown:
        layers = [n for n, m in module.named_modules() if isinstance(m, LAYER_TYPES)]
        raise UsageError(
            f"--prune-exclude names {unknown} are not modules of this model; its layers are "
            f"{layers[:20]}{' ...' if len(layers) > 20 else ''}."
        )
    return output_layer_names(module, example) | set(config.exclude)


def prune_channels(
    module: nn.Module,
    config: PruneConfig,
    example: tuple[torch.Tensor, ...],
    taylor_batch: Callable[[nn.Module], torch.Tensor] | None = None,
) -> dict:
    """Remove whole output channels in place; return per-layer channel counts before/after."""
    if isinstance(module, torch.jit.ScriptModule):
        raise UsageError(
            "Structured pruning cannot change a TorchScript module's layer shapes (its code is "
            "compiled around them). Save the model with torch.export (.pt2) or as a state dict "
            "with --model-factory, or use --prune-method unstructured / 2:4, which keep shapes."
        )
    protected = protected_layers(module, config, example)
    ignored = [m for name, m in module.named_modules() if name in protected]
    before = _channels(module)
    try:
        _run_pruner(module, config, example, ignored, taylor_batch)
    except CompressError:
        raise
    except Exception as exc:  # Torch-Pruning fails deep inside on graphs it cannot follow
        raise UsageError(
            f"Structured pruning failed on this model ({type(exc).__name__}: {exc}). "
            "Convolutional and linear stacks are supported; attention and recurrent layers may "
            "not be. Keep the failing layers with --prune-exclude NAME, or use --prune-method "
            "unstructured / 2:4, which keep shapes."
        ) from exc
    _check_runs(module, example)
    after = _channels(module)
    if after == before:
        raise UsageError(
            "Structured pruning found no channels it could remove (the prunable layers are all "
            "excluded, protected, or not nn.Conv/nn.Linear, e.g. an LSTM). Use --prune-method "
            "unstructured or 2:4 for such models."
        )
    return {
        "method": config.method,
        "ratio": config.ratio,
        "global_ranking": config.global_ranking,
        "round_to": config.round_to,
        "protected": sorted(protected),
        "channels": {n: [before[n], after[n]] for n in before if before[n] != after[n]},
    }


def _run_pruner(
    module: nn.Module,
    config: PruneConfig,
    example: tuple[torch.Tensor, ...],
    ignored: list[nn.Module],
    taylor_batch: Callable[[nn.Module], torch.Tensor] | None,
) -> None:
    """Build Torch-Pruning's dependency graph and remove the least important channel groups."""
    pruner = tp.pruner.MetaPruner(
        module,
        example,
        importance=IMPORTANCES[config.method](),
        global_pruning=config.global_ranking,
        pruning_ratio=config.ratio,
        max_pruning_ratio=0.9,
        ignored_layers=ignored,
        round_to=config.round_to,
    )
    if config.method == "taylor":
        module.zero_grad()
        taylor_batch(module).backward()
    pruner.step()
    module.zero_grad()


def _channels(module: nn.Module) -> dict[str, int]:
    return {
        name: m.weight.shape[0] for name, m in module.named_modules() if isinstance(m, LAYER_TYPES)
    }


def _check_runs(module: nn.Module, example: tuple[torch.Tensor, ...]) -> None:
    try:
        with torch.no_grad():
            module(*example)
    except RuntimeError as exc:
        raise UsageError(
            f"The pruned model no longer runs ({exc}). The model likely reshapes with fixed "
            "channel counts; keep those layers with --prune-exclude NAME."
        ) from exc
