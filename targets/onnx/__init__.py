"""ONNX Runtime CPU target: the Q/DQ ONNX graph is the artifact, run by onnxruntime."""

from targets.onnx.lower import OnnxTarget

TARGET = OnnxTarget()

__all__ = ["TARGET", "OnnxTarget"]
