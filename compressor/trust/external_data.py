"""ONNX external data: the files a model's tensors name, checked before any byte of them is read.

Every reader of an ONNX model (loading, the sweep's --resume fingerprint, shipping to a cluster)
asks `external_data_files` first, so no model makes any of them read a file outside its own
folder: not `../secret`, not `/etc/passwd`, not a link that leads out.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath

import onnx

from foundation.errors import ModelLoadError


def external_data_files(model: onnx.ModelProto, path: Path) -> list[Path]:
    """The files model (read from path) keeps tensor data in, each a regular file inside
    path's folder, reached through no link; a ModelLoadError names the first that is not."""
    found = set()
    for tensor in _tensors(model):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            location = next((e.value for e in tensor.external_data if e.key == "location"), "")
            found.add(_checked(path, location))
    return sorted(found)


def _checked(path: Path, location: str) -> Path:
    root = path.parent
    parts = PurePosixPath(location.replace("\\", "/")).parts
    if (
        not location
        or "\0" in location
        or PurePosixPath(location).is_absolute()
        or PureWindowsPath(location).is_absolute()
        or ".." in parts
    ):
        raise ModelLoadError(
            f"'{path}' names the external data file {location!r}, which is not inside the "
            "model's folder; external data must sit beside the model. Re-save the model with "
            "its data there (onnx.save(..., location='model.onnx.data'))."
        )
    for depth in range(1, len(parts) + 1):
        step = root.joinpath(*parts[:depth])
        if step.is_symlink():
            raise ModelLoadError(
                f"'{path}' names the external data file {location!r}, but '{step}' is a "
                "symbolic link; external data is read only from real files beside the model."
            )
    file = root.joinpath(*parts)
    if not file.is_file():
        raise ModelLoadError(
            f"'{path}' keeps its weights in the external data file '{location}', which is "
            "missing. Keep that file beside the model."
        )
    return file


def _tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    """Every tensor onnxruntime may load data for: initializers, sparse ones, node attributes,
    in the main graph, its subgraphs and the model's functions."""
    yield from _graph_tensors(model.graph)
    for function in model.functions:
        yield from _node_tensors(function.node)


def _graph_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    yield from _node_tensors(graph.node)


def _node_tensors(nodes: list[onnx.NodeProto]) -> Iterator[onnx.TensorProto]:
    for node in nodes:
        for attr in node.attribute:
            yield from (attr.t, *attr.tensors, attr.sparse_tensor.values)
            yield from (attr.sparse_tensor.indices, *(s.values for s in attr.sparse_tensors))
            for graph in (attr.g, *attr.graphs):
                yield from _graph_tensors(graph)
