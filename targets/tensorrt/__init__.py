"""TensorRT target: explicit-quantization ONNX, engines built where a GPU exists, proxy elsewhere."""

from targets.tensorrt.lower import TensorRTTarget

TARGET = TensorRTTarget()

__all__ = ["TARGET", "TensorRTTarget"]
