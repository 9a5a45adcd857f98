"""Knowledge distillation: the input model (teacher) fine-tunes the pruned model (student).

Loss = alpha * T² * KL(teacher_T || student_T) + (1 - alpha) * CE(labels) when the training
data has labels, KL alone when it has none, plus MSE on --distill-features outputs (through a
learned 1x1 projection when pruning changed their width). Adam or SGD, cosine learning rate,
early stop on a held-out slice of the training data, deterministic for a seed.
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch
import torch.nn.functional as F
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import nn

from calibration.dataset import Dataset
from compressor.passes.features import FeatureMatcher
from compressor.passes.sparsity import Masks, apply_masks
from compressor.progress import STDERR
from compressor.recipe import DistillConfig
from foundation.errors import UsageError

VALIDATION_FRACTION = 0.1
OPTIMIZERS = {
    "adam": lambda params, lr: torch.optim.Adam(params, lr=lr),
    "sgd": lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True),
}


def distill(
    teacher: nn.Module,
    student: nn.Module,
    train: Dataset,
    config: DistillConfig,
    seed: int = 0,
    masks: Masks | None = None,
) -> dict:
    """Train student toward teacher in place; keep the epoch with the best validation metric."""
    torch.manual_seed(seed)
    fit, val = split_validation(train, seed)
    teacher.eval()
    matcher = FeatureMatcher(teacher, student, config.features, _tensors(fit, slice(0, 2)))
    params = [*student.parameters(), *matcher.parameters()]
    opt = OPTIMIZERS[config.optimizer](params, config.lr)
    steps = config.epochs * -(-len(fit) // config.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
    gen = torch.Generator().manual_seed(seed)
    best = (validation_metric(teacher, student, val), 0, copy.deepcopy(student.state_dict()))
    history, started, epoch = [], time.perf_counter(), 0
    with _progress() as progress:
        task = progress.add_task("distill", total=config.epochs, loss=float("nan"), metric=best[0])
        for epoch in range(1, config.epochs + 1):
            student.train()
            loss = _train_epoch(teacher, student, fit, config, opt, schedule, gen, matcher, masks)
            metric = validation_metric(teacher, student, val)
            history.append({"epoch": epoch, "loss": round(loss, 5), "val_metric": metric})
            progress.update(task, advance=1, loss=loss, metric=metric)
            if metric >= best[0]:  # ties go to the later, longer-trained epoch
                best = (metric, epoch, copy.deepcopy(student.state_dict()))
            elif epoch - best[1] >= config.patience:
                break
    matcher.remove()
    student.load_state_dict(best[2])
    student.eval()
    return {
        "epochs_run": epoch,
        "best_epoch": best[1],
        "val_metric": best[0],
        "val_metric_name": "accuracy" if val.labels is not None else "teacher top-1 agreement",
        "val_samples": len(val),
        "labels_used": fit.labels is not None,
        "history": history,
        "seconds": round(time.perf_counter() - started, 2),
    }


def _train_epoch(
    teacher: nn.Module,
    student: nn.Module,
    fit: Dataset,
    config: DistillConfig,
    opt: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    gen: torch.Generator,
    matcher: FeatureMatcher,
    masks: Masks | None,
) -> float:
    """One pass over shuffled batches; returns the mean loss."""
    total, count = 0.0, 0
    for idx in torch.randperm(len(fit), generator=gen).split(config.batch_size):
        if len(idx) < 2:
            continue  # BatchNorm cannot train on a batch of one
        inputs = _tensors(fit, idx.numpy())
        with torch.no_grad():
            target = teacher(*inputs)
        output = student(*inputs)
        loss = kd_loss(output, target, config, _labels(fit, idx.numpy())) + matcher.loss()
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
        if masks:
            apply_masks(student, masks)
        total, count = total + loss.item() * len(idx), count + len(idx)
    return total / max(count, 1)


def kd_loss(
    student: torch.Tensor, teacher: torch.Tensor, config: DistillConfig, labels: torch.Tensor | None
) -> torch.Tensor:
    """Temperature-softened KL (scaled by T²), blended with cross-entropy when labels exist."""
    t = config.temperature
    kl = F.kl_div(
        F.log_softmax(student / t, dim=-1),
        F.log_softmax(teacher / t, dim=-1),
        log_target=True,
        reduction="batchmean",
    ) * (t * t)
    if labels is None:
        return kl
    return config.alpha * kl + (1 - config.alpha) * F.cross_entropy(student, labels)


def validation_metric(teacher: nn.Module, student: nn.Module, val: Dataset) -> float:
    """Top-1 accuracy on labels, or top-1 agreement with the teacher when there are none."""
    student.eval()
    predictions = predict(student, val).argmax(-1)
    truth = val.labels if val.labels is not None else predict(teacher, val).argmax(-1)
    return round(float((predictions == np.asarray(truth)).mean()), 5)


def predict(module: nn.Module, data: Dataset, batch: int = 256) -> np.ndarray:
    """Stacked first outputs of module over data (eval mode, no gradients)."""
    chunks = []
    with torch.no_grad():
        for start in range(0, len(data), batch):
            out = module(*_tensors(data, slice(start, start + batch)))
            out = out[0] if isinstance(out, (tuple, list)) else out
            chunks.append(out.reshape(len(out), -1).numpy())
    return np.concatenate(chunks)


def split_validation(data: Dataset, seed: int) -> tuple[Dataset, Dataset]:
    """A seeded 90/10 split: the 10% picks the best epoch, so --eval data stays unseen."""
    if len(data) < 20:
        raise UsageError(
            f"--train data {data.source} has {len(data)} samples; distillation needs at least 20 "
            "(10% are held out to pick the best epoch)."
        )
    order = np.random.default_rng(seed).permutation(len(data))
    cut = max(1, int(len(data) * VALIDATION_FRACTION))
    return _subset(data, order[cut:]), _subset(data, order[:cut])


def _subset(data: Dataset, idx: np.ndarray) -> Dataset:
    labels = None if data.labels is None else data.labels[idx]
    return Dataset({k: v[idx] for k, v in data.inputs.items()}, labels, data.source)


def _tensors(data: Dataset, idx: object) -> tuple[torch.Tensor, ...]:
    return tuple(torch.from_numpy(np.ascontiguousarray(v[idx])) for v in data.inputs.values())


def _labels(data: Dataset, idx: np.ndarray) -> torch.Tensor | None:
    return None if data.labels is None else torch.from_numpy(data.labels[idx]).long()


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}  val {task.fields[metric]:.4f}"),
        TimeElapsedColumn(),
        console=STDERR,
    )
