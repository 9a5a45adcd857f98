"""Lower to OpenVINO: the (fp32 or Q/DQ) ONNX read by OpenVINO and saved as IR in a folder."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import openvino as ov

from foundation.errors import UnsupportedOp
from targets.base import Artifact, Runner, Target, TargetOptions
from targets.openvino.capabilities import CAPABILITIES
from targets.openvino.options import OpenVinoOptions
from targets.openvino.runner import (
    MODEL_XML,
    OpenVinoRunner,
    compile_ir,
    core,
    cpu_config,
    runtime_version,
    weighted_layers,
)

# Runtime precisions of a weighted layer that mean it runs on integer kernels.
INTEGER_PRECISIONS = ("u8", "i8")


class OpenVinoTarget(Target):
    """Intel OpenVINO on CPU: IR folder (model.xml + model.bin)."""

    name = "openvino"
    capabilities = CAPABILITIES
    options_type = OpenVinoOptions

    def availability(self) -> tuple[bool, str]:
        cpu = core().get_property("CPU", "FULL_DEVICE_NAME")
        return True, f"{runtime_version()} on CPU ({cpu})"

    def _lower_impl(
        self, onnx_path: Path, precision: str, work: Path, options: TargetOptions
    ) -> Artifact:
        try:
            model = core().read_model(str(onnx_path))
        except RuntimeError as exc:  # OpenVINO's ONNX frontend names the op it cannot convert
            raise UnsupportedOp(
                f"OpenVINO {ov.__version__.split('-')[0]} cannot read this ONNX graph: "
                f"{_first_lines(exc)}. Try another target (onnx runs every ONNX op)."
            ) from exc
        folder = work / f"model{CAPABILITIES.artifact.suffix}"
        folder.mkdir()
        # compress_to_fp16 stores float weights as fp16 (decompressed when compiled).
        ov.save_model(model, str(folder / MODEL_XML), compress_to_fp16=precision == "fp16")
        config = cpu_config(1, options.inference_precision)
        compiled = compile_ir(core().read_model(str(folder / MODEL_XML)), config, folder)
        layers = weighted_layers(compiled)
        info = {
            "runtime": runtime_version(),
            "cpu_settings": {**config, "INFERENCE_NUM_THREADS": "the run's --threads"},
            "weight_storage": "fp16" if precision == "fp16" else _storage(model),
            "layer_precisions": dict(Counter(layer["precision"] for layer in layers)),
            "weighted_layers": layers,
            "notes": _notes(precision, layers),
        }
        return Artifact(folder, self.name, precision, info=info)

    def _open_runner_impl(self, path: Path, threads: int, options: TargetOptions) -> Runner:
        return OpenVinoRunner(path, threads, options.inference_precision)

    def trace_layers(
        self, artifact: Artifact, feeds: dict[str, np.ndarray]
    ) -> dict[str, tuple[np.ndarray, str]] | None:
        """Every named float tensor of the IR, read from the CPU plugin with it as an extra
        output (the value its readers get: after its FakeQuantize in int8)."""
        from targets.openvino.trace import trace_tensors

        options = artifact.options or OpenVinoOptions()
        return trace_tensors(Path(artifact.path), feeds, options.inference_precision)


def _storage(model: ov.Model) -> str:
    """How the IR stores its weights: int8 where any Constant is int8, else fp32."""
    types = {
        op.get_element_type().get_type_name()
        for op in model.get_ops()
        if op.get_type_name() == "Constant"
    }
    return "int8" if "i8" in types else "fp32"


def _notes(precision: str, layers: list[dict]) -> list[str]:
    """Plain words on the precision the weighted layers run in."""
    if precision != "int8":
        return []
    floating = [layer["layer"] for layer in layers if layer["precision"] not in INTEGER_PRECISIONS]
    if not floating:
        return [f"openvino: all {len(layers)} Conv/MatMul layers run on u8/i8 kernels."]
    shown = ", ".join(floating[:5]) + (" ..." if len(floating) > 5 else "")
    return [
        f"openvino: {len(floating)} of {len(layers)} Conv/MatMul layers run in float, not on "
        f"int8 kernels ({shown}); see artifact_info.weighted_layers."
    ]


def _first_lines(exc: Exception) -> str:
    """OpenVINO's error without its C++ source locations, on one line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    kept = [line for line in lines if not line.startswith(("Check ", "Exception from src"))]
    return " ".join(kept or lines)[:400]
