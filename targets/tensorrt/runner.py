"""Run a TensorRT .engine on a CUDA GPU; torch CUDA tensors hold the I/O buffers."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from foundation.errors import ModelLoadError, TargetUnavailable
from targets.base import Runner, TensorSpec
from targets.tensorrt.toolchain import find_toolchain


def _torch_dtypes() -> dict:
    import torch

    return {
        "float32": torch.float32,
        "float16": torch.float16,
        "int64": torch.int64,
        "int32": torch.int32,
        "int8": torch.int8,
        "uint8": torch.uint8,
        "bool": torch.bool,
    }


class TensorRTRunner(Runner):
    """A deserialized engine with one execution context and stream; `threads` does not apply."""

    runtime = "tensorrt"

    def __init__(self, path: Path, threads: int = 1) -> None:
        tools = find_toolchain()
        if not tools.can_build:
            raise TargetUnavailable(
                f"Cannot run '{path}': {tools.why_no_engine()}. TensorRT engines run only on "
                "a CUDA GPU with TensorRT installed (pip install -e '.[tensorrt]' on that "
                "machine); the model.onnx beside it runs anywhere with --target onnx."
            )
        import torch

        self._trt, self._torch = tools.tensorrt, torch
        trt = self._trt
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.ERROR))
        self._engine = self._runtime.deserialize_cuda_engine(Path(path).read_bytes())
        if self._engine is None:
            raise ModelLoadError(
                f"TensorRT {trt.__version__} could not load '{path}': engines only run on the "
                "GPU model and TensorRT version that built them. Rebuild it here with "
                "build_engine.py from the model.onnx beside it."
            )
        self._context = self._engine.create_execution_context()
        self._stream = torch.cuda.Stream()
        self._dtypes = _torch_dtypes()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        is_input = {n: self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self._inputs = [self._spec(n) for n in names if is_input[n]]
        self._outputs = [self._spec(n) for n in names if not is_input[n]]
        self._max_batch = self._profile_max_batch()

    def _spec(self, name: str) -> TensorSpec:
        shape = tuple(d if d >= 0 else None for d in self._engine.get_tensor_shape(name))
        dtype = np.dtype(self._trt.nptype(self._engine.get_tensor_dtype(name))).name
        return TensorSpec(name, shape, dtype)

    def _profile_max_batch(self) -> int | None:
        """The largest batch profile 0 accepts, when the batch is dynamic."""
        dynamic = [s.name for s in self._inputs if s.fixed_batch is None]
        if not dynamic or self._engine.num_optimization_profiles == 0:
            return None
        return min(self._engine.get_tensor_profile_shape(n, 0)[2][0] for n in dynamic)

    def _run_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch = len(next(iter(feeds.values())))
        step = self._max_batch or batch
        if batch <= step:
            return self._run_batch(feeds)
        parts = [  # more samples than the profile's MAX: run it in profile-sized chunks
            self._run_batch({k: v[i : i + step] for k, v in feeds.items()})
            for i in range(0, batch, step)
        ]
        return {s.name: np.concatenate([p[s.name] for p in parts]) for s in self._outputs}

    def _run_batch(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch, context = self._torch, self._context
        with torch.cuda.stream(self._stream):
            held = {n: torch.from_numpy(np.ascontiguousarray(a)).cuda() for n, a in feeds.items()}
            for name, tensor in held.items():
                context.set_input_shape(name, tuple(tensor.shape))
                context.set_tensor_address(name, tensor.data_ptr())
            outputs = {}
            for spec in self._outputs:
                shape = tuple(context.get_tensor_shape(spec.name))
                outputs[spec.name] = torch.empty(
                    shape, dtype=self._dtypes[spec.dtype], device="cuda"
                )
                context.set_tensor_address(spec.name, outputs[spec.name].data_ptr())
            if not context.execute_async_v3(self._stream.cuda_stream):
                raise RuntimeError("TensorRT execution failed (see the TensorRT log above)")
            result = {n: t.cpu().numpy() for n, t in outputs.items()}
        self._stream.synchronize()
        return result

    def close(self) -> None:
        self._context = self._engine = self._runtime = None
