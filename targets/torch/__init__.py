"""The torch baseline runner (not a deployment target): runs the original model eagerly."""

from targets.torch.runner import TorchRunner

__all__ = ["TorchRunner"]
