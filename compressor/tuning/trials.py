"""Where --auto trials run: each candidate lowered for the target and run in its own runtime.

tflite candidates become .tflite files run in LiteRT, onnx candidates run in onnxruntime, and a
target that cannot run here (TensorRT without a GPU) hands back its proxy runner (the Q/DQ ONNX
in onnxruntime), which the tuning record then labels as a proxy. Latency is always timed
interleaved with the fp32 model lowered for the same target, so ratios hold on a loaded machine.
Quality is judged in the target scheme's int8 arithmetic (judging_runner), not on whatever
this CPU's onnxruntime kernels compute.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calibration.dataset import Dataset
from compressor.judging.latency import measure_latency
from foundation.errors import CompressError, UnsupportedOp
from targets.base import Runner, Target
from targets.registry import reference_runner

HOST = Runner.arithmetic  # "host": a runner on this CPU's own int8 kernels

TIMED_RUNS = 30


@dataclass
class TargetRuntime:
    """Lowers candidates for one target and opens its runners (the Target protocol only)."""

    target: Target
    options: object
    threads: int
    work: Path
    # Set once the fp32 artifact opened in a proxy: later candidates skip the lowering (and
    # its build checks) and open their Q/DQ ONNX in that proxy directly.
    proxy: bool = False

    def open(self, onnx_path: Path, precision: str, name: str) -> tuple[Runner, int]:
        """Lower onnx_path at precision into work/name; its runner and artifact size."""
        if self.proxy:
            return self.target.open_runner(onnx_path, self.threads), onnx_path.stat().st_size
        folder = self.work / name
        folder.mkdir(parents=True, exist_ok=True)
        artifact = self._lower(onnx_path, precision, folder)
        runner = self.target.open_runner(artifact.path, self.threads)
        self.proxy = runner.proxy_for is not None
        return runner, artifact.size_bytes

    def judging_runner(self, qdq: Path, runner: Runner, arithmetic: str) -> Runner:
        """What a candidate's quality is measured on: its own runner when the runtime's int8
        arithmetic does not depend on the CPU (LiteRT, TensorRT and its exact proxy), else its
        Q/DQ graph in the scheme's arithmetic, so a trial chosen here holds on every CPU."""
        fixed = self.target.capabilities.int8_arithmetic or runner.arithmetic != HOST
        if fixed or not self.target.capabilities.runs_qdq_graph:
            return runner
        return reference_runner(qdq, self.threads, arithmetic=arithmetic)

    def _lower(self, onnx_path: Path, precision: str, folder: Path):
        """With the run's target options; fp32 retries with defaults (e.g. an int8-only option)."""
        if precision == "int8":
            return self.target.lower(onnx_path, precision, folder, self.options)
        try:
            return self.target.lower(onnx_path, precision, folder, self.options)
        except UnsupportedOp:
            raise
        except CompressError:
            return self.target.lower(onnx_path, precision, folder, self.target.parse_options({}))


def describe_runtime(runner: Runner, target: str) -> dict:
    """What the trial numbers were measured in, and whether that is a proxy for the target."""
    proxy = runner.proxy_for is not None
    label = f"{runner.runtime}, batch 1, interleaved with the fp32 {target} artifact"
    if proxy:
        label += f" (a proxy: {runner.runtime} runs the Q/DQ ONNX that {target} would build"
        label += f", int8 in {runner.arithmetic} arithmetic)" if runner.arithmetic != HOST else ")"
    return {"runtime": runner.runtime, "proxy": proxy, "latency_runtime": label}


def run_outputs(runner: Runner, data: Dataset, batch: int = 64) -> list[np.ndarray]:
    """Every output of runner over data, concatenated in the runner's output order (in the
    artifact's own batch when it fixed one, e.g. a tflite LSTM at batch 1)."""
    names = [spec.name for spec in runner.outputs]
    parts = [runner.run(inputs) for inputs, _ in data.batches(runner.fixed_batch or batch)]
    return [np.concatenate([p[name] for p in parts]) for name in names]


def interleaved_ms(runners: list[Runner], feed: dict, runs: int = TIMED_RUNS) -> list[float]:
    """Median latency of each runner on one feed, timed by the verdict's interleaved loop
    (compressor/judging/latency.py) so that load on a shared machine hits all alike."""
    stats = measure_latency(runners, [feed] * len(runners), warmup=3, runs=runs)
    return [s.p50 for s in stats]
