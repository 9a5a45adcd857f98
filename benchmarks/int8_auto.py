"""Default int8 vs --auto on the zoo, per target scheme, plus 224x224 latency-only rows.

`python -m benchmarks.int8_auto [--out DIR] [--epochs N]` writes int8_auto.md and .json.
Zoo rows: top-1 drop (points) and output cosine vs fp32 on the eval split, latency as a
multiple of fp32's (below 1 = faster) in the target's runtime (batch 1, 1 thread, medians of
runs interleaved with the fp32 artifact: onnxruntime for onnx, LiteRT for tflite, OpenVINO for
openvino where its extra is installed, and for tensorrt without a GPU its Q/DQ graph in
onnxruntime, a labelled proxy), size of the target's artifact, trials spent, and with --objective
latency the blocks measured slower in int8. The 224x224 ResNet-18 and MobileNetV2 carry random
weights (no package with pretrained ImageNet weights is used): latency rows only, per runtime
(onnxruntime, OpenVINO), with how many convs run as int8 kernels.
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from benchmarks.zoo import ZOO_NAMES, trained_model, zoo_data
from calibration.dataset import Dataset
from compressor.judging.budget import Budget
from compressor.model.export import export_onnx
from compressor.model.loading import LoadedModel
from compressor.passes.cleanup import cleanup_onnx
from compressor.passes.quantize import quantize_int8_static
from compressor.tuning.fallback import fallback_precision
from compressor.tuning.search import TuneConfig, tune_int8
from compressor.tuning.trials import TargetRuntime, interleaved_ms
from targets.base import TensorSpec, TorchSource
from targets.registry import get_target, loaded_targets

TARGETS = ("onnx", "tensorrt", "tflite", "openvino", "executorch")
# 224x224 latency rows: runtimes that run int8 kernels on this CPU (openvino where installed).
IMAGENET_TARGETS = ("onnx", "openvino")


def available_targets(names: tuple[str, ...]) -> list[str]:
    """The names whose target loads here (a target's optional extra may be missing)."""
    loaded = {t.name for t in loaded_targets()}
    return [name for name in names if name in loaded]


class Net(nn.Module):
    """Names the input `x` (an nn.Sequential's forward names it `input`)."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def export(module: nn.Module, spec: TensorSpec, folder: Path) -> Path:
    loaded = LoadedModel(folder / "m.pt", "module", module.eval(), None, [spec])
    cleanup_onnx(export_onnx(loaded, [spec], folder / "raw.onnx"), folder / "fp32.onnx")
    return folder / "fp32.onnx"


def zoo_rows(name: str, epochs: int | None, work: Path, objective: str) -> list[dict]:
    data = zoo_data(name)
    shape = ("batch", *data["calib"].inputs["x"].shape[1:])
    model, spec = trained_model(name, epochs), TensorSpec("x", shape)
    fp32 = export(model, spec, work)
    calib, held = data["calib"].take(256), data["eval"]
    source = TorchSource(model, (spec,), calib.feeds(slice(0, 1)))  # for executorch
    rows = []
    for target_name in available_targets(TARGETS):
        target = get_target(target_name).bind_torch(source)
        if target_name == "executorch" and not target.availability()[0]:
            continue  # the optional extra is not installed here
        runtime = TargetRuntime(target, target.parse_options({}), 1, work / f"{target_name}-tune")
        config = TuneConfig(
            Budget(max_accuracy_drop=1.0), trials=12, time_s=300, objective=objective,
            fallback=fallback_precision(target),
        )  # fmt: skip
        scheme = target.quant_scheme(None)
        tuning = tune_int8(
            fp32, work / f"{target_name}.onnx", (calib, held), scheme, config, runtime
        )
        rows.append(
            {
                "model": name,
                "target": target_name,
                "runtime": tuning["latency_runtime"],
                "default": tuning["trials"][0],  # trial 0 is the default int8
                "auto": tuning["trials"][tuning["chosen"]],
                "trials": len(tuning["trials"]),
                "auto_met_budget": tuning["met_budgets"],
                "block_timings": tuning["block_timings"],
                "slower_in_int8": tuning["slower_in_int8"],
                "tune_seconds": tuning["seconds"],
                "fp32_size_bytes": fp32.stat().st_size,
            }
        )
    return rows


def resnet18() -> nn.Module:
    def block(cin: int, cout: int, stride: int) -> nn.Module:
        from benchmarks.zoo import BasicBlock

        return BasicBlock(cin, cout, stride)

    layers = [
        nn.Conv2d(3, 64, 7, 2, 3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(3, 2, 1),
    ]
    widths = [(64, 64, 1), (64, 128, 2), (128, 256, 2), (256, 512, 2)]
    for cin, cout, stride in widths:
        layers += [block(cin, cout, stride), block(cout, cout, 1)]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 1000))


class InvertedResidualV2(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.residual = stride == 1 and cin == cout
        layers = (
            []
            if expand == 1
            else [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6()]
        )
        layers += [
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.residual else self.block(x)


def mobilenet_v2() -> nn.Module:
    config = [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ]
    layers, cin = [nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU6()], 32
    for expand, cout, repeats, stride in config:
        for i in range(repeats):
            layers.append(InvertedResidualV2(cin, cout, stride if i == 0 else 1, expand))
            cin = cout
    layers += [
        nn.Conv2d(320, 1280, 1, bias=False),
        nn.BatchNorm2d(1280),
        nn.ReLU6(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(1280, 1000),
    ]
    return nn.Sequential(*layers)


def imagenet_rows(work: Path) -> list[dict]:
    """Latency only: random weights, random calibration images, int8 kernels counted; fp32 and
    int8 timed interleaved in each target's own runtime."""
    rng = np.random.default_rng(0)
    calib = Dataset({"x": rng.standard_normal((16, 3, 224, 224)).astype(np.float32)})
    rows = []
    for name, build in (("resnet18-224", resnet18), ("mobilenetv2-224", mobilenet_v2)):
        torch.manual_seed(0)
        folder = work / name
        folder.mkdir()
        fp32 = export(Net(build()), TensorSpec("x", ("batch", 3, 224, 224)), folder)
        for target_name in available_targets(IMAGENET_TARGETS):
            rows.append(imagenet_row(name, target_name, fp32, calib, folder / target_name))
    return rows


def imagenet_row(name: str, target_name: str, fp32: Path, calib: Dataset, folder: Path) -> dict:
    """One 224x224 row: the target's fp32 and int8 artifacts, timed interleaved in its runtime."""
    target = get_target(target_name)
    int8 = folder / "int8.onnx"
    folder.mkdir()
    quantize_int8_static(fp32, int8, calib, target.quant_scheme(None), "minmax", 4)
    artifacts = [target.lower(fp32, "fp32", folder / "fp32"), target.lower(int8, "int8", folder)]
    runners = [target.open_runner(a.path, 1, a.options) for a in artifacts]
    fp32_ms, latency = interleaved_ms(runners, calib.feeds(slice(0, 1)), 30)
    return {
        "model": name,
        "target": target_name,
        "runtime": runners[1].runtime,
        "fp32_ms": round(fp32_ms, 3),
        "int8_ms": round(latency, 3),
        "speedup": round(fp32_ms / latency, 2),
        "int8_kernels": _int8_kernels(target_name, artifacts[1], folder / "opt.onnx"),
        "size_ratio": round(artifacts[1].size_bytes / artifacts[0].size_bytes, 3),
    }


def _int8_kernels(target_name: str, artifact, optimized: Path) -> str:
    """'int8 weighted layers / all' as the target's runtime compiled them."""
    if target_name == "onnx":
        return int8_kernels(artifact.path, optimized)
    layers = artifact.info["weighted_layers"]
    integer = sum(layer["precision"] in ("u8", "i8") for layer in layers)
    return f"{integer}/{len(layers)}"


def int8_kernels(path: Path, optimized: Path) -> str:
    """'QLinearConv count / all convs' in onnxruntime's optimized graph (float convs fused
    with their activation become FusedConv)."""
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(optimized)
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    ops = collections.Counter(n.op_type for n in onnx.load(str(optimized)).graph.node)
    return f"{ops['QLinearConv']}/{ops['QLinearConv'] + ops['Conv'] + ops['FusedConv']}"


def to_markdown(zoo: list[dict], imagenet: list[dict]) -> str:
    lines = [
        "| model | target | default drop (pts) | default cosine | default time × fp32 | "
        "--auto drop (pts) | --auto cosine | --auto time × fp32 | --auto float blocks | "
        "trials | size vs fp32 |",
        "|" + "---|" * 11,
    ]
    for r in zoo:
        d, a = r["default"], r["auto"]
        lines.append(
            f"| {r['model']} | {r['target']} | {d['accuracy_drop']:.2f} | {d['cosine']:.4f} | "
            f"{d['latency_vs_fp32']:.2f}x | {a['accuracy_drop']:.2f} | {a['cosine']:.4f} | "
            f"{a['latency_vs_fp32']:.2f}x | {a['float_blocks']} | {r['trials']} | "
            f"{a['size_bytes'] / r['fp32_size_bytes']:.2f} |"
        )
    lines += [
        "",
        "| model (random weights, latency only) | runtime | fp32 ms | int8 ms | speed-up | "
        "int8 convs | size vs fp32 |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in imagenet:
        lines.append(
            f"| {r['model']} | {r.get('runtime', r['target'])} | {r['fp32_ms']} | "
            f"{r['int8_ms']} | {r['speedup']}x | "
            f"{r['int8_kernels']} | {r['size_ratio']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--models", nargs="*", default=ZOO_NAMES)
    parser.add_argument("--skip-imagenet", action="store_true")
    parser.add_argument("--objective", choices=("accuracy", "latency"), default="accuracy")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        zoo = []
        for name in args.models:
            (Path(tmp) / name).mkdir()
            zoo += zoo_rows(name, args.epochs, Path(tmp) / name, args.objective)
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "int8_auto.json").write_text(json.dumps({"zoo": zoo}, indent=1))
        imagenet = [] if args.skip_imagenet else imagenet_rows(Path(tmp))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "int8_auto.json").write_text(
        json.dumps({"zoo": zoo, "imagenet": imagenet}, indent=1)
    )
    (args.out / "int8_auto.md").write_text(to_markdown(zoo, imagenet))
    print(to_markdown(zoo, imagenet))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
