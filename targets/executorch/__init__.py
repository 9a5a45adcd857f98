"""ExecuTorch target: the torch model exported and lowered to a .pte with the XNNPACK delegate;
int8 takes the Q/DQ ONNX graph's calibrated ranges and placement (PT2E for XNNPACK)."""

from targets.executorch.lower import ExecuTorchTarget

TARGET = ExecuTorchTarget()

__all__ = ["TARGET", "ExecuTorchTarget"]
