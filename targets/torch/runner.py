"""Run a torch module (eager, TorchScript or torch.export's module) on CPU behind Runner."""

from __future__ import annotations

import numpy as np
import torch

from foundation.errors import DataError
from targets.base import Runner, TensorSpec

# What torch.export's module says when inputs break the shape guards it was exported with.
GUARD_WORDS = ("Guard failed", "Expected input at")


class TorchRunner(Runner):
    """Eager torch on CPU with `threads` intra-op threads and no autograd."""

    runtime = "torch"

    def __init__(self, module: torch.nn.Module, inputs: list[TensorSpec], threads: int = 1) -> None:
        self._module = module
        self._inputs = list(inputs)
        self._threads = threads
        self._outputs: list[TensorSpec] | None = None

    @property
    def outputs(self) -> list[TensorSpec]:
        if self._outputs is None:
            return [TensorSpec("output", ())]
        return self._outputs

    def _run_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if torch.get_num_threads() != self._threads:
            torch.set_num_threads(self._threads)
        with torch.no_grad():  # inference_mode breaks some TorchScript graphs (embeddings)
            args = [torch.from_numpy(feeds[spec.name]) for spec in self._inputs]
            result = _call_guarded(self._module, args)
        tensors = _flatten(result)
        if self._outputs is None:
            names = (
                ["output"] if len(tensors) == 1 else [f"output_{i}" for i in range(len(tensors))]
            )
            self._outputs = [
                TensorSpec(n, tuple(t.shape), str(t.numpy().dtype))
                for n, t in zip(names, tensors, strict=True)
            ]
        return {s.name: t.numpy() for s, t in zip(self._outputs, tensors, strict=True)}


def _call_guarded(module: torch.nn.Module, args: list[torch.Tensor]) -> object:
    """The module's result; inputs its export guards refuse are a data error (exit 2)."""
    try:
        return module(*args)
    except (RuntimeError, AssertionError) as exc:
        if not any(word in str(exc) for word in GUARD_WORDS):
            raise
        shapes = ", ".join(str(tuple(a.shape)) for a in args)
        raise DataError(
            f"The model refuses inputs of shape {shapes}: {str(exc).splitlines()[0]}. Give data "
            "of the shapes it was exported for (--data, --eval), or fix its dims with "
            "--input-shape."
        ) from exc


def _flatten(result: object) -> list[torch.Tensor]:
    if isinstance(result, torch.Tensor):
        return [result.detach()]
    if isinstance(result, dict):
        result = list(result.values())
    if isinstance(result, (list, tuple)):
        return [t for item in result for t in _flatten(item)]
    raise TypeError(f"Model returned {type(result).__name__}; expected tensors.")
