"""A test-only target in one folder: its artifact is a folder (model.fakepkg/ holding the ONNX
graph and a JSON sidecar), run by onnxruntime inside its own runner.

It exists to prove the Target protocol: `compress` lowers, verifies, packages and describes it
through the registry alone (register_target("fake", "tests.targets.fake_target")).
"""

from tests.targets.fake_target.lower import FakeTarget

TARGET = FakeTarget()

__all__ = ["TARGET", "FakeTarget"]
