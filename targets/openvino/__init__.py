"""OpenVINO target: the fp32 or Q/DQ ONNX read by OpenVINO and saved as IR (.xml + .bin) in a
model.openvino/ folder, run by OpenVINO's CPU plugin."""

from targets.openvino.lower import OpenVinoTarget

TARGET = OpenVinoTarget()

__all__ = ["TARGET", "OpenVinoTarget"]
