"""Build a .tflite flatbuffer: tensors, buffers, operators, op codes and the SignatureDef.

Uses the flatc-generated object API that ships inside ai-edge-litert (schema_py_generated):
it is the schema of the very runtime that runs our files (the `tflite` PyPI package is one op
behind LiteRT 2.3 and has builder functions but no object API), and it adds no dependency.
"""

from __future__ import annotations

from dataclasses import dataclass

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

TENSOR_TYPES = {
    "float32": schema.TensorType.FLOAT32,
    "float16": schema.TensorType.FLOAT16,
    "int32": schema.TensorType.INT32,
    "int8": schema.TensorType.INT8,
    "uint8": schema.TensorType.UINT8,
    "int64": schema.TensorType.INT64,
    "bool": schema.TensorType.BOOL,
}
# Op codes at or above this need the placeholder in deprecated_builtin_code (schema rule).
PLACEHOLDER_CODE = 127
SIGNATURE_KEY = "serving_default"
# Metadata entry: JSON {public I/O name: perm}, file tensor = ONNX tensor transposed by perm.
IO_LAYOUT_KEY = "edge_compressor.io_layout"


@dataclass(frozen=True)
class QuantParams:
    """Affine int8/int32 quantization of one tensor: real = scale * (q - zero_point)."""

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int = 0

    @staticmethod
    def per_tensor(scale: float, zero_point: int) -> QuantParams:
        """One scale and zero point for the whole tensor."""
        return QuantParams((float(scale),), (int(zero_point),))

    def same_as(self, other: QuantParams | None) -> bool:
        """Equal within float32 rounding (the flatbuffer stores float32 scales)."""
        if other is None or len(self.scale) != len(other.scale):
            return False
        return self.zero_point == other.zero_point and np.allclose(
            self.scale, other.scale, rtol=1e-6, atol=0
        )


def make_options(name: str, **fields: object) -> tuple[int, object]:
    """A builtin-options union entry, e.g. make_options("Conv2DOptions", strideW=2)."""
    obj = getattr(schema, f"{name}T")()
    for key, value in fields.items():
        if not hasattr(obj, key):
            raise AttributeError(f"{name} has no field {key}")
        setattr(obj, key, value)
    return getattr(schema.BuiltinOptions, name), obj


class FlatModelBuilder:
    """Collects one subgraph and writes it as TFLite schema v3 bytes."""

    def __init__(self, description: str = "edge-compressor") -> None:
        self.tensors: list[schema.TensorT] = []
        self.buffers: list[schema.BufferT] = [schema.BufferT()]
        self.operators: list[schema.OperatorT] = []
        self.op_codes: dict[tuple[int, int], int] = {}
        self.op_names: list[str] = []
        self.inputs: list[tuple[str, int]] = []
        self.outputs: list[tuple[str, int]] = []
        # Named byte strings stored in the model's metadata table (ignored by the runtime).
        self.metadata: dict[str, bytes] = {}
        self.description = description

    def add_tensor(
        self,
        name: str,
        shape: tuple[int, ...],
        dtype: str,
        data: np.ndarray | None = None,
        quant: QuantParams | None = None,
        signature: tuple[int, ...] | None = None,
        variable: bool = False,
    ) -> int:
        """Add a tensor (constant when data is given); -1 in signature marks dynamic dims;
        a variable tensor is state an op keeps (LSTM h and c)."""
        tensor = schema.TensorT()
        tensor.name = name
        tensor.isVariable = variable
        tensor.shape = np.asarray([max(int(d), 1) for d in shape], dtype=np.int32)
        if signature is not None and any(d < 0 for d in signature):
            tensor.shapeSignature = np.asarray(signature, dtype=np.int32)
        tensor.type = TENSOR_TYPES[dtype]
        if data is not None:
            buffer = schema.BufferT()
            raw = np.ascontiguousarray(data.astype(dtype, copy=False))
            buffer.data = np.frombuffer(raw.tobytes(), dtype=np.uint8)
            self.buffers.append(buffer)
            tensor.buffer = len(self.buffers) - 1
        if quant is not None:
            params = schema.QuantizationParametersT()
            params.scale = np.asarray(quant.scale, dtype=np.float32)
            params.zeroPoint = np.asarray(quant.zero_point, dtype=np.int64)
            params.quantizedDimension = quant.axis
            tensor.quantization = params
        self.tensors.append(tensor)
        return len(self.tensors) - 1

    def add_op(
        self,
        op: str,
        inputs: list[int],
        outputs: list[int],
        options: tuple[int, object] | None = None,
        version: int = 1,
    ) -> None:
        """Append an operator (inputs may hold -1 for an omitted optional input)."""
        code = getattr(schema.BuiltinOperator, op)
        key = (code, version)
        if key not in self.op_codes:
            self.op_codes[key] = len(self.op_codes)
        operator = schema.OperatorT()
        operator.opcodeIndex = self.op_codes[key]
        operator.inputs = np.asarray(inputs, dtype=np.int32)
        operator.outputs = np.asarray(outputs, dtype=np.int32)
        if options is not None:
            operator.builtinOptionsType, operator.builtinOptions = options
        self.operators.append(operator)
        self.op_names.append(op)

    def to_bytes(self) -> bytes:
        """Serialize with a SignatureDef so signature runners and benchmark tools work."""
        model = schema.ModelT()
        model.version = 3
        model.description = self.description
        model.buffers = list(self.buffers)
        model.metadata = [_metadata(model.buffers, k, v) for k, v in self.metadata.items()]
        model.operatorCodes = [_op_code(code, version) for code, version in self.op_codes]
        graph = schema.SubGraphT()
        graph.name = "main"
        graph.tensors = self.tensors
        graph.operators = self.operators
        graph.inputs = np.asarray([i for _, i in self.inputs], dtype=np.int32)
        graph.outputs = np.asarray([i for _, i in self.outputs], dtype=np.int32)
        model.subgraphs = [graph]
        model.signatureDefs = [_signature(self.inputs, self.outputs)]
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())


def _metadata(buffers: list[schema.BufferT], name: str, data: bytes) -> schema.MetadataT:
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(data, dtype=np.uint8)
    buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = name
    entry.buffer = len(buffers) - 1
    return entry


def read_metadata(data: bytes, name: str) -> bytes | None:
    """The bytes a .tflite file stores under metadata `name`, or None when it has none."""
    model = schema.Model.GetRootAs(data, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() is not None and entry.Name().decode() == name:
            buffer = model.Buffers(entry.Buffer())
            return buffer.DataAsNumpy().tobytes() if buffer.DataLength() else b""
    return None


def _op_code(code: int, version: int) -> schema.OperatorCodeT:
    entry = schema.OperatorCodeT()
    entry.builtinCode = code
    entry.deprecatedBuiltinCode = min(code, PLACEHOLDER_CODE)
    entry.version = version
    return entry


def _signature(inputs: list[tuple[str, int]], outputs: list[tuple[str, int]]) -> object:
    sig = schema.SignatureDefT()
    sig.signatureKey = SIGNATURE_KEY
    sig.subgraphIndex = 0
    sig.inputs = [_tensor_map(name, idx) for name, idx in inputs]
    sig.outputs = [_tensor_map(name, idx) for name, idx in outputs]
    return sig


def _tensor_map(name: str, index: int) -> schema.TensorMapT:
    entry = schema.TensorMapT()
    entry.name = name
    entry.tensorIndex = index
    return entry
