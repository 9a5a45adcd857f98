"""The bound torch model as a torch.export program with a dynamic batch (TorchScript converted
first), the sample inputs it is traced and matched with, and the fp16 form of it."""

from __future__ import annotations

import copy
import logging
import warnings

import numpy as np
import torch

from foundation.errors import UnsupportedOp
from targets.base import TensorSpec, TorchSource


def example_inputs(source: TorchSource) -> tuple[torch.Tensor, ...]:
    """The source's sample repeated to the model's fixed batch, else 2 rows (1 would let
    torch.export specialise the batch); seeded random data without a sample."""
    fixed = {s.fixed_batch for s in source.inputs if s.fixed_batch}
    batch = fixed.pop() if len(fixed) == 1 else 2
    generator = torch.Generator().manual_seed(0)
    args = []
    for spec in source.inputs:
        known = (source.sample or {}).get(spec.name)
        if known is not None:
            rows = np.resize(np.asarray(known), (batch, *np.shape(known)[1:]))
            args.append(torch.from_numpy(np.ascontiguousarray(rows.astype(spec.dtype))))
        else:
            args.append(_random(spec, batch, generator))
    return tuple(args)


def _random(spec: TensorSpec, batch: int, generator: torch.Generator) -> torch.Tensor:
    shape = [batch, *(d if isinstance(d, int) and d > 0 else 1 for d in spec.shape[1:])]
    dtype = getattr(torch, spec.dtype)
    if dtype.is_floating_point:
        return torch.randn(shape, generator=generator).to(dtype)
    return torch.zeros(shape, dtype=dtype)


def export_program(
    source: TorchSource, max_batch: int, args: tuple[torch.Tensor, ...]
) -> tuple[torch.export.ExportedProgram, bool]:
    """torch.export of the source with axis 0 dynamic up to max_batch where the specs leave it
    dynamic (static at the example's batch when that fails); (program, batch is dynamic)."""
    module = _exportable(source.module, args)
    logging.getLogger("torch.export").setLevel(logging.ERROR)
    dynamic = any(s.fixed_batch is None for s in source.inputs) and max_batch > 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamic:
            batch = torch.export.Dim("batch", min=1, max=max_batch)
            shapes = tuple({0: batch} if s.fixed_batch is None else {} for s in source.inputs)
            if isinstance(module, HalfPrecision):  # forward(*args): one entry for all args
                shapes = (shapes,)
            try:
                return torch.export.export(module, args, dynamic_shapes=shapes), True
            except Exception:  # a model whose code fixes its batch: export it as it is
                pass
        args = tuple(a[: s.fixed_batch or 1] for a, s in zip(args, source.inputs, strict=True))
        try:
            return torch.export.export(module, args), False
        except Exception as exc:
            raise UnsupportedOp(
                f"executorch: torch.export could not trace the model ({type(exc).__name__}: "
                f"{str(exc).strip()[:300]}). ExecuTorch needs a model torch.export can capture."
            ) from exc


def _exportable(module: object, args: tuple[torch.Tensor, ...]) -> torch.nn.Module:
    """The module itself, or a TorchScript model converted to a torch.export program's module."""
    if not isinstance(module, torch.jit.ScriptModule):
        return module
    from torch._export.converter import TS2EPConverter

    try:
        return TS2EPConverter(module, args).convert().module()
    except Exception as exc:
        raise UnsupportedOp(
            f"executorch: this TorchScript model did not convert to torch.export "
            f"({type(exc).__name__}: {str(exc).strip()[:200]}). Save the model with "
            "torch.export.save (.pt2), or its state dict with --model-factory."
        ) from exc


class HalfPrecision(torch.nn.Module):
    """The model in fp16 behind float32 inputs and outputs (as the other targets' fp16 files)."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = _halved(module)

    def forward(self, *args: torch.Tensor) -> object:
        half = [a.half() if a.is_floating_point() else a for a in args]
        return torch.utils._pytree.tree_map(_to_float, self.module(*half))


def _to_float(value: object) -> object:
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.float()
    return value


def _halved(module: torch.nn.Module) -> torch.nn.Module:
    """A copy with every float parameter, buffer and plain tensor attribute in fp16 (a
    torch.export module keeps folded constants as plain attributes, which .half() skips)."""
    module = copy.deepcopy(module).half()
    for owner in module.modules():
        for name, value in list(vars(owner).items()):
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                setattr(owner, name, value.half())
    return module
