"""Where each input's samples lie in the data: a batch axis other than 0, or none at all.

Data arrays hold samples along axis 0 unless --batch-axis NAME:AXIS says otherwise (a state
input [2, B, 128] saved as [2, N, 128]). A 0-d array, or one with exactly the shape of an input
that has no dynamic dim while the other arrays hold another number of samples, is a constant
shared by all samples (a sample rate, a fixed mask) and is fed whole with every batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from foundation.errors import DataError


@dataclass(frozen=True)
class DataLayout:
    """Batch axes by input name, and the full shapes of inputs without dynamic dims."""

    batch_axes: dict[str, int] = field(default_factory=dict)
    static_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)


def split_arrays(
    arrays: dict[str, np.ndarray], layout: DataLayout | None, source: str
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(per-sample arrays moved samples-first, shared constants) from arrays as saved."""
    layout = layout or DataLayout()
    shared = {k: v for k, v in arrays.items() if np.ndim(v) == 0}
    batched = {}
    for name, arr in arrays.items():
        if name in shared:
            continue
        axis = layout.batch_axes.get(name, 0)
        if axis >= arr.ndim:
            raise DataError(
                f"{source}: --batch-axis {name}:{axis} but array '{name}' has only {arr.ndim} "
                f"dims {list(arr.shape)}."
            )
        batched[name] = np.moveaxis(arr, axis, 0) if axis else arr
    if len({len(v) for v in batched.values()}) > 1:
        whole = {
            k for k, v in arrays.items() if k in batched and v.shape == layout.static_shapes.get(k)
        }
        rest = {len(v) for k, v in batched.items() if k not in whole}
        if whole and len(rest) == 1:
            shared |= {k: arrays[k] for k in whole}
            batched = {k: v for k, v in batched.items() if k not in whole}
    return batched, shared


def to_model_layout(batch: np.ndarray, axis: int) -> np.ndarray:
    """A samples-first chunk with its samples moved to the model's batch axis."""
    return np.moveaxis(batch, 0, axis) if axis else batch
