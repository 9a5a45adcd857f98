"""Settings of the ExecuTorch target (-O KEY=VALUE)."""

from __future__ import annotations

from dataclasses import dataclass, field

from foundation.errors import UsageError
from targets.base import TargetOptions


@dataclass(frozen=True)
class ExecuTorchOptions(TargetOptions):
    """Settings of the ExecuTorch target (`-O KEY=VALUE`)."""

    max_batch: int = field(
        default=32,
        metadata={
            "help": "Largest batch the .pte takes (ExecuTorch plans memory for it); the runner "
            "splits larger batches."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.max_batch <= 4096:
            raise UsageError(f"executorch option max_batch={self.max_batch}: give 1 to 4096.")
