"""What a model file is and how it becomes ONNX and data: load, signature, dims, export, example."""
