"""Int8 outputs in every arithmetic a CPU may compute a Q/DQ graph in (exact int32 sums, and
AVX2's u8×s8 pairs in a saturating int16), so an int8 assertion holds on AVX2-only and VNNI
hosts alike: the emulation makes both testable on either machine."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from targets.arithmetic import ARITHMETICS
from targets.registry import EXACT_ARITHMETIC, reference_runner

# Every arithmetic onnxruntime's CPU kernels compute in (the portable profile's).
EVERY_ARITHMETIC = tuple(ARITHMETICS)
# TensorRT, LiteRT (XNNPACK) and VNNI/ARM kernels sum int8 in int32: only exact applies.
EXACT_ONLY = (EXACT_ARITHMETIC,)


def run_in(path: Path, feeds: dict[str, np.ndarray], arithmetic: str) -> list[np.ndarray]:
    """Every output of the model at path on feeds, in output order, computed in arithmetic."""
    runner = reference_runner(Path(path), arithmetic=arithmetic)
    outputs = runner.run(feeds)
    return [outputs[spec.name] for spec in runner.outputs]
