"""TFLite / LiteRT target: ONNX (float or Q/DQ) lowered straight to .tflite, no TensorFlow."""

from targets.tflite.lower import TfliteTarget

TARGET = TfliteTarget()

__all__ = ["TARGET", "TfliteTarget"]
