"""Dynamic dims of declared input shapes: fixed from --input-shape, or refused by targets that
cannot take them, with the --input-shape to pass."""

from __future__ import annotations

import dataclasses

from foundation.errors import UsageError
from targets.base import TensorSpec


def is_dynamic(dim: object) -> bool:
    """A dim without a fixed positive size (a name, None, or -1/0 as some exporters write)."""
    return not isinstance(dim, int) or dim <= 0


def fix_dims(spec: TensorSpec, given: tuple[int, ...], batch_axis: int = 0) -> TensorSpec:
    """The spec with its dynamic dims set from `given` (the full shape, batch included).

    The batch axis stays dynamic when the model declares it so; fixed dims must agree.
    """
    if len(given) != len(spec.shape):
        raise UsageError(
            f"--input-shape {spec.name}:{'x'.join(map(str, given))} has {len(given)} dims but "
            f"input '{spec.name}' has rank {len(spec.shape)} ({format_shape(spec.shape)})."
        )
    shape = []
    for axis, (dim, want) in enumerate(zip(spec.shape, given, strict=True)):
        if not is_dynamic(dim) and dim != want:
            raise UsageError(
                f"--input-shape {spec.name}:{'x'.join(map(str, given))} sets dim {axis} to {want}, "
                f"but the model fixes it to {dim} ({format_shape(spec.shape)})."
            )
        shape.append(dim if is_dynamic(dim) and axis == batch_axis else want)
    return dataclasses.replace(spec, shape=tuple(shape))


def dynamic_axes(spec: TensorSpec, batch_axis: int = 0) -> list[int]:
    """The axes other than the batch axis whose size is not fixed."""
    return [i for i, d in enumerate(spec.shape) if is_dynamic(d) and i != batch_axis]


def static_shapes(specs: list[TensorSpec]) -> dict[str, tuple[int, ...]]:
    """Full shapes of the inputs that have no dynamic dim (a scalar has shape ())."""
    return {s.name: tuple(s.shape) for s in specs if not any(is_dynamic(d) for d in s.shape)}


def check_batch_axes(specs: list[TensorSpec], batch_axes: dict[str, int]) -> None:
    """--batch-axis must name a model input and one of its axes (when its rank is known)."""
    ranks = {s.name: len(s.shape) for s in specs}
    for name, axis in batch_axes.items():
        if name not in ranks:
            raise UsageError(
                f"--batch-axis names '{name}', but the model's inputs are {list(ranks)}."
            )
        if ranks[name] and axis >= ranks[name]:
            raise UsageError(
                f"--batch-axis {name}:{axis}, but input '{name}' has rank {ranks[name]}."
            )


def refuse_dynamic_dims(
    target: str, specs: list[TensorSpec], batch_axes: dict[str, int], data_shapes: dict
) -> None:
    """Raise for inputs with dynamic dims beyond the batch (on axis 0); name the --input-shape
    to pass.

    data_shapes (name -> per-sample shape from calibration/eval data) fills in the example.
    """
    moved = {name: axis for name, axis in batch_axes.items() if axis}
    if moved:
        name, axis = next(iter(moved.items()))
        raise UsageError(
            f"Target '{target}' takes the batch on axis 0 only, but --batch-axis {name}:{axis} "
            "puts it elsewhere. Use --target onnx, or re-export the model batch-first."
        )
    for spec in specs:
        axis = batch_axes.get(spec.name, 0)
        dynamic = dynamic_axes(spec, axis)
        if not dynamic:
            continue
        example = _example_shape(spec, axis, data_shapes.get(spec.name))
        raise UsageError(
            f"Target '{target}' needs fixed input dims except the batch, but input '{spec.name}' "
            f"has dynamic dims at axes {dynamic} ({format_shape(spec.shape)}). Fix them with "
            f"--input-shape {spec.name}:{example}, or use --target onnx, which takes them."
        )


def _example_shape(spec: TensorSpec, batch_axis: int, sample: tuple | None) -> str:
    """NAME's full shape for --input-shape: from the data when given, else 1 per dynamic dim."""
    dims = []
    per_sample = list(sample) if sample is not None else None
    for axis, dim in enumerate(spec.shape):
        if axis == batch_axis:
            dims.append(1 if is_dynamic(dim) else dim)
            continue
        from_data = per_sample.pop(0) if per_sample else None
        dims.append(
            dim if not is_dynamic(dim) else from_data or (dim if isinstance(dim, str) else "N")
        )
    return "x".join(map(str, dims))


def format_shape(shape: tuple) -> str:
    return "[" + ", ".join(str(d) if not is_dynamic(d) else str(d or "?") for d in shape) + "]"
