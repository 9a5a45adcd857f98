"""Target and Runner protocols: what every target declares, lowers and runs."""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from compressor.errors import DataError, UsageError

PRECISIONS = ("fp32", "fp16", "int8", "dynamic")


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape (None or a string for dynamic dims) and numpy dtype name of one model I/O."""

    name: str
    shape: tuple[int | str | None, ...]
    dtype: str = "float32"

    @property
    def fixed_batch(self) -> int | None:
        """The leading dimension when it is a fixed number, else None."""
        if self.shape and isinstance(self.shape[0], int) and self.shape[0] > 0:
            return self.shape[0]
        return None

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclass(frozen=True)
class QuantScheme:
    """How a target wants int8 Q/DQ: the one place the calibration step reads it from."""

    activation_type: str = "uint8"
    weight_type: str = "int8"
    per_channel: bool = True
    activation_symmetric: bool = False
    weight_symmetric: bool = True
    quantize_bias: bool = True
    # ONNX op types whose inputs get Q/DQ; empty means onnxruntime's default set.
    op_types: tuple[str, ...] = ()
    # False: Q/DQ only on the inputs of op_types, never on their outputs (explicit quantization).
    quantize_outputs: bool = True
    # Of op_types, residual joins (Add): skipped where an input is a constant (a bias Add) and
    # quantized on the skip input only, so the weighted op feeding the other one can fuse it.
    residual_ops: tuple[str, ...] = ()
    # Ops with no int8 kernel on this target: left out of quantization (a float island).
    float_ops: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class TargetCapabilities:
    """What a target supports; the CLI rejects impossible requests from this before any work."""

    precisions: tuple[str, ...]
    quant_scheme: QuantScheme
    runtime: str
    artifact_suffix: str
    # Precisions the target makes itself from the fp32 graph (no ONNX-level fp16/dynamic pass).
    lowers_from_fp32: tuple[str, ...] = ()
    # Whether inputs may keep dynamic dims beyond the batch (e.g. height and width); targets
    # that cannot take them refuse such inputs before any work, naming the --input-shape.
    dynamic_dims: bool = False
    # Plain-words facts shown by `compress targets`.
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Artifact:
    """A lowered model file and what is known about it."""

    path: Path
    target: str
    precision: str
    extra_files: tuple[Path, ...] = ()
    info: dict = field(default_factory=dict)


class Runner(abc.ABC):
    """Runs one artifact: named numpy inputs in, named numpy outputs out."""

    runtime: str = "unknown"
    proxy_for: str | None = None
    # Set by each runner when it opens its artifact.
    _inputs: list[TensorSpec]
    _outputs: list[TensorSpec]

    @property
    def inputs(self) -> list[TensorSpec]:
        """The model's input specs in call order."""
        return self._inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        """The model's output specs in order."""
        return self._outputs

    @property
    def fixed_batch(self) -> int | None:
        """The batch size the artifact is fixed to, or None when any batch works."""
        batches = {spec.fixed_batch for spec in self.inputs}
        return batches.pop() if len(batches) == 1 else None

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Check the feeds against the input specs, then run the artifact."""
        expected = {spec.name: spec for spec in self.inputs}
        missing = sorted(set(expected) - set(feeds))
        if missing:
            raise DataError(
                f"Missing model input(s) {missing}; the model takes {sorted(expected)}."
            )
        checked = {}
        for name, spec in expected.items():
            array = np.asarray(feeds[name])
            _check_shape(name, array.shape, spec.shape)
            checked[name] = np.ascontiguousarray(array.astype(spec.dtype, copy=False))
        return self._run_impl(checked)

    @abc.abstractmethod
    def _run_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run already validated feeds."""

    def close(self) -> None:
        """Release runtime resources."""

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_shape(name: str, got: tuple[int, ...], want: tuple) -> None:
    if len(got) != len(want):
        raise DataError(
            f"Input '{name}' has shape {list(got)} but the model expects rank {len(want)} "
            f"({_fmt_shape(want)}). Check the data's layout and that arrays are stacked "
            "along a leading sample axis."
        )
    for g, w in zip(got, want, strict=True):
        if isinstance(w, int) and w > 0 and g != w:
            raise DataError(
                f"Input '{name}' has shape {list(got)} but the model expects {_fmt_shape(want)}."
            )


def _fmt_shape(shape: tuple) -> str:
    return "[" + ", ".join(str(d) if isinstance(d, int) else "?" for d in shape) + "]"


class Target(abc.ABC):
    """A deployment target: declares capabilities, lowers ONNX to an artifact, opens runners."""

    name: str
    capabilities: TargetCapabilities
    # A frozen dataclass of this target's own settings (fields with metadata["help"]), or None.
    options_type: type | None = None

    def parse_options(self, raw: dict) -> object | None:
        """Build options_type from KEY=VALUE strings (or TOML values), rejecting unknown keys."""
        if self.options_type is None:
            if raw:
                raise UsageError(f"Target '{self.name}' takes no --target-option.")
            return None
        known = {f.name: f for f in dataclasses.fields(self.options_type)}
        values = {}
        for key, value in raw.items():
            key = key.replace("-", "_")
            if key not in known:
                raise UsageError(
                    f"Target '{self.name}' has no option '{key}'; it takes {sorted(known)}."
                )
            values[key] = _coerce(value, known[key])
        return self.options_type(**values)

    def quant_scheme(self, options: object | None) -> QuantScheme:
        """The int8 scheme to calibrate for; targets whose options change it override this."""
        return self.capabilities.quant_scheme

    def availability(self) -> tuple[bool, str]:
        """Whether this target can lower and run here, and why not."""
        return True, "available"

    @abc.abstractmethod
    def lower(self, onnx_path: Path, precision: str, out_dir: Path, options: object) -> Artifact:
        """Turn a (possibly Q/DQ) ONNX model into this target's artifact inside out_dir."""

    @abc.abstractmethod
    def open_runner(self, artifact: Path, threads: int = 1) -> Runner:
        """Open a runner for an artifact this target produced."""

    def trace_layers(
        self, artifact: Artifact, feeds: dict[str, np.ndarray]
    ) -> dict[str, tuple[np.ndarray, str]] | None:
        """Intermediate tensors of the artifact on feeds, by ONNX tensor name, each with the op
        that makes it in the artifact (e.g. `op 2 CONV_2D+Relu`); None: this target cannot."""
        return None


BOOL_WORDS = {
    "1": True,
    "true": True,
    "yes": True,
    "on": True,
    "0": False,
    "false": False,
    "no": False,
    "off": False,
}


def _coerce(value: object, fld: dataclasses.Field) -> object:
    """Turn a CLI string into the field's declared type (int, float, bool, str, tuple[int])."""
    if not isinstance(value, str):
        return value
    kind = str(fld.type)
    try:
        if "bool" in kind:
            return BOOL_WORDS[value.strip().lower()]
        if "tuple" in kind:
            return tuple(int(v) for v in value.split(","))
        if "int" in kind:
            return int(value)
        if "float" in kind:
            return float(value)
    except (ValueError, KeyError):
        raise UsageError(f"Target option '{fld.name}': '{value}' is not a valid {kind}.") from None
    return value
