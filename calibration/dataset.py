"""Dataset: named input arrays stacked along a leading sample axis, with optional labels."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from calibration.layout import to_model_layout
from foundation.errors import DataError


@dataclass(frozen=True)
class Dataset:
    """Samples for calibration, evaluation or training; every array has the sample axis first.

    `shared` arrays are fed whole with every batch; `batch_axes` moves an input's samples to
    another axis when batches are fed (calibration/layout.py).
    """

    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None = None
    source: str = "<memory>"
    shared: dict[str, np.ndarray] = field(default_factory=dict)
    batch_axes: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.inputs:
            raise DataError(f"{self.source}: holds no input arrays.")
        counts = {name: len(arr) for name, arr in self.inputs.items()}
        if len(set(counts.values())) != 1:
            raise DataError(
                f"{self.source}: input arrays hold different numbers of samples {counts}; "
                "every array must have the same leading (sample) dimension. When an input's "
                "samples lie along another axis, say so with --batch-axis NAME:AXIS."
            )
        if next(iter(counts.values())) == 0:
            raise DataError(f"{self.source}: holds no samples (arrays are empty).")
        if self.labels is not None and len(self.labels) != len(self):
            raise DataError(
                f"{self.source}: has {len(self.labels)} labels for {len(self)} samples; "
                "give one label per sample or no labels at all."
            )

    def __len__(self) -> int:
        return len(next(iter(self.inputs.values())))

    @property
    def names(self) -> list[str]:
        return list(self.inputs)

    def take(self, n: int | None) -> Dataset:
        """The first n samples (all when n is None or larger than the set)."""
        if n is None or n >= len(self):
            return self
        if n <= 0:
            raise DataError(f"Asked for {n} samples; the count must be positive.")
        labels = None if self.labels is None else self.labels[:n]
        inputs = {k: v[:n] for k, v in self.inputs.items()}
        return Dataset(inputs, labels, self.source, self.shared, self.batch_axes)

    def batches(self, batch_size: int) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray | None]]:
        """Consecutive (feeds, labels) chunks of at most batch_size samples, in model layout."""
        for start in range(0, len(self), batch_size):
            stop = start + batch_size
            labels = None if self.labels is None else self.labels[start:stop]
            yield self.feeds(slice(start, stop)), labels

    def feeds(self, index: slice | np.ndarray) -> dict[str, np.ndarray]:
        """The samples at index as model inputs: batch axes in place, shared arrays added."""
        batched = {
            k: to_model_layout(v[index], self.batch_axes.get(k, 0)) for k, v in self.inputs.items()
        }
        return batched | self.shared

    def repeated(self, size: int) -> dict[str, np.ndarray]:
        """The first `size` samples as model inputs, repeating the set when it is smaller."""
        return self.feeds(np.arange(size) % len(self))

    def check_finite(self) -> None:
        """Raise when any floating input holds NaN or Inf (they poison calibration ranges)."""
        for name, arr in (self.inputs | self.shared).items():
            if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
                bad = int((~np.isfinite(arr)).sum())
                raise DataError(
                    f"{self.source}: input '{name}' holds {bad} NaN/Inf value(s). "
                    "Clean or drop those samples before calibrating or evaluating."
                )

    def bind(self, specs: list) -> Dataset:
        """Rename and check arrays against model input specs (name, shape without batch, dtype).

        A single-input model also accepts the generic key `input`.
        """
        names = [s.name for s in specs]
        inputs = self.inputs | self.shared
        if len(specs) == 1 and names[0] not in inputs and "input" in inputs:
            inputs = {names[0]: inputs["input"]}
        missing = [n for n in names if n not in inputs]
        if missing:
            raise DataError(
                f"{self.source}: has arrays {sorted(self.inputs)} but the model's inputs are "
                f"{names}. Name each array after a model input"
                + (" (or use the key 'input')." if len(names) == 1 else ".")
            )
        bound, shared = {}, {}
        for spec in specs:
            arr = np.asarray(inputs[spec.name])
            where = f"{self.source}: array '{spec.name}'"
            if spec.name in self.shared:
                _check_dims(arr.shape, spec.shape, where, "shared (constant)", "")
                shared[spec.name] = _cast(arr, spec.dtype, where)
                continue
            axis = self.batch_axes.get(spec.name, 0)
            want = tuple(d for i, d in enumerate(spec.shape) if i != axis)
            if axis == 0 and arr.ndim == len(spec.shape) + 1 and arr.shape[1] == 1:
                arr = arr[:, 0]  # samples saved with their own batch axis of 1
            _check_dims(arr.shape[1:], want, where, "per-sample", " (arrays are [samples, ...])")
            bound[spec.name] = _cast(arr, spec.dtype, where)
        return Dataset(bound, self.labels, self.source, shared, dict(self.batch_axes))


def _check_dims(got: tuple, want: tuple, where: str, kind: str, hint: str) -> None:
    """Raise unless got has want's rank and matches its fixed dims."""
    ok = len(got) == len(want) and all(
        not isinstance(w, int) or w <= 0 or w == g for g, w in zip(got, want, strict=True)
    )
    if not ok:
        raise DataError(
            f"{where} has {kind} shape {list(got)} but the model expects "
            f"{[w if isinstance(w, int) and w > 0 else '?' for w in want]}{hint}."
        )


def _cast(arr: np.ndarray, dtype: str, where: str) -> np.ndarray:
    """Cast to the model's dtype, refusing casts that silently change values (float → int)."""
    want = np.dtype(dtype)
    if arr.dtype.kind not in "biuf":
        raise DataError(f"{where} holds {arr.dtype} values; the model takes numeric {want} input.")
    if want.kind in "iu" and arr.dtype.kind == "f":
        raise DataError(
            f"{where} holds floats but the model input is {want} (e.g. token ids); "
            f"save the array as {want}."
        )
    return arr.astype(want, copy=False)
