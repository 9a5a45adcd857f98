"""Export a loaded model to ONNX at OPSET, keeping a dynamic batch where possible."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from compressor.errors import ExportError
from compressor.loading import LoadedModel
from compressor.normalize import normalize_model
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
                program = model.exported or _to_exported(model.module, specs)
                args = tuple(_example(spec, 1) for spec in specs)
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


def _to_exported(module: torch.nn.Module, specs: list[TensorSpec]) -> torch.export.ExportedProgram:
    """torch.export with a dynamic batch; falls back to the static shape when that fails."""
    batch = torch.export.Dim("batch", min=1, max=4096)
    dynamic = tuple({0: batch} if _batch_is_dynamic(s) else {} for s in specs)
    try:
        return torch.export.export(
            module, tuple(_example(s, 2) for s in specs), dynamic_shapes=dynamic, strict=False
        )
    except Exception:
        return torch.export.export(module, tuple(_example(s, 1) for s in specs), strict=False)


def _export_torchscript(module: torch.nn.Module, specs: list[TensorSpec], path: Path) -> None:
    names = [s.name for s in specs]
    axes = {s.name: {0: "batch"} for s in specs if _batch_is_dynamic(s)}
    torch.onnx.export(
        module,
        tuple(_example(s, 1) for s in specs),
        str(path),
        dynamo=False,
        opset_version=OPSET,
        input_names=names,
        dynamic_axes=axes or None,
        do_constant_folding=True,
    )


def _batch_is_dynamic(spec: TensorSpec) -> bool:
    return bool(spec.shape) and not isinstance(spec.shape[0], int)


def _example(spec: TensorSpec, batch: int) -> torch.Tensor:
    shape = [batch if i == 0 and not isinstance(d, int) else d for i, d in enumerate(spec.shape)]
    if any(not isinstance(d, int) for d in shape):
        raise ExportError(f"Input '{spec.name}' has unknown dims {spec.shape}; give --input-shape.")
    dtype = getattr(torch, spec.dtype)
    if dtype.is_floating_point:
        return torch.randn(shape, dtype=dtype)
    return torch.zeros(shape, dtype=dtype)
