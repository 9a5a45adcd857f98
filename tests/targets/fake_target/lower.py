"""Lower to the fake target: copy the (Q/DQ) ONNX into a model.fakepkg folder with a sidecar."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from foundation.errors import UnsupportedOp
from targets.base import Artifact, Runner, Target, TargetOptions
from tests.targets.fake_target.capabilities import CAPABILITIES
from tests.targets.fake_target.options import FakeOptions

SIDECAR = "meta.json"


class FakeTarget(Target):
    """A folder artifact run by onnxruntime: the shape of CoreML's .mlpackage or OpenVINO IR."""

    name = "fake"
    capabilities = CAPABILITIES
    options_type = FakeOptions

    def availability(self) -> tuple[bool, str]:
        return True, "test-only target (onnxruntime inside a folder artifact)"

    def _lower_impl(
        self, onnx_path: Path, precision: str, work: Path, options: TargetOptions
    ) -> Artifact:
        folder = work / f"model{CAPABILITIES.artifact.suffix}"
        folder.mkdir()
        shutil.copyfile(onnx_path, folder / "model.onnx")
        meta = {"precision": precision, "tag": options.tag}
        (folder / SIDECAR).write_text(json.dumps(meta, sort_keys=True))
        if options.fail_after_write:
            raise UnsupportedOp("fake: failing after writing, as asked (fail_after_write=true).")
        return Artifact(folder, self.name, precision, info={"runtime": "fake-ort", **meta})

    def _open_runner_impl(self, path: Path, threads: int, options: TargetOptions) -> Runner:
        from tests.targets.fake_target.runner import FakeRunner

        return FakeRunner(path, threads)
