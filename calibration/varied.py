"""Samples whose shapes vary (images of several sizes for a model with dynamic height/width):
kept as groups of equal-shaped samples, fed group by group.

onnxruntime calibrates them with minmax (its ReduceMin/ReduceMax outputs do not depend on the
size); histogram methods stack tensors across batches and need one size. Verification stacks
outputs too, so a run calibrated on varied sizes verifies on --eval data of one size.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from calibration.dataset import Dataset
from foundation.errors import DataError


@dataclass(frozen=True)
class VariedDataset(Dataset):
    """A Dataset made of groups; `inputs` shows the first group (names, dtypes, a shape)."""

    groups: tuple[Dataset, ...] = ()

    @classmethod
    def of(cls, groups: list[Dataset], source: str) -> Dataset:
        """One group is a plain Dataset; several make a VariedDataset."""
        if len(groups) == 1:
            return groups[0]
        first = groups[0]
        return cls(first.inputs, None, source, first.shared, first.batch_axes, tuple(groups))

    def __len__(self) -> int:
        return sum(len(g) for g in self.groups)

    def take(self, n: int | None) -> Dataset:
        if n is None or n >= len(self):
            return self
        taken, left = [], n
        for group in self.groups:
            if left > 0:
                taken.append(group.take(left))
                left -= len(taken[-1])
        return VariedDataset.of(taken, self.source)

    def batches(self, batch_size: int) -> Iterator[tuple[dict[str, np.ndarray], None]]:
        for group in self.groups:
            for feeds, _ in group.batches(batch_size):
                yield feeds, None

    def bind(self, specs: list) -> Dataset:
        return VariedDataset.of([g.bind(specs) for g in self.groups], self.source)

    def feeds(self, index: slice | np.ndarray) -> dict[str, np.ndarray]:
        return self.groups[0].feeds(index)

    def repeated(self, size: int) -> dict[str, np.ndarray]:
        return self.groups[0].repeated(size)

    def check_finite(self) -> None:
        for group in self.groups:
            group.check_finite()


def stack_samples(columns: dict[str, list[np.ndarray]], source: str) -> list[dict]:
    """Per shape signature (in first-seen order), the stacked arrays of its samples."""
    n = len(next(iter(columns.values())))
    signatures: dict[tuple, list[int]] = {}
    for i in range(n):
        key = tuple(np.shape(columns[k][i]) for k in columns)
        signatures.setdefault(key, []).append(i)
    groups = []
    for indices in signatures.values():
        try:
            groups.append({k: np.stack([v[i] for i in indices]) for k, v in columns.items()})
        except ValueError as exc:
            raise DataError(f"{source}: samples could not be stacked ({exc}).") from exc
    return groups
