"""Run an OpenVINO IR folder on OpenVINO's CPU plugin with a fixed thread count."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import openvino as ov

from foundation.errors import ModelLoadError
from targets.base import Runner, TensorSpec

MODEL_XML = "model.xml"
# Runtime layer types of the weighted ops whose precision the report lists.
WEIGHTED_LAYERS = ("Convolution", "Deconvolution", "FullyConnected", "MatMul", "GroupConvolution")


@cache
def core() -> ov.Core:
    """One OpenVINO Core per process (it loads the plugins once)."""
    return ov.Core()


def runtime_version() -> str:
    """The OpenVINO release that runs the artifacts, e.g. `openvino 2026.4.1`."""
    return f"openvino {ov.__version__.split('-')[0]}"


def cpu_config(threads: int, inference_precision: str = "f32") -> dict:
    """CPU plugin settings: `threads` inference threads, one stream for the lowest latency of a
    single request, threads not pinned to cores, the float arithmetic fixed (bf16 is OpenVINO's
    default where the CPU has it) and no dynamic quantization of activations (on by itself on
    some CPUs only)."""
    return {
        "INFERENCE_NUM_THREADS": threads,
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1,
        # Pinned stream threads wait for their core while this process's own thread, other
        # runners timed in turn (fp32 vs int8) or other jobs hold it: 8 ms per call was
        # measured on a loaded 2-core machine for a model that runs in 0.1 ms unpinned.
        "ENABLE_CPU_PINNING": False,
        "INFERENCE_PRECISION_HINT": inference_precision,
        "DYNAMIC_QUANTIZATION_GROUP_SIZE": 0,
    }


def read_ir(folder: Path) -> ov.Model:
    """The model of an IR folder; a folder without a readable model.xml is a ModelLoadError."""
    xml = folder / MODEL_XML
    if not xml.is_file():
        raise ModelLoadError(f"'{folder}' holds no {MODEL_XML}; pass a model.openvino folder.")
    try:
        return core().read_model(str(xml))
    except RuntimeError as exc:
        raise ModelLoadError(f"OpenVINO could not read '{xml}': {exc}") from exc


def compile_ir(model: ov.Model, config: dict, where: Path) -> ov.CompiledModel:
    """The model compiled for the CPU plugin with config."""
    try:
        return core().compile_model(model, "CPU", config)
    except RuntimeError as exc:
        raise ModelLoadError(f"OpenVINO could not compile '{where}' for CPU: {exc}") from exc


class OpenVinoRunner(Runner):
    """An IR folder compiled by OpenVINO's CPU plugin; one synchronous infer request."""

    runtime = "openvino"

    def __init__(self, folder: Path, threads: int = 1, inference_precision: str = "f32") -> None:
        model = read_ir(folder)
        self.config = cpu_config(threads, inference_precision)
        self._compiled = compile_ir(model, self.config, folder)
        self._request = self._compiled.create_infer_request()
        # Names from the IR: compiling merges a tensor's names (an ONNX Identity's input and
        # output), after which a compiled port may answer to the name of an inner tensor.
        self._inputs = [_spec(port) for port in model.inputs]
        self._outputs = [_spec(port) for port in model.outputs]

    def _run_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = self._request.infer([feeds[spec.name] for spec in self._inputs])
        ports = self._compiled.outputs
        return {
            spec.name: np.array(results[port])
            for spec, port in zip(self._outputs, ports, strict=True)
        }

    def settings(self) -> dict[str, str]:
        """The CPU plugin settings the compiled model reports back, for each one set."""
        values = {key: self._compiled.get_property(key) for key in self.config}
        return {key: getattr(v, "get_type_name", lambda v=v: str(v))() for key, v in values.items()}

    def layer_precisions(self) -> list[dict]:
        """Each weighted layer the CPU plugin runs, with its runtime precision (u8/i8/f32)."""
        return weighted_layers(self._compiled)

    def close(self) -> None:
        self._request = None
        self._compiled = None


def weighted_layers(compiled: ov.CompiledModel) -> list[dict]:
    """{"layer", "type", "precision"} of every Conv/MatMul-like node of the compiled model."""
    rows = []
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        kind = info["layerType"].astype(str)
        if kind in WEIGHTED_LAYERS:
            precision = info["runtimePrecision"].astype(str)
            rows.append({"layer": op.get_friendly_name(), "type": kind, "precision": precision})
    return rows


def _spec(port: ov.Output) -> TensorSpec:
    shape = tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())
    return TensorSpec(port.get_any_name(), shape, np.dtype(port.get_element_type().to_dtype()).name)
