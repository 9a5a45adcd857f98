"""Which forward() parameters are model inputs: tensor-typed positional ones without defaults.

A `forward(x, embed=False)` takes one input, `x`; parameters with defaults or non-tensor
annotations (flags, sizes, modes) keep their defaults. --input-shape may name a defaulted
tensor parameter to include it (with every defaulted parameter before it, since inputs are
passed by position).
"""

from __future__ import annotations

import inspect

import torch

from foundation.errors import UsageError

# Annotations that mark a parameter as not a tensor input.
NON_TENSOR = (bool, int, float, str, bytes, type(None))


def forward_inputs(module: torch.nn.Module) -> tuple[list[str], list[str]]:
    """(required tensor inputs, defaulted ones that may be included) of module.forward."""
    if isinstance(module, torch.jit.ScriptModule):
        args = module.forward.schema.arguments[1:]
        tensors = [a for a in args if "Tensor" in str(a.type)]
        return (
            [a.name for a in tensors if not a.has_default_value()],
            [a.name for a in tensors if a.has_default_value()],
        )
    params = inspect.signature(module.forward).parameters.values()
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    tensors = [p for p in positional if p.annotation not in NON_TENSOR]
    return (
        [p.name for p in tensors if p.default is p.empty],
        [p.name for p in tensors if p.default is not p.empty],
    )


def included_optional(module: torch.nn.Module, named: list[str]) -> list[str]:
    """The defaulted tensor parameters that --input-shape names, checked to be a prefix."""
    _, optional = forward_inputs(module)
    chosen = [n for n in optional if n in named]
    if chosen and optional[: len(chosen)] != chosen:
        skipped = [n for n in optional[: optional.index(chosen[-1])] if n not in chosen]
        raise UsageError(
            f"--input-shape includes forward() parameter '{chosen[-1]}', but inputs are passed "
            f"by position: give --input-shape for {skipped} too."
        )
    return chosen
