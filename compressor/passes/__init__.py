"""Passes: torch passes take and return nn.Module, graph passes take and return ONNX files."""
