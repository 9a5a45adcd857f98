"""Intermediate tensors of an OpenVINO IR by ONNX tensor name, for `compress debug`.

OpenVINO keeps the ONNX tensor names on the ports of the ops it reads, and a model can be given
extra outputs at any port (`Model.add_outputs`). The CPU plugin then computes those tensors as
they are, so an op fused into its producer at a traced port (a Relu or a FakeQuantize folded into
a Convolution) runs as its own step there: the values are the IR's arithmetic at each tensor,
not necessarily the fused kernel's. A tensor read through a FakeQuantize is traced after it (the
value its int8 readers get), as the Q/DQ stage of the debug table reads it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openvino as ov

from targets.openvino.runner import compile_ir, cpu_config, read_ir

# Samples per traced run of a model with a dynamic batch (every intermediate tensor is kept).
BATCH = 64
# Ops OpenVINO's ONNX reader turns a DequantizeLinear into.
DEQUANTIZE_CHAIN = ("Convert", "Subtract", "Multiply")
# Op types whose outputs are not activations worth comparing.
SKIPPED = ("Constant", "Parameter", "Result", "ShapeOf")


def traced_ports(model: ov.Model) -> dict[str, tuple[ov.Output, str]]:
    """{ONNX tensor name: (the port holding the value its readers get, the op computing it)}
    for every float tensor computed from the inputs (weight decompression is left out)."""
    computed: set[str] = set()
    ports: dict[str, tuple[ov.Output, str]] = {}
    for op in model.get_ordered_ops():
        sources = [i.get_source_output().get_node() for i in op.inputs()]
        if op.get_type_name() == "Parameter" or any(
            s.get_friendly_name() in computed for s in sources
        ):
            computed.add(op.get_friendly_name())
        if op.get_type_name() in SKIPPED or op.get_friendly_name() not in computed:
            continue
        for port in op.outputs():
            if port.get_element_type().is_real():
                ports.update(dict.fromkeys(port.get_names(), (port, op.get_friendly_name())))
        if op.get_type_name() == "FakeQuantize":  # its input's readers get its dequantized output
            source = op.input(0).get_source_output()
            read = (_dequantized(op.output(0), computed), source.get_node().get_friendly_name())
            ports.update(dict.fromkeys(source.get_names(), read))
    return ports


def _dequantized(port: ov.Output, computed: set[str]) -> ov.Output:
    """The end of the Convert → Subtract (zero point) → Multiply (scale) chain that the ONNX
    reader makes of a DequantizeLinear after a FakeQuantize's integer levels."""
    while len(port.get_target_inputs()) == 1:
        reader = next(iter(port.get_target_inputs())).get_node()
        others = [i.get_source_output().get_node() for i in reader.inputs()][1:]
        if reader.get_type_name() not in DEQUANTIZE_CHAIN or any(
            o.get_friendly_name() in computed for o in others
        ):
            break
        port = reader.output(0)
    return port


def runtime_places(compiled: ov.CompiledModel) -> dict[str, str]:
    """{IR op name: `LayerType runtime-name (precision)`} of the compiled model's nodes."""
    places = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        where = (
            f"{info['layerType'].astype(str)} {op.get_friendly_name()} "
            f"({info['runtimePrecision'].astype(str)})"
        )
        for original in info["originalLayersNames"].astype(str).split(","):
            places.setdefault(original, where)
    return places


def trace_tensors(
    folder: Path, feeds: dict[str, np.ndarray], inference_precision: str = "f32"
) -> dict[str, tuple[np.ndarray, str]]:
    """{ONNX name: (value over all samples of feeds, the runtime node that made it)}."""
    model = read_ir(folder)
    ports = traced_ports(model)
    unique = list({_key(p): p for p, _ in ports.values()}.values())
    model.add_outputs(unique)
    index = {
        _key(o.get_node().input(0).get_source_output()): i for i, o in enumerate(model.outputs)
    }
    compiled = compile_ir(model, cpu_config(1, inference_precision), folder)
    places = runtime_places(compiled)
    request = compiled.create_infer_request()
    parts: dict[str, list[np.ndarray]] = {name: [] for name in ports}
    first = compiled.inputs[0].get_partial_shape()[0]
    step = first.get_length() if first.is_static else BATCH
    for start in range(0, len(next(iter(feeds.values()))), step):
        results = request.infer({k: v[start : start + step] for k, v in feeds.items()})
        values = [np.array(results[out]) for out in compiled.outputs]
        for name, (port, _) in ports.items():
            # atleast_1d: a 0-d tensor then differs in shape from ONNX and is reported so.
            parts[name].append(np.atleast_1d(values[index[_key(port)]]))
    return {
        name: (np.concatenate(parts[name]), places.get(origin, "input"))
        for name, (_, origin) in ports.items()
    }


def _key(port: ov.Output) -> tuple[str, int]:
    """A port's identity: its op's name and output index."""
    return port.get_node().get_friendly_name(), port.get_index()
