"""Lower to ONNX Runtime: the (already quantized) ONNX graph ships as it is."""

from __future__ import annotations

import shutil
from pathlib import Path

import onnxruntime as ort

from targets.base import Artifact, QuantScheme, Runner, Target, TargetOptions
from targets.onnx.capabilities import CAPABILITIES, scheme_for
from targets.onnx.io import describe_onnx_io
from targets.onnx.options import OnnxOptions
from targets.onnx.runner import OnnxRuntimeRunner


class OnnxTarget(Target):
    """ONNX Runtime on CPU."""

    name = "onnx"
    capabilities = CAPABILITIES
    options_type = OnnxOptions

    def quant_scheme(self, options: TargetOptions | None) -> QuantScheme:
        return scheme_for(options)

    def cpu_profile(self, options: TargetOptions | None) -> tuple[str, tuple[str, ...]]:
        profile = (options if isinstance(options, OnnxOptions) else OnnxOptions()).profile
        return profile.name, tuple(a.name for a in profile.arithmetics)

    def availability(self) -> tuple[bool, str]:
        return True, f"onnxruntime {ort.__version__} ({', '.join(ort.get_available_providers())})"

    def describe_io(self, path: Path) -> dict:
        return describe_onnx_io(path)

    def _lower_impl(
        self, onnx_path: Path, precision: str, work: Path, options: TargetOptions
    ) -> Artifact:
        dst = work / "model.onnx"
        shutil.copyfile(onnx_path, dst)
        info = {"runtime": f"onnxruntime {ort.__version__}"}
        if precision in ("int8", "dynamic"):  # the profile it was verified for, `host` resolved
            info["cpu"] = self.cpu_profile(options)[0]
        return Artifact(dst, self.name, precision, info=info)

    def _open_runner_impl(self, path: Path, threads: int, options: TargetOptions) -> Runner:
        return OnnxRuntimeRunner(path, threads)
