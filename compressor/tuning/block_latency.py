"""Per-block latency for --auto: which blocks run slower in int8 than in float on this target.

Each block is probed once: the model with only that block float is lowered for the target and
timed in its runtime interleaved with the all-int8 model (trial 0), so both see the same load.
A block whose float probe beats the all-int8 model by more than LATENCY_MARGIN is slower in
int8 here (its Q/DQ reformat costs more than the int8 kernel saves); with
`--tune-objective latency` or `--max-latency-ms` such blocks are left float.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from compressor.tuning.trials import interleaved_ms
from targets.base import Runner

# A float probe must beat all-int8 by more than this share (timing noise of interleaved medians
# on a shared machine stays below it) before its block counts as slower in int8.
LATENCY_MARGIN = 0.10
MAX_PROBES = 24  # blocks probed at most, worst-ranked first
PROBE_SECONDS = 30.0  # and for at most this long (or half of --tune-time, if less)
PROBE_RUNS = 20


@dataclass(frozen=True)
class BlockTiming:
    """One probe: the whole model with every block int8, and with this block float."""

    tensor: str
    int8_ms: float
    float_ms: float

    @property
    def float_vs_int8(self) -> float:
        """Below 1: the model is faster with this block float."""
        return self.float_ms / max(self.int8_ms, 1e-9)

    def to_dict(self) -> dict:
        return {
            "tensor": self.tensor,
            "int8_ms": round(self.int8_ms, 4),
            "float_ms": round(self.float_ms, 4),
            "float_vs_int8": round(self.float_vs_int8, 3),
            "slower_in_int8": self.float_vs_int8 < 1 - LATENCY_MARGIN,
        }


def slower_in_int8(timings: list[BlockTiming], margin: float = LATENCY_MARGIN) -> list[str]:
    """The blocks whose float form made the whole model faster by more than margin."""
    return [t.tensor for t in timings if t.float_ms < t.int8_ms * (1 - margin)]


def latency_mode(objective: str, max_latency_ms: float | None) -> bool:
    """Whether per-block timing runs and slow int8 blocks are left float."""
    return objective == "latency" or max_latency_ms is not None


def time_blocks(
    blocks: list[tuple[str, tuple[str, ...]]],
    open_plan: Callable[[tuple[str, ...], str], Runner],
    base: Runner,
    feed: dict,
    deadline: float,
) -> list[BlockTiming]:
    """Probe each (tensor, plan) block in turn against the all-int8 runner `base`."""
    timings: list[BlockTiming] = []
    for tensor, plan in blocks[:MAX_PROBES]:
        if time.perf_counter() > deadline:
            break
        probe = open_plan(plan, f"probe{len(timings)}")
        int8_ms, float_ms = interleaved_ms([base, probe], feed, PROBE_RUNS)
        probe.close()
        timings.append(BlockTiming(tensor, int8_ms, float_ms))
    return timings
