"""Run a .pte in ExecuTorch's runtime (executorch.runtime), XNNPACK's threadpool sized to
`threads`; the model's I/O names and dims are read from the file's `io` constant method."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import numpy as np
import torch

from foundation.errors import ModelLoadError
from targets.base import Runner, TensorSpec

IO_METHOD = "compress_io"


def runtime_version() -> str:
    """ExecuTorch's version and the XNNPACK backend's presence."""
    from executorch.runtime import Runtime

    backends = Runtime.get().backend_registry.registered_backend_names
    return (
        f"executorch {importlib.metadata.version('executorch')} (backends: {', '.join(backends)})"
    )


def _size_threadpool(threads: int) -> None:
    """XNNPACK's threadpool is one per process and methods bind to it when they load: it is
    resized here, before loading (resizing under a loaded method crashes the process)."""
    from executorch.extension.pybindings.portable_lib import (
        _threadpool_get_thread_count,
        _unsafe_reset_threadpool,
    )

    if _threadpool_get_thread_count() != threads:
        _unsafe_reset_threadpool(threads)


class ExecuTorchRunner(Runner):
    """ExecuTorch's Python runtime: one program, its `forward` method; batches above the
    file's planned maximum are run in pieces."""

    runtime = "executorch"

    def __init__(self, path: Path, threads: int = 1) -> None:
        from executorch.runtime import Runtime, Verification

        _size_threadpool(threads)
        try:
            program = Runtime.get().load_program(Path(path), verification=Verification.Minimal)
            io = json.loads(program.load_method(IO_METHOD).execute([])[0])
            self._method = program.load_method("forward")
        except Exception as exc:
            raise ModelLoadError(
                f"ExecuTorch could not open '{path}' as a program written by compress: {exc}"
            ) from exc
        self._program = program
        self._inputs = [TensorSpec(n, tuple(s), d) for n, s, d in io["inputs"]]
        self._outputs = [TensorSpec(n, tuple(s), d) for n, s, d in io["outputs"]]
        # ExecuTorch may plan a tighter bound than asked for: the planned input size rules.
        planned = self._method.metadata.input_tensor_meta(0).sizes() if self._inputs else (1,)
        self.max_batch = min(int(io["max_batch"]) or 1, planned[0] if planned else 1)

    def _run_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        arrays = [feeds[s.name] for s in self._inputs]
        total = arrays[0].shape[0] if arrays and arrays[0].ndim else 1
        step = total if self.fixed_batch else self.max_batch
        parts = [self._execute([a[i : i + step] for a in arrays]) for i in range(0, total, step)]
        return {
            spec.name: np.concatenate([p[k] for p in parts]) if len(parts) > 1 else parts[0][k]
            for k, spec in enumerate(self._outputs)
        }

    def _execute(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        outs = self._method.execute([torch.from_numpy(np.ascontiguousarray(a)) for a in arrays])
        return [o.numpy().copy() for o in outs]
