"""What an ONNX file declares about itself, checked before any tool acts on it: the opsets it
needs exist, and each external-data entry's offset and length lie inside its file.

onnx's converter and loader raise a bare ValueError on either (a crash, not a message), and
onnxruntime reads the bytes an entry points at; both are decided here from the header alone.
"""

from __future__ import annotations

from pathlib import Path

import onnx

from foundation.errors import ModelLoadError

DEFAULT_DOMAINS = ("", "ai.onnx")


def check_onnx_bounds(model: onnx.ModelProto, path: Path) -> None:
    """Refuse an opset newer than this onnx knows, and external data outside its file."""
    newest = onnx.defs.onnx_opset_version()
    for opset in model.opset_import:
        if opset.domain in DEFAULT_DOMAINS and not 1 <= opset.version <= newest:
            raise ModelLoadError(
                f"'{path}' declares ONNX opset {opset.version}; this installation knows opsets 1 "
                f"to {newest}. Export the model with an official opset (e.g. opset_version=17)."
            )
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            _check_extent(tensor, path)


def _check_extent(tensor: onnx.TensorProto, path: Path) -> None:
    entries = {e.key: e.value for e in tensor.external_data}
    file = path.parent / entries.get("location", "")
    if not file.is_file():
        return  # a missing file is named by the loader's own check
    size = file.stat().st_size
    try:
        offset = int(entries.get("offset", "0"))
        length = int(entries.get("length", str(size - offset)))
    except ValueError:
        offset = length = -1
    if offset < 0 or length < 0 or offset + length > size:
        raise ModelLoadError(
            f"'{path}': initializer '{tensor.name}' reads bytes {entries.get('offset', '0')} to "
            f"+{entries.get('length', '?')} of '{entries.get('location')}', which holds {size:,} "
            "bytes: the model or its external data file is damaged or forged. Re-export it."
        )
