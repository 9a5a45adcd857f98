"""Dataset: named input arrays stacked along a leading sample axis, with optional labels."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from compressor.errors import DataError


@dataclass(frozen=True)
class Dataset:
    """Samples for calibration, evaluation or training; every array has the sample axis first."""

    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None = None
    source: str = "<memory>"

    def __post_init__(self) -> None:
        if not self.inputs:
            raise DataError(f"{self.source}: holds no input arrays.")
        counts = {name: len(arr) for name, arr in self.inputs.items()}
        if len(set(counts.values())) != 1:
            raise DataError(
                f"{self.source}: input arrays hold different numbers of samples {counts}; "
                "every array must have the same leading (sample) dimension."
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
        return Dataset({k: v[:n] for k, v in self.inputs.items()}, labels, self.source)

    def batches(self, batch_size: int) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray | None]]:
        """Consecutive (inputs, labels) chunks of at most batch_size samples."""
        for start in range(0, len(self), batch_size):
            stop = start + batch_size
            labels = None if self.labels is None else self.labels[start:stop]
            yield {k: v[start:stop] for k, v in self.inputs.items()}, labels

    def check_finite(self) -> None:
        """Raise when any floating input holds NaN or Inf (they poison calibration ranges)."""
        for name, arr in self.inputs.items():
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
        inputs = dict(self.inputs)
        if len(specs) == 1 and names[0] not in inputs and "input" in inputs:
            inputs = {names[0]: inputs["input"]}
        missing = [n for n in names if n not in inputs]
        if missing:
            raise DataError(
                f"{self.source}: has arrays {sorted(self.inputs)} but the model's inputs are "
                f"{names}. Name each array after a model input"
                + (" (or use the key 'input')." if len(names) == 1 else ".")
            )
        bound = {}
        for spec in specs:
            arr = np.asarray(inputs[spec.name])
            if arr.ndim == len(spec.shape) + 1 and arr.shape[1] == 1:
                arr = arr[:, 0]  # samples saved with their own batch axis of 1
            want = tuple(spec.shape[1:])
            got = arr.shape[1:]
            ok = len(got) == len(want) and all(
                not isinstance(w, int) or w <= 0 or w == g for g, w in zip(got, want, strict=True)
            )
            if not ok:
                raise DataError(
                    f"{self.source}: array '{spec.name}' has per-sample shape {list(got)} but the "
                    f"model expects {[w if isinstance(w, int) else '?' for w in want]} "
                    "(arrays are [samples, ...])."
                )
            bound[spec.name] = _cast(arr, spec.dtype, f"{self.source}: array '{spec.name}'")
        return Dataset(bound, self.labels, self.source)


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
