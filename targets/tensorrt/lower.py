"""Lower to TensorRT: the explicit-quantization ONNX, build_engine.py, and an engine where possible."""

from __future__ import annotations

import ast
import shutil
import time
from pathlib import Path

from foundation.errors import UnsupportedOp
from targets.arithmetic import EXACT
from targets.base import Artifact, Runner, Target, TargetOptions
from targets.registry import reference_runner
from targets.tensorrt import build_engine
from targets.tensorrt.capabilities import CAPABILITIES
from targets.tensorrt.options import TensorRTOptions
from targets.tensorrt.toolchain import Toolchain, build_check, find_toolchain

BUILD_COMMAND = "python build_engine.py model.onnx model.engine"


class TensorRTTarget(Target):
    """NVIDIA TensorRT: engines built on a GPU; elsewhere Q/DQ ONNX + a device build script."""

    name = "tensorrt"
    capabilities = CAPABILITIES
    options_type = TensorRTOptions

    def availability(self) -> tuple[bool, str]:
        tools = find_toolchain()
        if tools.can_build:
            return True, f"tensorrt {tools.tensorrt.__version__} on {tools.gpu}: builds engines"
        check = (
            f"build check with tensorrt-rtx {tools.rtx.__version__}"
            if tools.rtx
            else "no build check (pip install -e '.[tensorrt-check]')"
        )
        return True, (
            f"proxy mode ({tools.why_no_engine()}): writes Q/DQ ONNX + build_engine.py, "
            f"verifies in onnxruntime, {check}"
        )

    def _lower_impl(
        self, onnx_path: Path, precision: str, work: Path, options: TargetOptions
    ) -> Artifact:
        settings = options.settings(precision)
        onnx_file = work / "model.onnx"
        shutil.copyfile(onnx_path, onnx_file)
        script = write_build_script(work / "build_engine.py", settings)
        tools = find_toolchain()
        info = {"build_settings": settings, "build_command": _command(settings)}
        if tools.can_build:
            return _build_on_gpu(tools, onnx_file, script, precision, settings, info)
        info["engine_built"] = False
        if options.build_check and tools.rtx is not None:
            info["build_check"] = build_check(onnx_file, settings, tools.rtx)
        info["notes"] = proxy_notes(tools, info, options.build_check)
        return Artifact(onnx_file, self.name, precision, (script,), info)

    def _open_runner_impl(self, path: Path, threads: int, options: TargetOptions) -> Runner:
        if path.suffix.lower() == ".onnx":  # proxy mode: the Q/DQ ONNX in the reference runtime
            # TensorRT sums int8 in int32: the proxy runs the Q/DQ graph in exact arithmetic,
            # not on this CPU's int8 kernels (which may saturate, see docs/cpu-profiles.md).
            return reference_runner(path, threads, proxy_for=self.name, arithmetic=EXACT.name)
        from targets.tensorrt.runner import TensorRTRunner

        return TensorRTRunner(path, threads)


def write_build_script(path: Path, settings: dict) -> Path:
    """Copy build_engine.py to path with its SETTINGS assignment set to this run's settings."""
    source = Path(build_engine.__file__).read_text()
    lines = source.splitlines(keepends=True)
    (assign,) = [
        node
        for node in ast.parse(source).body
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "SETTINGS"
    ]
    lines[assign.lineno - 1 : assign.end_lineno] = [f"SETTINGS = {settings!r}\n"]
    path.write_text("".join(lines))
    return path


def _command(settings: dict) -> str:
    """The device-side command line, flags spelled out."""
    flags = [
        "--fp16" if settings["fp16"] else "--no-fp16",
        "--int8" if settings["int8"] else "--no-int8",
        f"--workspace-mb {settings['workspace_mb']}",
        f"--batch {','.join(str(b) for b in settings['batch'])}",
    ]
    if settings["timing_cache"]:
        flags.append(f"--timing-cache {settings['timing_cache']}")
    return f"{BUILD_COMMAND} {' '.join(flags)}"


def _build_on_gpu(
    tools: Toolchain, onnx_file: Path, script: Path, precision: str, settings: dict, info: dict
) -> Artifact:
    started = time.perf_counter()
    engine, result = build_engine.build_serialized(tools.tensorrt, onnx_file, settings)
    if engine is None:
        raise UnsupportedOp(
            f"TensorRT {tools.tensorrt.__version__} could not build '{onnx_file.name}': "
            f"{'; '.join(result['errors'])}. Try another precision or check the model's ops."
        )
    engine_file = onnx_file.with_name("model.engine")
    engine_file.write_bytes(engine)
    seconds = round(time.perf_counter() - started, 3)
    tool = f"tensorrt {tools.tensorrt.__version__}"
    info |= {"engine_built": True, "gpu": tools.gpu}
    info["build"] = {"tool": tool, **result, "engine_bytes": len(engine), "seconds": seconds}
    info["runtime"] = tool
    info["notes"] = [
        f"Built model.engine with TensorRT {tools.tensorrt.__version__} on {tools.gpu} in "
        f"{seconds:.1f} s (flags {result['flags']}); it runs only on this GPU model and "
        f"TensorRT version. For another device, copy model.onnx and build_engine.py there "
        f"and run: {info['build_command']}"
    ]
    return Artifact(engine_file, "tensorrt", precision, (onnx_file, script), info)


def proxy_notes(tools: Toolchain, info: dict, check_asked: bool) -> list[str]:
    """Plain words for the report: what was built, what was only proxied, how to build."""
    notes = [
        f"No TensorRT engine was built here ({tools.why_no_engine()}). Shipped: model.onnx "
        "(explicit-quantization Q/DQ ONNX for TensorRT) and build_engine.py.",
        "Accuracy and latency were measured on the Q/DQ ONNX in onnxruntime on CPU as a "
        "PROXY for the engine: TensorRT's fused kernels, fp16 fallback and GPU latency "
        "were not measured.",
        f"Build the engine on the device (TensorRT + GPU, e.g. a Jetson): {info['build_command']}",
    ]
    check = info.get("build_check")
    if check is None:
        reason = "disabled by build_check=false" if not check_asked else tools.rtx_missing
        notes.append(f"No CPU build check ran ({reason}); install it with .[tensorrt-check].")
    elif check["built"]:
        notes.append(
            f"Build check: {check['tool']} parsed and built model.onnx on CPU in "
            f"{check['seconds']:.2f} s. That is a compatibility check, not the shipped engine "
            "(TensorRT-RTX targets desktop GPUs)."
        )
    else:
        verb = "build" if check["parsed"] else "parse"
        notes.append(
            f"WARNING: build check: {check['tool']} could not {verb} model.onnx: "
            f"{'; '.join(check['errors'])}. The device build may fail too."
        )
    return notes
