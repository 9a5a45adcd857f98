"""Feed a Dataset to onnxruntime's calibrators, batch by batch, with a progress callback."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from calibration.dataset import Dataset


class DatasetReader(CalibrationDataReader):
    """CalibrationDataReader over a Dataset; `on_batch(n)` is told how many samples went in."""

    def __init__(
        self, data: Dataset, batch_size: int, on_batch: Callable[[int], None] | None = None
    ) -> None:
        self._data = data
        self._batch_size = batch_size
        self._on_batch = on_batch
        self._iter = data.batches(batch_size)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._iter, None)
        if batch is None:
            return None
        inputs, _ = batch
        if self._on_batch:
            self._on_batch(len(next(iter(inputs.values()))))
        return inputs

    def rewind(self) -> None:
        self._iter = self._data.batches(self._batch_size)
