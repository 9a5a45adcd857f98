"""Load a model file into a LoadedModel: a torch module or an ONNX graph, plus its input specs."""

from __future__ import annotations

import logging
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import onnx
import torch

from compressor.model.dims import fix_dims
from compressor.model.signature import forward_inputs, included_optional
from compressor.trust.external_data import external_data_files
from compressor.trust.onnx_bounds import check_onnx_bounds
from compressor.trust.pt2_child import load_checked
from compressor.trust.pt2_scan import read_safe_archive
from foundation.entry_points import import_entry_point
from foundation.errors import ModelLoadError, UsageError
from targets.base import TensorSpec

TORCH_SUFFIXES = (".pt", ".pth", ".ts", ".torchscript", ".bin")
# Model kinds whose files declare every input's shape (dynamic dims included).
DECLARED_SHAPES = ("onnx", "exported")


@dataclass
class LoadedModel:
    """A model ready for passes and export; `module` is None for ONNX input."""

    path: Path
    kind: str  # "exported", "torchscript", "module", "onnx"
    module: torch.nn.Module | None = None
    exported: torch.export.ExportedProgram | None = None
    inputs: list[TensorSpec] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # facts about the file for the report

    @property
    def is_torch(self) -> bool:
        return self.module is not None


def load_model(
    path: str | Path, model_factory: str | None = None, trust_pickle: bool = False
) -> LoadedModel:
    """Open .pt2 (torch.export), TorchScript, ONNX, a state dict with a factory, or a pickle."""
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"Model file '{path}' does not exist.")
    if path.is_dir():
        raise ModelLoadError(f"'{path}' is a directory; pass a model file (.pt2, .pt, .onnx).")
    if path.stat().st_size == 0:
        raise ModelLoadError(f"Model file '{path}' is empty; re-save the model.")
    suffix = path.suffix.lower()
    if suffix == ".pt2":
        return _load_exported(path, trust_pickle)
    if suffix == ".onnx":
        return _load_onnx(path)
    if suffix in TORCH_SUFFIXES:
        return _load_torch_file(path, model_factory, trust_pickle)
    raise ModelLoadError(
        f"Model file '{path}' has an unknown suffix '{suffix}'. Supported: .pt2 (torch.export), "
        ".pt/.pth/.ts (TorchScript, state dict with --model-factory, or pickle with "
        "--trust-pickle) and .onnx."
    )


def check_model_file(path: str | Path) -> None:
    """Refuse an unsafe .pt2 before any work (pt2_scan.py); other files are checked on load."""
    path = Path(path)
    if path.suffix.lower() == ".pt2" and path.is_file() and zipfile.is_zipfile(path):
        read_safe_archive(str(path), _read_bytes(path))


def _load_exported(path: Path, trust_pickle: bool = False) -> LoadedModel:
    if not zipfile.is_zipfile(path):
        raise ModelLoadError(
            f"'{path}' is not a valid torch.export archive (not a zip file): it may be "
            "truncated or corrupt. Re-save it with torch.export.save."
        )
    import torch.ao.quantization.fx._decomposed  # noqa: F401  registers PT2E-quantized ops

    for name in ("torch.export", "torch._export"):  # they log tracebacks (and misformat them)
        logging.getLogger(name).setLevel(logging.ERROR)
    source, notes = str(path), []
    if not trust_pickle:  # checked, then loaded in a sandbox, and only then here
        data = _read_bytes(path)
        source = read_safe_archive(str(path), data)
        layers = load_checked(path, data)["layers"]
        notes.append(
            f"'{path.name}' was first loaded in a sandboxed process ({'; '.join(layers)})."
        )
    try:
        exported = torch.export.load(source)
    except Exception as exc:  # torch raises many types for truncated or foreign zips
        raise ModelLoadError(
            f"Could not read '{path}' as a torch.export program ({type(exc).__name__}: {exc}). "
            "The file may be truncated or not made by torch.export.save."
        ) from exc
    specs = _exported_specs(exported)
    return LoadedModel(path, "exported", exported.module(), exported, specs, notes)


def _exported_specs(exported: torch.export.ExportedProgram) -> list[TensorSpec]:
    """User inputs with each symbolic dim named by its torch symbol; the symbol that sizes axis
    0 of some input is named `batch`, wherever else it appears (a state's [2, batch, 16])."""
    user_inputs = set(exported.graph_signature.user_inputs)
    vals = {}
    for node in exported.graph.nodes:
        if node.op == "placeholder" and node.name in user_inputs:
            vals[node.name] = node.meta.get("val")
            if not isinstance(vals[node.name], torch.Tensor):
                raise ModelLoadError(f"'{node.name}' is a model input that is not a tensor.")
    batch = {str(v.shape[0]) for v in vals.values() if v.dim() and not isinstance(v.shape[0], int)}
    specs = []
    for name, val in vals.items():
        shape = tuple(_dim_name(d, batch) for d in val.shape)
        specs.append(TensorSpec(name, shape, _np_dtype(val.dtype)))
    return specs


def _dim_name(dim: object, batch: set[str]) -> int | str:
    """A static dim as its int; a symbolic one as `batch` or its torch symbol (`s53`)."""
    if isinstance(dim, int):
        return dim
    return "batch" if str(dim) in batch else str(dim)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"Cannot read '{path}': {exc.strerror}.") from None


def _load_onnx(path: Path) -> LoadedModel:
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ModelLoadError(
            f"Could not read '{path}' as ONNX ({type(exc).__name__}: {exc}). "
            "The file may be truncated or corrupt; re-export it."
        ) from exc
    _check_external_data(model, path)
    check_onnx_bounds(model, path)
    try:
        onnx.checker.check_model(str(path))
    except Exception as exc:
        raise ModelLoadError(f"'{path}' is not a valid ONNX model: {exc}") from exc
    return LoadedModel(path, "onnx", inputs=onnx_input_specs(model))


def _check_external_data(model: onnx.ModelProto, path: Path) -> None:
    """External data files present, inside the model's folder (the check every reader uses)."""
    external_data_files(model, path)


def onnx_input_specs(model: onnx.ModelProto) -> list[TensorSpec]:
    """Graph inputs that are not initializers, with symbolic dims kept as names."""
    inits = {i.name for i in model.graph.initializer}
    specs = []
    for value in model.graph.input:
        if value.name in inits:
            continue
        tt = value.type.tensor_type
        shape = tuple(
            d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim
        )
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type).name
        specs.append(TensorSpec(value.name, shape, dtype))
    return specs


def _load_torch_file(path: Path, factory: str | None, trust_pickle: bool) -> LoadedModel:
    if not zipfile.is_zipfile(path):
        return _load_legacy(path, factory, trust_pickle)
    try:
        module = torch.jit.load(str(path), map_location="cpu")
        return LoadedModel(path, "torchscript", module.eval(), inputs=_signature_specs(module))
    except RuntimeError:
        pass  # not TorchScript: a state dict or a pickled module
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        if not trust_pickle:
            raise ModelLoadError(
                f"'{path}' is a pickled Python object, and unpickling runs arbitrary code. "
                "Prefer a safe format (torch.export .pt2, TorchScript, or a state dict with "
                "--model-factory). If you trust the file, pass --trust-pickle."
            ) from exc
        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=False)
        except Exception as exc2:
            raise ModelLoadError(f"Could not unpickle '{path}': {exc2}") from exc2
    if isinstance(obj, torch.nn.Module):
        return LoadedModel(path, "module", obj.eval(), inputs=_signature_specs(obj))
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return _from_state_dict(path, obj, factory)
    raise ModelLoadError(f"'{path}' holds a {type(obj).__name__}, not a model or a state dict.")


def _load_legacy(path: Path, factory: str | None, trust_pickle: bool) -> LoadedModel:
    """A legacy (pre-zip, torch < 1.6) file: read as weights only, tensors mapped to the CPU
    (they may have been saved from CUDA); a pickled module still needs --trust-pickle."""
    legacy = f"'{path}' is a legacy-format (pre-zip, torch < 1.6) torch file"
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        if not _is_legacy_pickle(path):
            raise ModelLoadError(
                f"'{path}' is not a valid torch file (neither a zip archive nor a legacy-format "
                "pickle): it may be truncated or corrupt; re-save it."
            ) from exc
        if "Weights only load failed" not in str(exc):
            raise ModelLoadError(
                f"{legacy} that could not be read ({type(exc).__name__}: "
                f"{str(exc).strip()[:200]}): it may be truncated; re-save it."
            ) from exc
        if not trust_pickle:
            raise ModelLoadError(
                f"{legacy} holding more than weights ({type(exc).__name__}); unpickling it runs "
                "code from the file. Save its state_dict() and pass --model-factory, or pass "
                "--trust-pickle if you trust it."
            ) from exc
        obj = torch.load(str(path), map_location="cpu", weights_only=False)
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        model = _from_state_dict(path, obj, factory)
    elif isinstance(obj, torch.nn.Module):
        model = LoadedModel(path, "module", obj.eval(), inputs=_signature_specs(obj))
    else:
        raise ModelLoadError(f"{legacy} holding a {type(obj).__name__}, not a model or state dict.")
    model.notes.append(f"{legacy}; loaded with weights_only=True, map_location='cpu'.")
    return model


def _is_legacy_pickle(path: Path) -> bool:
    """Legacy torch files start with torch's magic number, pickled."""
    magic = pickle.dumps(torch.serialization.MAGIC_NUMBER, protocol=2)
    with path.open("rb") as f:
        return f.read(len(magic)) == magic


def _from_state_dict(path: Path, state: dict, factory: str | None) -> LoadedModel:
    if not factory:
        raise UsageError(
            f"'{path}' is a state dict (weights only). Pass --model-factory package.module:function "
            "naming a function that builds the model's nn.Module."
        )
    module = build_from_factory(factory)
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelLoadError(
            f"The state dict in '{path}' does not fit the module from '{factory}': {exc}"
        ) from exc
    return LoadedModel(path, "module", module.eval(), inputs=_signature_specs(module))


def build_from_factory(factory: str) -> torch.nn.Module:
    """Import and call `pkg.module:function` to build an nn.Module."""
    func = import_entry_point(factory, UsageError, "Model factory")
    try:
        module = func()
    except Exception as exc:
        raise UsageError(f"Model factory '{factory}' failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(module, torch.nn.Module):
        raise UsageError(
            f"Model factory '{factory}' returned {type(module).__name__}, not nn.Module."
        )
    return module


def _signature_specs(module: torch.nn.Module) -> list[TensorSpec]:
    """forward's tensor parameters without defaults (signature.py); shapes stay unknown until
    data or flags give them."""
    return [TensorSpec(name, ()) for name in forward_inputs(module)[0]]


def _np_dtype(dtype: torch.dtype) -> str:
    return str(torch.empty((), dtype=dtype).numpy().dtype)


def complete_input_specs(
    specs: list[TensorSpec], samples: dict[str, tuple[tuple[int, ...], str | None]]
) -> list[TensorSpec]:
    """Fill unknown shapes (and dtypes) from per-sample shapes taken from flags or data."""
    completed = []
    for spec in specs:
        if spec.shape:
            completed.append(spec)
            continue
        if spec.name not in samples:
            raise UsageError(
                f"The shape of model input '{spec.name}' is unknown (TorchScript and plain modules "
                "do not record it). Pass calibration/eval data or --input-shape "
                f"{spec.name}:1x3x224x224."
            )
        shape, dtype = samples[spec.name]
        completed.append(TensorSpec(spec.name, ("batch", *shape), dtype or spec.dtype))
    return completed


def resolve_input_specs(
    model: LoadedModel,
    input_shapes: dict[str, list[int]],
    datasets: list,
    batch_axes: dict[str, int] | None = None,
) -> list[TensorSpec]:
    """Complete the model's input specs from --input-shape (batch first), then from data arrays.

    Declared shapes (ONNX, torch.export) get their dynamic dims fixed by --input-shape; the
    batch axis (0, or --batch-axis) stays dynamic. `input` names the only input of a
    single-input model, in flags and in data alike.
    """
    inputs = model_inputs(model, input_shapes)
    names = [s.name for s in inputs]
    given = given_shapes(input_shapes, names)
    if model.kind in DECLARED_SHAPES:
        axes = batch_axes or {}
        return [
            fix_dims(s, given[s.name], axes.get(s.name, 0)) if s.name in given else s
            for s in model.inputs
        ]
    samples: dict[str, tuple[tuple[int, ...], str | None]] = {}
    for name, shape in given.items():
        samples[name] = (tuple(shape[1:]), None)
    for data in datasets:
        for name, arr in (data.inputs if data is not None else {}).items():
            if len(names) == 1 and name == "input":
                name = names[0]
            samples.setdefault(name, (arr.shape[1:], arr.dtype.name))
    return complete_input_specs(inputs, samples)


def model_inputs(model: LoadedModel, input_shapes: dict[str, list[int]]) -> list[TensorSpec]:
    """The model's inputs, plus defaulted forward() tensor parameters --input-shape names."""
    if model.module is None or model.kind in DECLARED_SHAPES:
        return model.inputs
    optional = included_optional(model.module, list(input_shapes))
    return model.inputs + [TensorSpec(name, ()) for name in optional]


def given_shapes(shapes: dict[str, list[int]], names: list[str]) -> dict[str, tuple]:
    """--input-shape values keyed by model input name (`input` names the only input)."""
    resolved = {}
    for name, shape in shapes.items():
        if name == "input" and len(names) == 1:
            name = names[0]
        if name not in names:
            raise UsageError(
                f"--input-shape names '{name}', but the model's inputs are {names} (for torch "
                "modules: forward()'s tensor parameters without defaults, plus defaulted ones "
                "--input-shape names)."
            )
        resolved[name] = tuple(shape)
    return resolved
