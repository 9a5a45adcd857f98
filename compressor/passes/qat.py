"""Quantization-aware fine-tuning (--qat): train the student through the artifact's own int8.

1. Export the student (BatchNorm folded) and quantize it with the target's QuantScheme on the
   calibration data, as the precision step will: that Q/DQ graph is the one QAT mirrors.
2. Mirror it in torch (qat_model.py): fake-quant at every quantized activation, initialised
   with that graph's scale and zero point, and on every int8 weight.
3. Distil: the fp32 student is the teacher, loss = MSE to its outputs over their mean square
   (plus 0.1 x cross-entropy when --train has labels), Adam, cosine schedule, --qat-epochs and a
   --qat-time budget; the epoch with the best held-back SQNR is kept.
4. The precision step quantizes the trained float weights with the learned activation ranges
   imposed through the calibration cache (`quantize_with_ranges`), so the Q/DQ graph's scales
   and zero points are the ones trained with, and its held-back steps stay off: they would
   move weights and ranges away from what was trained.
"""

from __future__ import annotations

import copy
import math
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import torch
from onnxruntime.quantization.quant_utils import get_qmin_qmax_for_qType
from torch import nn

from calibration.activations import TensorStats, collect_stats
from calibration.dataset import Dataset
from compressor.model.export import export_onnx
from compressor.model.loading import LoadedModel
from compressor.passes.cleanup import cleanup_onnx
from compressor.passes.distill import _subset, predict
from compressor.passes.qat_model import (
    Mirror,
    act_range,
    build_mirror,
    match_nodes,
    node_values,
    onnx_values,
    read_qdq,
    to_fx,
)
from compressor.passes.quantize import QUANT_TYPES, quantize_int8_static
from compressor.progress import STDERR
from compressor.recipe import Int8Config, QatConfig
from foundation.errors import UsageError
from targets.base import QuantScheme, TensorSpec

HELD_BACK_FRACTION = 0.2
LABEL_WEIGHT = 0.1  # cross-entropy on --train labels, beside the fp32 match that QAT is for
MIN_SAMPLES = 10
MAX_EPOCHS, MAX_BATCH = 100_000, 65_536
STEPS_OFF = Int8Config(equalize=False, smooth=False, bias_correction=False)


def check_qat_request(qat: QatConfig, precision: str, auto: bool, kind: str) -> None:
    """Refuse what QAT cannot do before any work starts."""
    checks = [
        (precision != "int8", "--qat fine-tunes for static int8: add --int8 and --calib DATA."),
        (auto, "--qat and --auto cannot be combined yet: run --qat, then --auto on its result."),
        (not 1 <= qat.epochs <= MAX_EPOCHS, f"--qat-epochs must be within 1..{MAX_EPOCHS}."),
        (not 0 < qat.lr <= 10, "--qat-lr must be above 0 and at most 10 (try 1e-5)."),
        (not 1 <= qat.batch_size <= MAX_BATCH, f"--qat-batch-size must be within 1..{MAX_BATCH}."),
        (not 0 < qat.time < math.inf, "--qat-time must be a finite number of seconds above 0."),
        (kind == "onnx", "--qat needs a torch model (.pt2 from torch.export, or a state dict "
         "with --model-factory): an ONNX model cannot be fine-tuned here."),
        (kind == "torchscript", "--qat needs a .pt2 (torch.export) or --model-factory model: "
         "TorchScript cannot be rebuilt into trainable layers."),
    ]  # fmt: skip
    for failed, message in checks:
        if failed:
            raise UsageError(message)


def run_qat(
    student: nn.Module,
    specs: list[TensorSpec],
    data: tuple[Dataset, Dataset | None],
    scheme: QuantScheme,
    config: QatConfig,
    seed: int,
) -> tuple[nn.Module, dict, nn.Module]:
    """The fine-tuned float student (BN folded), what QAT did (the ranges to impose included)
    and the fake-quant model it trained (sharing the student's weights)."""
    calib, train = data
    torch.manual_seed(seed)
    unlabelled = Dataset(calib.inputs, None, calib.source)  # calibration trains label-free
    fit, held = _split(train if train is not None else unlabelled, seed)
    example = _inputs(calib, slice(0, 2))
    student = to_fx(student, example)
    teacher = copy.deepcopy(student).eval()
    mirror = _mirror(student, specs, calib, scheme, config.learn_ranges)
    started = time.perf_counter()
    history = _train(mirror, teacher, fit, held, config, seed)
    symmetric = _symmetric_range(scheme)
    ranges = {t: act_range(mirror.acts[s], symmetric) for t, s in mirror.tensors.items()}
    info = {
        "epochs_run": len(history["epochs"]),
        "train_seconds": round(time.perf_counter() - started, 2),
        "loss_before": history["loss_before"],
        "loss_after": history["loss_after"],
        "held_back_sqnr_db_before": history["sqnr"][0],
        "held_back_sqnr_db_after": history["best"],
        "held_back_samples": len(held),
        "labels_used": fit.labels is not None,
        "history": history["epochs"],
        "mirrored_activations": len(mirror.tensors),
        "mirrored_weights": len(mirror.weights),
        "unmirrored_activations": mirror.unmatched,
        "weight_scale_gap": mirror.scale_gap,
        "ranges": {t: [float(lo), float(hi)] for t, (lo, hi) in ranges.items()},
    }
    return student, info, mirror.model


def _mirror(
    student: nn.Module, specs: list[TensorSpec], calib: Dataset, scheme: QuantScheme, learn: bool
) -> Mirror:
    """Quantize the exported student as the precision step does and mirror that graph."""
    with tempfile.TemporaryDirectory(prefix="qat-") as tmp:
        work = Path(tmp)
        sample = {name: v[:2] for name, v in calib.inputs.items()}
        loaded = LoadedModel(Path("student"), "module", student, None, list(specs))
        fp32 = work / "fp32.onnx"
        cleanup_onnx(export_onnx(loaded, specs, work / "raw.onnx", sample), fp32)
        stats = collect_stats(fp32, calib, 16, False)
        quantize_int8_static(
            fp32, work / "q.onnx", calib, scheme, "minmax", 16, None, (), stats, STEPS_OFF
        )
        fp32_model, qdq = onnx.load(str(fp32)), onnx.load(str(work / "q.onnx"))
    inputs = [i.name for i in fp32_model.graph.input]
    names = {o for n in fp32_model.graph.node for o in n.output} | set(inputs)
    acts, weights = read_qdq(qdq, names)
    wanted = [a.tensor for a in acts if a.tensor not in inputs]
    values = onnx_values(fp32_model, wanted, sample)
    matches = match_nodes(
        student, node_values(student, _inputs(calib, slice(0, 2))), values, inputs
    )
    return build_mirror(student, acts, weights, matches, learn, scheme.per_channel)


def _symmetric_range(scheme: QuantScheme) -> tuple[int, int] | None:
    """onnxruntime's symmetric activation range (int8: -127..127), None when asymmetric."""
    if not scheme.activation_symmetric:
        return None
    qmin, qmax = get_qmin_qmax_for_qType(
        QUANT_TYPES[scheme.activation_type].tensor_type, symmetric=True
    )
    return int(qmin), int(qmax)


def _train(
    mirror: Mirror, teacher: nn.Module, fit: Dataset, held: Dataset, config: QatConfig, seed: int
) -> dict:
    """Distil teacher into the fake-quant model within the epochs and time; keep the best."""
    model = mirror.model
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=config.lr)
    steps = config.epochs * -(-len(fit) // config.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
    gen = torch.Generator().manual_seed(seed)
    reference = predict(teacher, held)
    power = max(float(np.mean(reference**2)), 1e-12)
    first = held_back(model, held, reference)
    best = (first, copy.deepcopy(model.state_dict()))
    history = {
        "sqnr": [first],
        "epochs": [],
        "loss_before": round(_mse(model, held, reference) / power, 6),
    }
    started = time.perf_counter()
    STDERR.print(f"[bold]qat[/] held-back SQNR {first:.2f} dB before fine-tuning")
    for epoch in range(1, config.epochs + 1):
        loss = _epoch(model, teacher, fit, config, opt, schedule, gen, power)
        sqnr = held_back(model, held, reference)
        history["epochs"].append(
            {"epoch": epoch, "loss": round(loss, 6), "held_back_sqnr_db": sqnr}
        )
        STDERR.print(
            f"qat epoch {epoch}/{config.epochs}: loss {loss:.5f}, held-back SQNR {sqnr:.2f} dB"
        )
        if sqnr > best[0]:
            best = (sqnr, copy.deepcopy(model.state_dict()))
        if time.perf_counter() - started > config.time:
            STDERR.print(f"qat: --qat-time {config.time:g}s spent after epoch {epoch}")
            break
    model.load_state_dict(best[1])
    history["best"] = best[0]
    history["loss_after"] = round(_mse(model, held, reference) / power, 6)
    return history


def _epoch(
    model: nn.Module,
    teacher: nn.Module,
    fit: Dataset,
    config: QatConfig,
    opt: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    gen: torch.Generator,
    power: float,
) -> float:
    """One pass over shuffled batches (eval mode: BN is folded, dropout stays off)."""
    total, count = 0.0, 0
    for idx in torch.randperm(len(fit), generator=gen).split(config.batch_size):
        inputs = _inputs(fit, idx.numpy())
        with torch.no_grad():
            target = _first(teacher(*inputs))
        output = _first(model(*inputs))
        loss = nn.functional.mse_loss(output, target) / power
        if fit.labels is not None:
            labels = torch.from_numpy(np.asarray(fit.labels[idx.numpy()])).long()
            loss = loss + LABEL_WEIGHT * nn.functional.cross_entropy(output.flatten(1), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
        total, count = total + loss.item() * len(idx), count + len(idx)
    return total / max(count, 1)


def held_back(model: nn.Module, held: Dataset, reference: np.ndarray) -> float:
    """SQNR (dB) of the fake-quant model's first output against the fp32 teacher's."""
    noise = float(np.mean((predict(model, held) - reference) ** 2))
    signal = float(np.mean(reference**2))
    return round(float(10 * np.log10(max(signal, 1e-30) / max(noise, 1e-30))), 3)


def _mse(model: nn.Module, held: Dataset, reference: np.ndarray) -> float:
    return float(np.mean((predict(model, held) - reference) ** 2))


def _first(out: object) -> torch.Tensor:
    return out[0] if isinstance(out, (tuple, list)) else out


def _split(data: Dataset, seed: int) -> tuple[Dataset, Dataset]:
    """A seeded split: 80% to train on, 20% held back to pick the epoch and report SQNR."""
    if len(data) < MIN_SAMPLES:
        raise UsageError(
            f"--qat trains on {data.source}, which has {len(data)} samples: give at least "
            f"{MIN_SAMPLES} (a fifth is held back to judge the fine-tuning)."
        )
    order = np.random.default_rng(seed).permutation(len(data))
    cut = max(2, int(len(data) * HELD_BACK_FRACTION))
    return _subset(data, order[cut:]), _subset(data, order[:cut])


def _inputs(data: Dataset, idx: object) -> tuple[torch.Tensor, ...]:
    return tuple(torch.from_numpy(np.ascontiguousarray(v[idx])) for v in data.inputs.values())


def quantize_with_ranges(
    src: Path,
    dst: Path,
    data: Dataset,
    scheme: QuantScheme,
    batch: int,
    ranges: dict[str, list[float]],
    config: Int8Config,
) -> dict:
    """Static int8 with QAT's learned activation ranges imposed, held-back steps off."""
    stats = collect_stats(src, data, batch, False)
    for tensor, (low, high) in ranges.items():
        stats[tensor] = TensorStats(lowest=low, highest=high)
    config = replace(
        config, **{f: getattr(STEPS_OFF, f) for f in ("equalize", "smooth", "bias_correction")}
    )
    info = quantize_int8_static(src, dst, data, scheme, "minmax", batch, None, (), stats, config)
    return {**info, "ranges_from": "qat", "imposed_ranges": len(ranges)}
