"""Calibration and evaluation data loaded for a model, the same way for compress, verify and bench:
image folders resized to the model's input, arrays laid out as --batch-axis says."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from calibration.dataset import Dataset
from calibration.layout import DataLayout
from calibration.loaders import load_dataset
from calibration.preprocess import Preprocess, parse_preprocess
from calibration.varied import VariedDataset
from compressor.model.artifacts import open_artifact
from compressor.model.dims import check_batch_axes, static_shapes
from compressor.model.loading import LoadedModel, given_shapes, model_inputs, resolve_input_specs
from compressor.recipe import Recipe
from foundation.errors import DataError, UsageError
from targets.base import TensorSpec

DEFAULT_CALIB_SAMPLES = 512


class RunData(NamedTuple):
    """A compress run's data, bound to the model's inputs; None where not given."""

    calib: Dataset | None  # at most --calib-samples (default 512) samples
    evaluation: Dataset | None
    specs: list[TensorSpec]  # the model's inputs, shapes resolved with the data

    @property
    def judging(self) -> Dataset | None:
        """What outputs are compared on: the eval data, else the calibration data."""
        return self.evaluation if self.evaluation is not None else self.calib


def load_model_data(
    spec: str,
    shapes: dict[str, tuple | list],
    specs: list[TensorSpec] | None,
    batch_axes: dict[str, int] | None = None,
    preprocess: Preprocess | None = None,
) -> Dataset:
    """Load data for a model: an image folder is resized to `shapes` (name -> shape with batch;
    batch 1 and dynamic dims open), arrays follow batch_axes and the inputs' static shapes."""
    layout = None
    if specs is not None:
        check_batch_axes(specs, dict(batch_axes or {}))
        layout = DataLayout(dict(batch_axes or {}), static_shapes(specs))
    image_shapes = {name: _image_shape(shape) for name, shape in shapes.items()}
    return load_dataset(spec, image_shapes, layout, preprocess)


def load_run_data(recipe: Recipe, model: LoadedModel) -> RunData:
    """--calib and --eval for the model, checked finite; calibration capped at --calib-samples."""
    inputs = model_inputs(model, recipe.input_shapes)
    given = given_shapes(recipe.input_shapes, [s.name for s in inputs])
    known = {s.name: s.shape for s in model.inputs if s.shape} | given
    check_batch_axes(model.inputs, recipe.batch_axes)
    prep = parse_preprocess(recipe.preprocess)

    def load(spec: str | None) -> Dataset | None:
        return load_model_data(spec, known, model.inputs, recipe.batch_axes, prep) if spec else None

    raw_calib, raw_eval = load(recipe.calib), load(recipe.eval)
    specs = resolve_input_specs(
        model, recipe.input_shapes, [raw_calib, raw_eval], recipe.batch_axes
    )
    _check_varied(raw_calib, raw_eval, recipe.calibration)
    calib = raw_calib.bind(specs) if raw_calib else None
    if calib is not None:
        calib.check_finite()
        calib = calib.take(recipe.calib_samples or DEFAULT_CALIB_SAMPLES)
    evaluation = raw_eval.bind(specs) if raw_eval else None
    if evaluation is not None:
        evaluation.check_finite()
    if recipe.budget.max_accuracy_drop is not None and evaluation.labels is None:
        raise DataError(
            f"{evaluation.source} has no 'labels' array, so accuracy cannot be measured for "
            "--max-accuracy-drop. Add labels or use --min-fidelity."
        )
    return RunData(calib, evaluation, specs)


def load_data_for(
    spec: str,
    path: str | Path,
    input_shapes: dict[str, list[int]] | None = None,
    model_factory: str | None = None,
    trust_pickle: bool = False,
    preprocess: Preprocess | None = None,
    batch_axes: dict[str, int] | None = None,
) -> Dataset:
    """Load data for an artifact as `compress` would (verify, bench): the model's own input
    shapes for image folders and --batch-axis, unless --input-shape gives them."""
    shapes, specs = dict(input_shapes or {}), None
    if batch_axes or (Path(spec).is_dir() and not shapes):
        try:
            runner = open_artifact(path, 1, None, input_shapes, model_factory, trust_pickle)
        except UsageError:  # TorchScript records no shapes: the loader says to pass them
            return load_model_data(spec, shapes, None, None, preprocess)
        try:
            specs = list(runner.inputs)
        finally:
            runner.close()
        shapes = shapes or {s.name: [1, *s.shape[1:]] for s in specs}
    return load_model_data(spec, shapes, specs, batch_axes, preprocess)


def _check_varied(calib: Dataset | None, evaluation: Dataset | None, method: str) -> None:
    """Samples of several sizes calibrate (minmax) but cannot be compared output by output."""
    if isinstance(evaluation, VariedDataset):
        raise DataError(
            f"{evaluation.source}: evaluation samples have several sizes; outputs are compared "
            "sample by sample, so give --eval data of one size (e.g. --preprocess crop=...)."
        )
    if not isinstance(calib, VariedDataset):
        return
    if method not in ("minmax", "auto"):  # auto falls back to minmax on such samples
        raise UsageError(
            f"{calib.source} holds samples of several sizes: calibrate them with "
            f"--calibration minmax ({method} needs one size)."
        )
    if evaluation is None:
        raise UsageError(
            f"{calib.source} holds samples of several sizes, which calibrate but cannot be "
            "compared output by output: pass --eval data of one size to verify the result."
        )


def _image_shape(shape: tuple | list) -> tuple:
    """A model input shape for image folders: batch 1, dynamic dims None."""
    return tuple(
        d if isinstance(d, int) and d > 0 else (1 if i == 0 else None) for i, d in enumerate(shape)
    )


def data_shapes(*datasets: Dataset | None) -> dict[str, tuple[int, ...]]:
    """Per-sample shapes of the first given data's arrays, to suggest an --input-shape."""
    data = next((d for d in datasets if d is not None), None)
    return {k: v.shape[1:] for k, v in data.inputs.items()} if data is not None else {}


def first_sample(data: Dataset | None, specs: list[TensorSpec]) -> dict[str, np.ndarray] | None:
    """The first samples of real data, one batch (the model's fixed batch, else 1), to check
    the normalised ONNX graph against the original."""
    if data is None:
        return None
    batches = {s.fixed_batch for s in specs}
    fixed = batches.pop() if len(batches) == 1 else None
    return data.repeated(fixed or 1)
