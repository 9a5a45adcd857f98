"""Run a .tflite file in LiteRT (ai-edge-litert, or tflite_runtime when that is installed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from foundation.errors import ModelLoadError, UnsupportedOp, UsageError
from targets.base import Runner, TensorSpec

try:
    from ai_edge_litert import interpreter as _litert

    _PACKAGE = "ai-edge-litert"
except ImportError:  # pragma: no cover - only where tflite_runtime is what is installed
    from tflite_runtime import interpreter as _litert

    _PACKAGE = "tflite-runtime"

RESOLVERS = {
    "default": _litert.OpResolverType.AUTO,
    "builtin": _litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
}


def runtime_version() -> str:
    """Which LiteRT package and version runs the files."""
    from importlib.metadata import version

    return f"litert ({_PACKAGE} {version(_PACKAGE)})"


class LiteRtRunner(Runner):
    """LiteRT Interpreter through the model's SignatureDef (which resizes a dynamic batch).

    The runner takes and returns the model's logical data, so verification feeds the same
    data to every runner: int8 inputs/outputs (-O int8_io=true) are exchanged as float32 and
    converted with the tensors' own scale and zero point; NHWC inputs/outputs (-O nhwc_io=true)
    are exchanged in the ONNX model's layout (NCHW) and transposed here, as the file records.
    """

    runtime = "litert"

    def __init__(
        self,
        path: Path,
        threads: int = 1,
        resolver: str = "default",
        preserve_all_tensors: bool = False,
    ) -> None:
        if resolver not in RESOLVERS:
            raise UsageError(
                f"Unknown tflite resolver '{resolver}'; choose one of {sorted(RESOLVERS)}."
            )
        try:
            self._interp = _litert.Interpreter(
                model_path=str(path),
                num_threads=threads,
                experimental_op_resolver_type=RESOLVERS[resolver],
                experimental_preserve_all_tensors=preserve_all_tensors,
            )
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"LiteRT could not open '{path}': {exc}") from exc
        self.runtime = f"litert/{resolver}"
        details = self._interp.get_signature_list()["serving_default"]
        self._runner = self._interp.get_signature_runner("serving_default")
        by_index = {d["index"]: d for d in self._interp.get_tensor_details()}
        self._perms = read_io_layout(path)
        self._stateful = has_variable_tensors(path)
        self._input_details = self._runner.get_input_details()
        self._inputs = [self._spec(n, self._input_details[n]) for n in details["inputs"]]
        outs = self._runner.get_output_details()
        order = [d["index"] for d in self._interp.get_output_details()]
        names = sorted(details["outputs"], key=lambda n: order.index(outs[n]["index"]))
        self._outputs = [self._spec(n, outs[n]) for n in names]
        self._output_details = outs
        self._tensors = by_index

    def _run_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        inputs = {}
        for name, array in feeds.items():
            if name in self._perms:  # nhwc_io: the model's NCHW data laid out as the file's
                array = np.ascontiguousarray(array.transpose(self._perms[name]))
            scale, zero = self._input_details[name]["quantization"]
            if scale:  # int8 I/O (-O int8_io=true): real-valued data is quantized here
                q = np.round(array / scale) + zero
                array = np.clip(q, -128, 127).astype(self._input_details[name]["dtype"])
            inputs[name] = array
        # Variable tensors (LSTM state) start from zero on every run, as the ONNX model does.
        if self._stateful:
            self._interp.reset_all_variables()
        results = self._runner(**inputs)
        outputs = {}
        for spec in self._outputs:
            value = np.asarray(results[spec.name])
            scale, zero = self._output_details[spec.name]["quantization"]
            value = (value.astype(np.float32) - zero) * scale if scale else value
            if spec.name in self._perms:
                value = value.transpose(np.argsort(self._perms[spec.name]))
            outputs[spec.name] = value
        return outputs

    def _spec(self, name: str, detail: dict) -> TensorSpec:
        """The spec callers see: float32 for int8 I/O, the ONNX layout for nhwc_io I/O."""
        spec = _spec(name, detail)
        perm = self._perms.get(name)
        if perm is None:
            return spec
        logical = tuple(spec.shape[i] for i in np.argsort(perm))
        return TensorSpec(name, logical, spec.dtype)

    def tensor(self, index: int) -> np.ndarray:
        """Tensor `index` after the last run, dequantized to float32 where it is int8 (needs
        preserve_all_tensors for intermediates: the interpreter reuses their memory)."""
        value = self._interp.get_tensor(index)
        params = self._tensors[index]["quantization_parameters"]
        scales = np.asarray(params["scales"], dtype=np.float32)
        if scales.size == 0 or value.dtype.kind == "f":
            return np.asarray(value, dtype=np.float32)
        zeros = np.asarray(params["zero_points"], dtype=np.float32)
        if scales.size > 1:
            shape = [1] * value.ndim
            shape[params["quantized_dimension"]] = scales.size
            scales, zeros = scales.reshape(shape), zeros.reshape(shape)
        return (value.astype(np.float32) - zeros) * scales

    def delegated_ops(self) -> int:
        """How many nodes run as a delegate (XNNPACK) partition."""
        return sum(op["op_name"] == "DELEGATE" for op in self._interp._get_ops_details())


def check_opens(path: Path) -> None:
    """Open the file on both resolvers (XNNPACK and builtin kernels), and again with a dynamic
    batch at 2: a lowering is done only when each accepts it; a refusal (a kernel's prepare
    check) is raised as UnsupportedOp."""
    for resolver, kind in RESOLVERS.items():
        try:
            interpreter = _litert.Interpreter(
                model_path=str(path), experimental_op_resolver_type=kind
            )
            interpreter.allocate_tensors()
            _resize_dynamic(interpreter)
        except (ValueError, RuntimeError) as exc:
            raise UnsupportedOp(
                f"LiteRT ({resolver} resolver) refuses the lowered file: {str(exc).strip()[:400]}"
            ) from exc


def _resize_dynamic(interpreter: object) -> None:
    """Resize every input's dynamic batch (axis 0) to 2 and allocate: the runner resizes it
    at run time, where a kernel could still refuse. Other dynamic dims are left alone (2 may
    be too small for a kernel window)."""
    inputs = interpreter.get_input_details()
    dynamic = [d for d in inputs if len(d["shape_signature"]) and d["shape_signature"][0] < 0]
    for detail in dynamic:
        shape = [int(s) for s in detail["shape"]]
        shape[0] = 2
        interpreter.resize_tensor_input(detail["index"], shape)
    if dynamic:
        interpreter.allocate_tensors()


def read_io_layout(path: Path) -> dict[str, tuple[int, ...]]:
    """{public I/O name: perm} from the file's metadata (file tensor = logical.transpose(perm)).

    Files written by this target record it when -O nhwc_io=true; any other .tflite (or one
    read where ai-edge-litert's schema module is missing) is run in its own layout.
    """
    try:
        from targets.tflite.writer import IO_LAYOUT_KEY, read_metadata
    except ImportError:  # pragma: no cover - tflite_runtime has no schema module
        return {}
    try:
        raw = read_metadata(Path(path).read_bytes(), IO_LAYOUT_KEY)
        layouts = json.loads(raw) if raw else {}
        return {name: tuple(int(p) for p in perm) for name, perm in layouts.items()}
    except (OSError, ValueError, IndexError, TypeError, AttributeError, RecursionError) as exc:
        # a hand-edited file: deep nesting, a list, or permutations that are not integers
        raise ModelLoadError(f"'{path}' has an unreadable {IO_LAYOUT_KEY} entry: {exc}") from exc


def has_variable_tensors(path: Path) -> bool:
    """True when the file keeps state between runs (variable tensors, e.g. LSTM h and c);
    assumed True where the schema module to check it is missing."""
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:  # pragma: no cover - tflite_runtime has no schema module
        return True
    model = schema.Model.GetRootAs(Path(path).read_bytes(), 0)
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        if any(graph.Tensors(t).IsVariable() for t in range(graph.TensorsLength())):
            return True
    return False


def describe_tflite_io(path: Path) -> dict:
    """I/O from the interpreter's input/output details as the file holds them (its layout and
    dtype), with their quantization."""
    interpreter = _litert.Interpreter(model_path=str(path))

    def entry(detail: dict) -> dict:
        shape = [None if d < 0 else int(d) for d in detail["shape_signature"]]
        qp = detail["quantization_parameters"]
        quant = None
        if len(qp["scales"]) and float(qp["scales"][0]) != 0.0:
            scales, zeros = qp["scales"].tolist(), qp["zero_points"].tolist()
            quant = {
                "scale": scales[0] if len(scales) == 1 else scales,
                "zero_point": zeros[0] if len(zeros) == 1 else zeros,
                "quantized_dimension": int(qp["quantized_dimension"]),
            }
        dtype = np.dtype(detail["dtype"]).name
        return {"name": detail["name"], "shape": shape, "dtype": dtype, "quantization": quant}

    return {
        "inputs": [entry(d) for d in interpreter.get_input_details()],
        "outputs": [entry(d) for d in interpreter.get_output_details()],
    }


def _spec(name: str, detail: dict) -> TensorSpec:
    signature = detail.get("shape_signature", detail["shape"])
    shape = tuple(None if int(d) < 0 else int(d) for d in signature)
    # Quantized I/O is exchanged as float32 and converted with the tensor's own params.
    dtype = "float32" if detail["quantization"][0] else np.dtype(detail["dtype"]).name
    return TensorSpec(name, shape, dtype)
