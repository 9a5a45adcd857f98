#!/usr/bin/env python3
"""Build a TensorRT engine from a (Q/DQ) ONNX model on the device that will run it.

    python build_engine.py model.onnx model.engine [--workspace-mb N] [--batch MIN,OPT,MAX]
                           [--timing-cache PATH] [--fp16 | --no-fp16] [--int8 | --no-int8]

Needs only Python 3.8+ and the `tensorrt` package (JetPack ships it on Jetson boards). An
engine only runs on the GPU model and TensorRT version that built it, which is why it is
built here and not shipped. `compress --target tensorrt` writes this file beside model.onnx
with SETTINGS set to that run's flags, and builds with the same function where it can.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

SETTINGS = {
    "fp16": True,
    "int8": True,
    "workspace_mb": 1024,
    "batch": [1, 1, 32],
    "timing_cache": "",
}


def build_serialized(trt: object, onnx_path: Path, settings: dict) -> tuple[bytes | None, dict]:
    """Parse the ONNX and build a serialized engine; returns (engine bytes or None, what happened)."""
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network(_network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    info = {"parsed": False, "built": False, "flags": [], "skipped_flags": [], "errors": []}
    if not parser.parse_from_file(str(onnx_path)):
        info["errors"] = [str(parser.get_error(i).desc()) for i in range(parser.num_errors)]
        return None, info
    info["parsed"] = True
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(settings["workspace_mb"]) << 20)
    for name in ("fp16", "int8"):
        flag = getattr(trt.BuilderFlag, name.upper(), None)
        if settings[name] and flag is None:
            info["skipped_flags"].append(name.upper())  # strongly typed builders (TensorRT-RTX)
        elif settings[name]:
            config.set_flag(flag)
            info["flags"].append(name.upper())
    try:
        profile = _batch_profile(builder, network, settings["batch"])
    except ValueError as exc:
        info["errors"].append(str(exc))
        return None, info
    if profile is not None:
        config.add_optimization_profile(profile)
    cache = _load_timing_cache(config, settings["timing_cache"])
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        info["errors"].append("the builder returned no engine (its log above says why)")
        return None, info
    _save_timing_cache(cache, settings["timing_cache"])
    info["built"] = True
    return bytes(engine), info


def _network_flags(trt: object) -> int:
    """EXPLICIT_BATCH for TensorRT 8.x (JetPack 5); TensorRT 10 and RTX make it the default."""
    flag = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)
    major = int(trt.__version__.split(".")[0])
    return 1 << int(flag) if flag is not None and trt.__name__ == "tensorrt" and major < 10 else 0


def _batch_profile(builder: object, network: object, batch: list) -> object | None:
    """One optimization profile with the batch dimension at MIN,OPT,MAX; None for fixed shapes."""
    profile = builder.create_optimization_profile()
    dynamic = False
    for index in range(network.num_inputs):
        tensor = network.get_input(index)
        shape = list(tensor.shape)
        if all(d >= 0 for d in shape):
            continue
        if any(d < 0 for d in shape[1:]):
            raise ValueError(
                f"input '{tensor.name}' has dynamic dims {shape} beyond the batch; "
                "export the model with fixed non-batch dims"
            )
        dynamic = True
        shapes = [tuple([b, *shape[1:]]) for b in batch]
        profile.set_shape(tensor.name, *shapes)
    return profile if dynamic else None


def _load_timing_cache(config: object, path: str) -> object | None:
    """Start from the timing cache at path (when it exists) so rebuilds skip kernel timing."""
    if not path:
        return None
    cache_file = Path(path).expanduser()
    data = cache_file.read_bytes() if cache_file.exists() else b""
    cache = config.create_timing_cache(data)
    config.set_timing_cache(cache, False)
    return cache


def _save_timing_cache(cache: object | None, path: str) -> None:
    if cache is None:
        return
    cache_file = Path(path).expanduser()
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_name(cache_file.name + ".tmp")
    tmp.write_bytes(bytes(cache.serialize()))
    os.replace(tmp, cache_file)


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("onnx", type=Path, help="the model.onnx written beside this script")
    parser.add_argument("engine", type=Path, help="where to write the engine (model.engine)")
    parser.add_argument("--workspace-mb", type=int, default=SETTINGS["workspace_mb"])
    parser.add_argument(
        "--batch",
        default=",".join(str(b) for b in SETTINGS["batch"]),
        help="dynamic-batch profile MIN,OPT,MAX",
    )
    parser.add_argument("--timing-cache", default=SETTINGS["timing_cache"])
    for name in ("fp16", "int8"):  # --x / --no-x by hand: BooleanOptionalAction needs 3.9
        parser.add_argument(f"--{name}", dest=name, action="store_true", default=SETTINGS[name])
        parser.add_argument(f"--no-{name}", dest=name, action="store_false")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: build and write the engine; exit 1 if TensorRT cannot, 2 if absent."""
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    try:
        import tensorrt as trt
    except ImportError as exc:
        print(
            f"TensorRT's Python package is missing ({exc}). On Jetson it comes with JetPack "
            "(python3-libnvinfer); on other NVIDIA GPU machines: pip install tensorrt.",
            file=sys.stderr,
        )
        return 2

    settings = {
        "fp16": args.fp16,
        "int8": args.int8,
        "workspace_mb": args.workspace_mb,
        "batch": [int(b) for b in args.batch.split(",")],
        "timing_cache": args.timing_cache,
    }
    started = time.perf_counter()
    engine, info = build_serialized(trt, args.onnx, settings)
    if engine is None:
        print(f"TensorRT {trt.__version__} could not build {args.onnx}:", file=sys.stderr)
        print("\n".join(info["errors"]), file=sys.stderr)
        return 1
    tmp = args.engine.with_name(args.engine.name + ".tmp")
    tmp.write_bytes(engine)
    os.replace(tmp, args.engine)
    seconds = time.perf_counter() - started
    print(f"wrote {args.engine} ({len(engine)} bytes, flags {info['flags']}) in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
