"""Weight sparsity: unstructured magnitude masks and 2:4 semi-structured masks, baked in.

Zeros inside dense tensors shrink the compressed (zipped) model, not its dense latency: ONNX
Runtime and TFLite run the same dense kernels on them. 2:4 (two zeros in every four weights
along the input dimension) is what sparse tensor cores (NVIDIA Ampere and later, TensorRT with
sparsity enabled) accelerate. These run on any torch module, TorchScript included, because only
weight values change, never shapes.
"""

from __future__ import annotations

import torch
from torch import nn

from compressor.recipe import PruneConfig

Masks = dict[str, torch.Tensor]


def sparse_weights(module: nn.Module, protected: set[str]) -> dict[str, torch.Tensor]:
    """Conv, Linear, attention and LSTM weight matrices (by parameter name) sparsity may touch."""
    return {
        name: p
        for name, p in module.named_parameters()
        if "weight" in name.rpartition(".")[2] and p.dim() in (2, 3, 4, 5)
        if name.rpartition(".")[0] not in protected
    }


def unstructured_masks(weights: dict[str, torch.Tensor], config: PruneConfig) -> Masks:
    """Zero the smallest |w|: the same fraction per layer, or one threshold across layers."""
    if config.global_ranking:
        flat = torch.cat([w.detach().abs().flatten() for w in weights.values()])
        threshold = _kth_smallest(flat, config.ratio)
        return {n: w.detach().abs() > threshold for n, w in weights.items()}
    return {
        n: w.detach().abs() > _kth_smallest(w.detach().abs().flatten(), config.ratio)
        for n, w in weights.items()
    }


def _kth_smallest(values: torch.Tensor, ratio: float) -> torch.Tensor:
    k = int(round(ratio * values.numel()))
    return values.kthvalue(k).values if k > 0 else values.min() - 1


def two_four_masks(weights: dict[str, torch.Tensor], config: PruneConfig) -> Masks:
    """Keep the 2 largest |w| of every 4 consecutive input channels (weights with C % 4 == 0)."""
    masks = {}
    for name, w in weights.items():
        if w.shape[1] % 4:
            continue  # e.g. a first conv on 1 or 3 channels: no 2:4 layout exists
        last = w.detach().abs().movedim(1, -1)  # [out, *kernel, in]: groups run along `in`
        groups = last.reshape(-1, 4)
        keep = torch.zeros_like(groups, dtype=torch.bool)
        keep.scatter_(1, groups.topk(2, dim=1).indices, True)
        masks[name] = keep.reshape(last.shape).movedim(-1, 1)
    return masks


MASK_BUILDERS = {"unstructured": unstructured_masks, "2:4": two_four_masks}


def apply_sparsity(
    module: nn.Module, config: PruneConfig, protected: set[str]
) -> tuple[dict, Masks]:
    """Build the method's masks, multiply them into the weights, report sparsity per layer."""
    weights = sparse_weights(module, protected)
    masks = MASK_BUILDERS[config.method](weights, config)
    apply_masks(module, masks)
    layers = {n: round(1 - float(m.float().mean()), 4) for n, m in masks.items()}
    zeros = sum(int((~m).sum()) for m in masks.values())
    total = sum(p.numel() for p in module.parameters())
    info = {
        "method": config.method,
        "ratio": 0.5 if config.method == "2:4" else config.ratio,
        "global_ranking": config.global_ranking,
        "protected": sorted(protected),
        "layer_sparsity": layers,
        "skipped_layers": sorted(set(weights) - set(masks)),
        "model_sparsity": round(zeros / max(total, 1), 4),
    }
    return info, masks


def apply_masks(module: nn.Module, masks: Masks) -> None:
    """Zero masked weights in place (again after every optimizer step while fine-tuning)."""
    params = dict(module.named_parameters())
    with torch.no_grad():
        for name, mask in masks.items():
            params[name].mul_(mask)


def check_two_four(weight: torch.Tensor) -> bool:
    """True when every group of 4 along the input dimension holds at most 2 non-zeros."""
    groups = weight.detach().movedim(1, -1).reshape(-1, 4)
    return bool(((groups != 0).sum(dim=1) <= 2).all())
