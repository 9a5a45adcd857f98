"""Lower the bound torch model to an ExecuTorch .pte: torch.export → (fp16 | int8 through PT2E
with the Q/DQ ONNX graph's decisions) → to_edge_transform_and_lower with XNNPACK → .pte."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import time
import warnings
from pathlib import Path

import onnx
import torch

from foundation.errors import TargetUnavailable, UnsupportedOp
from targets.base import Artifact, Runner, Target, TargetOptions, TorchSource
from targets.executorch.capabilities import CAPABILITIES, INSTALL
from targets.executorch.export import HalfPrecision, example_inputs, export_program
from targets.executorch.options import ExecuTorchOptions

SCHEME_NOTE = (
    "executorch int8: activations are int8 with the Q/DQ graph's own scales and zero points "
    "(the scheme is XNNPACK's: asymmetric int8, not onnxruntime's uint8); weights per-channel "
    "symmetric int8 in [-127, 127] as quantized there; XNNPACK quantizes the float bias to "
    "int32 itself (input scale × weight scale, as the Q/DQ graph does)."
)


class ExecuTorchTarget(Target):
    """ExecuTorch with the XNNPACK delegate: a .pte run by executorch.runtime."""

    name = "executorch"
    capabilities = CAPABILITIES
    options_type = ExecuTorchOptions

    def availability(self) -> tuple[bool, str]:
        if importlib.util.find_spec("executorch") is None:
            return False, f"executorch is not installed; {INSTALL}"
        from targets.executorch.runner import runtime_version

        return True, runtime_version()

    def check_request(self, precision: str, options: object = None) -> TargetOptions:
        """The base checks, then the runtime's presence: refused before any work without it."""
        checked = super().check_request(precision, options)
        if importlib.util.find_spec("executorch") is None:
            raise TargetUnavailable(f"Target 'executorch' needs ExecuTorch: {INSTALL}.")
        return checked

    def _lower_impl(
        self, onnx_path: Path, precision: str, work: Path, options: TargetOptions
    ) -> Artifact:
        started = time.perf_counter()
        source = self.torch_source
        names = [o.name for o in onnx.load(str(onnx_path), load_external_data=False).graph.output]
        with warnings.catch_warnings():  # torch and executorch deprecation chatter
            warnings.simplefilter("ignore")
            program, batch, facts = _program_for(source, precision, onnx_path, options.max_batch)
            data, info = _to_pte(program, _io_record(program, source, batch, names), precision)
        dst = work / "model.pte"
        dst.write_bytes(data)
        info = {**info, **facts, "conversion_s": round(time.perf_counter() - started, 3)}
        return Artifact(dst, self.name, precision, info=info)

    def _open_runner_impl(self, path: Path, threads: int, options: TargetOptions) -> Runner:
        if importlib.util.find_spec("executorch") is None:
            raise TargetUnavailable(f"Running a .pte needs ExecuTorch: {INSTALL}.")
        from targets.executorch.runner import ExecuTorchRunner

        return ExecuTorchRunner(path, threads)


def _program_for(
    source: TorchSource, precision: str, onnx_path: Path, max_batch: int
) -> tuple[torch.export.ExportedProgram, int | None, dict]:
    """The program to lower at precision, its batch bound (None: fixed) and what was done."""
    args = example_inputs(source)
    program, dynamic = export_program(source, max_batch, args)
    facts: dict = {}
    if precision == "fp16":
        program, dynamic = export_program(
            _rebound(source, HalfPrecision(program.module())), max_batch, args
        )
    elif precision == "int8":
        from targets.executorch.quantize import quantize_program

        real = all(s.name in (source.sample or {}) for s in source.inputs)
        converted, facts = quantize_program(program, onnx_path, args, real)
        program, dynamic = export_program(_rebound(source, converted), max_batch, args)
        facts = {**facts, "notes": [SCHEME_NOTE, *_placement_notes(facts)]}
    return program, max_batch if dynamic else None, facts


def _rebound(source: TorchSource, module: torch.nn.Module) -> TorchSource:
    return TorchSource(module, source.inputs, source.sample)


def _placement_notes(facts: dict) -> list[str]:
    notes = []
    if facts["float_in_placement"]:
        notes.append(
            f"executorch int8: {len(facts['float_in_placement'])} op(s) XNNPACK could run in "
            "int8 stay float because the Q/DQ graph keeps one of their tensors float: "
            f"{', '.join(facts['float_in_placement'][:6])}."
        )
    if facts["onnx_quantized_not_in_xnnpack"]:
        left = facts["onnx_quantized_not_in_xnnpack"]
        notes.append(
            f"executorch int8: {len(left)} tensor(s) the Q/DQ graph quantizes have no int8 "
            f"place in XNNPACK's scheme and stay float there: {', '.join(left[:6])}."
        )
    return notes


def _to_pte(program: torch.export.ExportedProgram, io: dict, precision: str) -> tuple[bytes, dict]:
    """The .pte bytes (with the I/O record as a constant method) and the delegation facts."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    from executorch.kernels import quantized  # noqa: F401  (out variants of q/dq ops)

    from targets.executorch.delegation import delegation_info
    from targets.executorch.runner import IO_METHOD

    try:
        edge = to_edge_transform_and_lower(
            program,
            partitioner=[XnnpackPartitioner()],
            constant_methods={IO_METHOD: json.dumps(io)},
        )
        et_program = edge.to_executorch()
    except Exception as exc:
        raise UnsupportedOp(
            f"executorch: lowering to a .pte failed ({type(exc).__name__}: "
            f"{str(exc).strip()[:300]})."
        ) from exc
    info = {"runtime": _version(), "precision_in_file": precision, "max_batch": io["max_batch"]}
    return et_program.buffer, {**info, **delegation_info(edge, et_program)}


def _io_record(
    program: torch.export.ExportedProgram, source: TorchSource, batch: int | None, names: list
) -> dict:
    """Input and output names (the ONNX graph's outputs), dims (a dynamic batch as "batch")
    and dtypes, and the batch bound (0: fixed)."""
    inputs = [[s.name, _dims(s.shape, batch), s.dtype] for s in source.inputs]
    outs = next(n for n in program.graph.nodes if n.op == "output").args[0]
    vals = [o.meta["val"] for o in outs]
    if len(names) != len(vals):
        names = ["output"] if len(vals) == 1 else [f"output_{i}" for i in range(len(vals))]
    outputs = [
        [n, _dims(tuple(v.shape), batch), str(v.dtype).replace("torch.", "")]
        for n, v in zip(names, vals, strict=True)
    ]
    return {"inputs": inputs, "outputs": outputs, "max_batch": batch or 0}


def _dims(shape: tuple, batch: int | None) -> list:
    """Static dims as ints; the first dynamic one "batch" when the batch is dynamic."""
    dims = [d if isinstance(d, int) and d > 0 else None for d in shape]
    if batch and dims and dims[0] is None:
        dims[0] = "batch"
    return dims


def _version() -> str:
    return f"executorch {importlib.metadata.version('executorch')} (XNNPACK)"
