"""Export a loaded model to ONNX at OPSET, keeping a dynamic batch where possible."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from compressor.model.dims import is_dynamic
from compressor.model.loading import LoadedModel
from compressor.model.normalize import normalize_model
from foundation.errors import ExportError
from targets.base import TensorSpec

OPSET = 18


def export_onnx(
    model: LoadedModel,
    specs: list[TensorSpec],
    path: Path,
    sample: dict[str, np.ndarray] | None = None,
    info: dict | None = None,
) -> Path:
    """Write model as a single-file ONNX at path and return it.

    ONNX input is normalised (normalize.py: opset, IR, input dims, shapes), checked against
    the original on `sample` (or seeded inputs); what changed goes into `info`.
    """
    if model.kind == "onnx":  # re-saved as one file, external weights inlined
        normalized, facts = normalize_model(onnx.load(str(model.path)), specs, OPSET, sample)
        onnx.save(normalized, str(path))
        if info is not None:
            info.update(facts)
        return path
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if model.kind == "torchscript":
                _export_torchscript(model.module, specs, path)
            else:
                program = _program(model, specs, sample)
                args = tuple(_example(spec, sample) for spec in specs)
                torch.onnx.export(
                    program,
                    args,
                    str(path),
                    dynamo=True,
                    external_data=False,
                    opset_version=OPSET,
                    verbose=False,
                )
    except Exception as exc:
        cause = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        raise ExportError(
            f"Exporting '{model.path}' to ONNX failed ({type(exc).__name__}: {cause}). "
            "Check that the model runs on the given input shapes; ops without an ONNX "
            "equivalent need a custom rewrite before compression."
        ) from exc
    return path


def _program(
    model: LoadedModel, specs: list[TensorSpec], sample: dict[str, np.ndarray] | None
) -> torch.export.ExportedProgram:
    """The loaded program when the specs keep its dims; else a new export of the module with
    the dims --input-shape fixed (or a plain module's batch) set."""
    if model.exported is not None and [s.shape for s in specs] == [s.shape for s in model.inputs]:
        return model.exported
    return _to_exported(model.module, specs, sample)


def _to_exported(
    module: torch.nn.Module, specs: list[TensorSpec], sample: dict[str, np.ndarray] | None = None
) -> torch.export.ExportedProgram:
    """torch.export with the specs' dynamic dims (on any axis) left dynamic; falls back to the
    example's static shapes when that fails."""
    dynamic = tuple(
        {
            axis: torch.export.Dim.DYNAMIC
            for axis in range(len(s.shape))
            if is_dynamic(s.shape[axis])
        }
        for s in specs
    )
    try:
        return torch.export.export(
            module,
            tuple(_example(s, sample, 2) for s in specs),
            dynamic_shapes=dynamic,
            strict=False,
        )
    except Exception:
        return torch.export.export(module, tuple(_example(s, sample) for s in specs), strict=False)


def _export_torchscript(module: torch.nn.Module, specs: list[TensorSpec], path: Path) -> None:
    names = [s.name for s in specs]
    axes = {s.name: {0: "batch"} for s in specs if _batch_is_dynamic(s)}
    torch.onnx.export(
        module,
        tuple(_example(s) for s in specs),
        str(path),
        dynamo=False,
        opset_version=OPSET,
        input_names=names,
        dynamic_axes=axes or None,
        do_constant_folding=True,
    )


def _batch_is_dynamic(spec: TensorSpec) -> bool:
    return bool(spec.shape) and is_dynamic(spec.shape[0])


def _example(
    spec: TensorSpec, sample: dict[str, np.ndarray] | None = None, least: int = 1
) -> torch.Tensor:
    """A random input of spec's shape: dynamic dims sized from the data sample (in model
    layout), the batch 1 without data; at least `least` where dynamic (2 keeps torch.export
    from specialising a dim to 1)."""
    known = (sample or {}).get(spec.name)
    if known is not None and np.ndim(known) != len(spec.shape):
        known = None
    shape = []
    for axis, dim in enumerate(spec.shape):
        if not is_dynamic(dim):
            shape.append(dim)
        elif known is not None or dim == "batch":
            shape.append(max(least, known.shape[axis] if known is not None else 1))
        else:
            raise ExportError(
                f"Input '{spec.name}' has dynamic dims {list(spec.shape)} and no data to size "
                f"them; give --input-shape {spec.name}:... or --calib/--eval data."
            )
    dtype = getattr(torch, spec.dtype)
    if dtype.is_floating_point:
        return torch.randn(shape, dtype=dtype)
    return torch.zeros(shape, dtype=dtype)
