"""What the fake target declares: a folder-shaped artifact, two precisions."""

from __future__ import annotations

from targets.base import ArtifactLayout, QuantScheme, TargetCapabilities

CAPABILITIES = TargetCapabilities(
    precisions=("fp32", "int8"),
    quant_scheme=QuantScheme(description="fake: onnxruntime's default Q/DQ (U8S8)"),
    runtime="fake-ort",
    artifact=ArtifactLayout(".fakepkg", folder=True),
    runtime_package="onnxruntime",
    dynamic_dims=True,
    notes=("Test-only: a folder artifact run by onnxruntime.",),
)
