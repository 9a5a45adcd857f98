"""Shared, session-scoped fixtures: the example compressed by the real pipeline for several
targets, and a digits CNN trained once (the int8 example run is in tests/conftest.py)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from calibration.digits import digits_splits, save_npz
from compressor.judging.budget import Budget
from compressor.model.example import DigitsCNN, train_classifier
from compressor.model.loading import LoadedModel
from compressor.passes.trainable import trainable_module
from compressor.pipeline.run import run_pipeline
from compressor.recipe import Recipe
from compressor.report.schema import Report


def compress_example(
    example: dict[str, Path], name: str, target: str, **fields: object
) -> tuple[Report, Path]:
    """Run the real pipeline on the example into a fresh folder beside it (5 timed runs); the
    Report and the folder."""
    out = example["model"].parent / name
    recipe = Recipe(
        model=str(example["model"]),
        target=target,
        output=str(out),
        runs=5,
        warmup=1,
        **fields,
    )
    return run_pipeline(recipe), out


def _compress(example: dict[str, Path], name: str, target: str, **fields: object) -> Path:
    """compress_example that must pass; the folder."""
    report, out = compress_example(example, name, target, **fields)
    assert report.passed, report.budgets
    return out


@pytest.fixture(scope="session")
def tflite_int8_run(example: dict[str, Path]) -> tuple[Report, Path]:
    """`compress example -t tflite`'s recipe (int8, calib + eval, the example's budgets) on the
    shared example: the Report and its output folder."""
    return compress_example(
        example,
        "tflite-int8",
        "tflite",
        precision="int8",
        calib=str(example["calib"]),
        eval=str(example["eval"]),
        budget=Budget(max_accuracy_drop=1.0, max_size_mb=1.0),
    )


@pytest.fixture(scope="session")
def tflite_run(example: dict[str, Path]) -> Path:
    """A tflite output folder made with -O resolver=builtin (NCHW I/O, fp32, verified on eval)."""
    return _compress(
        example,
        "ops-tflite",
        "tflite",
        eval=str(example["eval"]),
        target_options={"resolver": "builtin"},
    )


@pytest.fixture(scope="session")
def tensorrt_proxy_run(example: dict[str, Path]) -> Path:
    """A tensorrt output folder in proxy mode (Q/DQ ONNX verified in onnxruntime)."""
    from targets.tensorrt.toolchain import find_toolchain

    if find_toolchain().can_build:
        pytest.skip("a GPU with TensorRT builds a real engine here, so there is no proxy")
    return _compress(
        example,
        "ops-trt",
        "tensorrt",
        precision="int8",
        calib=str(example["calib"]),
        eval=str(example["eval"]),
        target_options={"build_check": False},
    )


# Digits CNN fixtures shared by the pass, tuning and debug tests (trained on one thread).
@pytest.fixture(scope="module")
def one_thread():
    """Train on one intra-op thread: on a loaded 2-core machine, 2 threads ran 25x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def digits() -> dict:
    """train/calib/eval splits of sklearn digits, inputs [N, 1, 8, 8]."""
    return digits_splits(0)


@pytest.fixture(scope="session")
def cnn(digits: dict) -> torch.nn.Module:
    """DigitsCNN trained for 3 epochs (about 97% top-1)."""
    torch.set_num_threads(1)
    train = digits["train"]
    torch.manual_seed(0)
    return train_classifier(DigitsCNN(), train.inputs["input"], train.labels, epochs=3)


@pytest.fixture(scope="session")
def cnn_program(cnn: torch.nn.Module, digits: dict) -> torch.export.ExportedProgram:
    """The trained CNN through torch.export with a dynamic batch."""
    example = torch.from_numpy(digits["calib"].inputs["input"][:2])
    batch = torch.export.Dim("batch", min=1, max=4096)
    return torch.export.export(cnn, (example,), dynamic_shapes=({0: batch},))


@pytest.fixture()
def cnn_module(cnn_program: torch.export.ExportedProgram) -> torch.fx.GraphModule:
    """A fresh trainable rebuild of the exported CNN for each test."""
    model = LoadedModel(Path("cnn.pt2"), "exported", cnn_program.module(), cnn_program, [])
    return trainable_module(model)


@pytest.fixture(scope="session")
def cnn_files(cnn: torch.nn.Module, cnn_program, digits: dict, tmp_path_factory) -> dict:
    """model.pt2, model.ts (TorchScript), state.pt, train/calib/eval .npz on disk."""
    folder = tmp_path_factory.mktemp("cnn")
    torch.export.save(cnn_program, str(folder / "model.pt2"))
    torch.jit.script(copy.deepcopy(cnn)).save(str(folder / "model.ts"))
    torch.save(cnn.state_dict(), folder / "state.pt")
    for split in ("train", "calib", "eval"):
        save_npz(digits[split], str(folder / f"{split}.npz"), "x")
    names = ("model.pt2", "model.ts", "state.pt", "train.npz", "calib.npz", "eval.npz")
    return {name: folder / name for name in names}


def accuracy(module: torch.nn.Module, data) -> float:
    """Top-1 of module on a Dataset, in eval mode."""
    module.eval()
    with torch.no_grad():
        logits = module(torch.from_numpy(data.inputs["input"]))
    return float((logits.argmax(-1).numpy() == data.labels).mean())


@pytest.fixture(scope="session")
def scaled_cnn(cnn: torch.nn.Module, digits: dict, tmp_path_factory) -> Path:
    """The trained CNN with conv1(+BN) output channel 0 scaled x1000 and undone in conv2, as
    model.pt2: the same function in float, one channel 1000x wider than the rest for int8."""
    from tests.compressor.passes.int8_models import scale_channel

    model = scale_channel(copy.deepcopy(cnn).eval(), "features.1", "features.3")
    example = torch.from_numpy(digits["calib"].inputs["input"][:2])
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    folder = tmp_path_factory.mktemp("x1000")
    torch.export.save(program, str(folder / "model.pt2"))
    with torch.no_grad():  # same predictions as the trained CNN in float
        x = torch.from_numpy(digits["eval"].inputs["input"])
        assert torch.equal(model(x).argmax(1), cnn.eval()(x).argmax(1))
    return folder / "model.pt2"
