"""The torch-pass stage between load and export: prune, then distill, measuring every step."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch_pruning as tp
from torch import nn

from calibration.dataset import Dataset
from calibration.loaders import load_dataset
from calibration.preprocess import parse_preprocess
from compressor.model.loading import LoadedModel
from compressor.passes.distill import OPTIMIZERS, distill, predict
from compressor.passes.prune import protected_layers, prune_channels
from compressor.passes.qat import check_qat_request, run_qat
from compressor.passes.sparsity import MASK_BUILDERS, Masks, apply_sparsity
from compressor.passes.trainable import clone_module, trainable_module
from compressor.progress import STDERR
from compressor.recipe import PRUNE_METHODS, Recipe
from foundation.errors import DataError, UsageError
from targets.base import QuantScheme, TensorSpec
from targets.registry import get_target


@dataclass
class TorchPassState:
    """What the passes share: teacher, student, data and the masks sparsity must keep."""

    recipe: Recipe
    teacher: nn.Module
    student: nn.Module
    example: tuple[torch.Tensor, ...]
    train: Dataset | None
    calib: Dataset | None
    evaluation: Dataset | None
    masks: Masks = field(default_factory=dict)
    specs: list[TensorSpec] = field(default_factory=list)


def run_prune(state: TorchPassState) -> dict:
    """Structured channel pruning or a sparsity mask, by --prune-method."""
    config = state.recipe.prune
    if config.method in MASK_BUILDERS:
        protected = protected_layers(state.student, config, state.example)
        info, state.masks = apply_sparsity(state.student, config, protected)
        return info
    taylor = _taylor_loss(state) if config.method == "taylor" else None
    return prune_channels(state.student, config, state.example, taylor)


def run_distill(state: TorchPassState) -> dict:
    """Fine-tune the student against the teacher on --train data."""
    recipe = state.recipe
    return distill(
        state.teacher, state.student, state.train, recipe.distill, recipe.seed, state.masks
    )


def run_qat_pass(state: TorchPassState) -> dict:
    """Quantization-aware fine-tuning through the target's Q/DQ (passes/qat.py)."""
    recipe = state.recipe
    data = (state.calib, state.train)
    scheme = target_scheme(recipe)
    state.student, info, _ = run_qat(
        state.student, state.specs, data, scheme, recipe.qat, recipe.seed
    )
    return info


def target_scheme(recipe: Recipe) -> QuantScheme:
    """The QuantScheme the precision step will quantize with (the target's, for its options)."""
    target = get_target(recipe.target)
    return target.quant_scheme(target.check_request(recipe.precision, dict(recipe.target_options)))


TORCH_PASSES: dict[str, Callable[[TorchPassState], dict]] = {
    "prune": run_prune,
    "distill": run_distill,
    "qat": run_qat_pass,
}
ENABLED: dict[str, Callable[[Recipe], bool]] = {
    "prune": lambda r: r.prune.enabled,
    "distill": lambda r: r.distill.enabled,
    "qat": lambda r: r.qat.enabled,
}


def torch_passes(recipe: Recipe) -> list[str]:
    """The torch passes this recipe turns on, in the order they run."""
    return [name for name in TORCH_PASSES if ENABLED[name](recipe)]


def validate_torch_passes(recipe: Recipe) -> None:
    """Reject impossible pruning/distillation settings before any work starts."""
    p, d = recipe.prune, recipe.distill
    checks = [
        (not 0 <= p.ratio < 1, f"--prune {p.ratio} is out of range: give a fraction 0 < RATIO < 1 (0.5 removes half)."),
        (p.method not in PRUNE_METHODS, f"--prune-method '{p.method}' is unknown; choose one of {list(PRUNE_METHODS)}."),
        (p.method == "2:4" and p.enabled and p.ratio != 0.5, "--prune-method 2:4 always zeroes 2 of every 4 weights: use --prune 0.5."),
        (not p.enabled and (p.method != "l1" or p.global_ranking or p.exclude or p.round_to is not None), "--prune-method/--prune-global/--prune-exclude/--prune-round-to need --prune RATIO (2:4 takes --prune 0.5)."),
        (p.round_to is not None and p.round_to < 1, "--prune-round-to must be a positive channel count (e.g. 8)."),
        (d.enabled and not recipe.train, "--distill needs training data: pass --train DATA (an .npz with arrays named after the model inputs, optional 'labels'; an image folder; or pkg.module:function)."),
        (d.enabled and (d.epochs < 1 or d.lr <= 0 or d.batch_size < 2), "--epochs must be >= 1, --lr > 0 and --batch-size >= 2."),
        (d.enabled and (d.temperature <= 0 or not 0 <= d.alpha <= 1), "--temperature must be > 0 and --alpha within [0, 1]."),
        (d.optimizer not in OPTIMIZERS, f"--optimizer '{d.optimizer}' is unknown; choose one of {list(OPTIMIZERS)}."),
        (bool(d.features) and not d.enabled, "--distill-features only works with --distill."),
        (p.method == "taylor" and p.enabled and not (recipe.train or recipe.calib), "--prune-method taylor needs gradients from data: pass --train or --calib."),
    ]  # fmt: skip
    for failed, message in checks:
        if failed:
            raise UsageError(message)
    if recipe.qat.enabled:
        kind = "onnx" if recipe.model.lower().endswith(".onnx") else "torch"
        check_qat_request(recipe.qat, recipe.precision, recipe.auto, kind)
    if torch_passes(recipe) and recipe.model.lower().endswith(".onnx"):
        raise UsageError(
            f"'{recipe.model}' is an ONNX model: pruning and distillation need a torch model "
            "(.pt2 from torch.export or a state dict with --model-factory; TorchScript takes only unstructured/2:4 sparsity)."
        )


def apply_torch_passes(
    recipe: Recipe,
    model: LoadedModel,
    specs: list[TensorSpec],
    calib: Dataset | None,
    evaluation: Dataset | None,
) -> tuple[LoadedModel, dict]:
    """Run the enabled passes on a copy of the model; return the new model and per-pass info."""
    if recipe.qat.enabled:  # TorchScript shows only once loaded
        check_qat_request(recipe.qat, recipe.precision, recipe.auto, model.kind)
    train = _load_train(recipe, specs)
    torch.manual_seed(recipe.seed)
    torch.set_num_threads(recipe.threads)  # more threads than free cores slows training badly
    teacher = trainable_module(model)
    example = _example(specs, next((d for d in (train, calib, evaluation) if d is not None), None))
    student = clone_module(teacher)
    state = TorchPassState(recipe, teacher, student, example, train, calib, evaluation)
    state.specs = list(specs)
    stats = model_stats(teacher, example, evaluation)
    info = {}
    for name in torch_passes(recipe):
        STDERR.print(f"[bold]{name}[/] ({_describe(recipe, name)})")
        started = time.perf_counter()
        result = TORCH_PASSES[name](state)
        after = model_stats(state.student, example, evaluation)
        info[name] = {**result, "before": stats, "after": after}
        info[name]["seconds"] = round(time.perf_counter() - started, 2)
        stats = after
    kind = "torchscript" if isinstance(state.student, torch.jit.ScriptModule) else "module"
    student = LoadedModel(model.path, kind, state.student.eval(), None, list(specs))
    return student, info


def _describe(recipe: Recipe, name: str) -> str:
    if name == "qat":
        q = recipe.qat
        ranges = "learned" if q.learn_ranges else "fixed"
        return f"{q.epochs} epochs, lr {q.lr}, {ranges} ranges, at most {q.time:g}s"
    if name == "prune":
        p = recipe.prune
        return f"{p.method}, ratio {p.ratio}, {'global' if p.global_ranking else 'uniform'}"
    d = recipe.distill
    return f"{d.epochs} epochs, {d.optimizer} lr {d.lr}, T={d.temperature}, alpha={d.alpha}"


def _load_train(recipe: Recipe, specs: list[TensorSpec]) -> Dataset | None:
    if not recipe.train:
        return None
    shapes = {s.name: tuple(s.shape) for s in specs}
    data = load_dataset(recipe.train, shapes, None, parse_preprocess(recipe.preprocess)).bind(specs)
    data.check_finite()
    return data


def _example(specs: list[TensorSpec], data: Dataset | None) -> tuple[torch.Tensor, ...]:
    """Two real samples when there is data (BatchNorm and pruning need a batch), else noise."""
    if data is not None:
        return tuple(torch.from_numpy(np.ascontiguousarray(v[:2])) for v in data.inputs.values())
    shapes = [[2 if i == 0 else d for i, d in enumerate(s.shape)] for s in specs]
    if any(not isinstance(d, int) for shape in shapes for d in shape):
        raise DataError("Pruning needs the input shapes: pass --calib, --eval or --input-shape.")
    return tuple(torch.randn(shape) for shape in shapes)


def _taylor_loss(state: TorchPassState) -> Callable[[nn.Module], torch.Tensor]:
    """Cross-entropy on up to 256 samples (labels, or the model's own top-1 without them)."""
    data = (state.train if state.train is not None else state.calib).take(256)

    def loss(module: nn.Module) -> torch.Tensor:
        inputs = tuple(torch.from_numpy(np.ascontiguousarray(v)) for v in data.inputs.values())
        logits = module(*inputs)
        labels = data.labels if data.labels is not None else logits.argmax(-1).detach().numpy()
        return nn.functional.cross_entropy(logits, torch.from_numpy(np.asarray(labels)).long())

    return loss


def model_stats(module: nn.Module, example: tuple, evaluation: Dataset | None) -> dict:
    """Parameters (all and non-zero), MACs at batch 1, and top-1 on --eval measured in torch."""
    params = list(module.parameters())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # deepcopy of an fx module
            macs, _ = tp.utils.count_ops_and_params(module, tuple(x[:1] for x in example))
    except Exception:  # TorchScript modules take no counting hooks
        macs = None
    accuracy = None
    if evaluation is not None and evaluation.labels is not None:
        accuracy = float((predict(module, evaluation).argmax(-1) == evaluation.labels).mean())
    return {
        "params": sum(p.numel() for p in params),
        "nonzero_params": sum(int(p.count_nonzero()) for p in params),
        "macs": None if macs is None else int(macs),
        "accuracy": accuracy,
    }
