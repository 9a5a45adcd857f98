"""Settings of the fake target (-O KEY=VALUE)."""

from __future__ import annotations

from dataclasses import dataclass, field

from foundation.errors import UsageError
from targets.base import TargetOptions


@dataclass(frozen=True)
class FakeOptions(TargetOptions):
    """Settings of the fake target (-O KEY=VALUE)."""

    tag: str = field(default="", metadata={"help": "Written into the sidecar meta.json."})
    fp32_only: bool = field(
        default=False, metadata={"help": "Refuse every precision but fp32 (tests validate)."}
    )
    fail_after_write: bool = field(
        default=False,
        metadata={"help": "Raise after writing the folder (tests the atomic move)."},
    )

    def validate(self, precision: str) -> None:
        """fp32_only refuses the other precisions."""
        if self.fp32_only and precision != "fp32":
            raise UsageError(f"fake option fp32_only=true refuses {precision}; drop it.")
