"""Lower to ONNX Runtime: the (already quantized) ONNX graph ships as it is."""

from __future__ import annotations

import shutil
from pathlib import Path

import onnxruntime as ort

from targets.base import Artifact, QuantScheme, Runner, Target
from targets.onnx.rules import CAPABILITIES, OnnxOptions, scheme_for
from targets.onnx.runner import OnnxRuntimeRunner


class OnnxTarget(Target):
    """ONNX Runtime on CPU."""

    name = "onnx"
    capabilities = CAPABILITIES
    options_type = OnnxOptions

    def quant_scheme(self, options: object | None) -> QuantScheme:
        return scheme_for(options)

    def availability(self) -> tuple[bool, str]:
        return True, f"onnxruntime {ort.__version__} ({', '.join(ort.get_available_providers())})"

    def lower(self, onnx_path: Path, precision: str, out_dir: Path, options: object) -> Artifact:
        dst = out_dir / "model.onnx"
        shutil.copyfile(onnx_path, dst)
        return Artifact(
            dst, self.name, precision, info={"runtime": f"onnxruntime {ort.__version__}"}
        )

    def open_runner(self, artifact: Path, threads: int = 1) -> Runner:
        return OnnxRuntimeRunner(artifact, threads)
