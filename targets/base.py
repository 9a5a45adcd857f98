"""Target and Runner protocols: what every target declares, lowers and runs."""

from __future__ import annotations

import abc
import copy
import dataclasses
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from foundation.errors import DataError, UsageError
from targets.options import TargetOptions, coerce_option

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
    # Whether artifacts may run on kernels that sum u8×s8 pairs in a saturating int16 (x86
    # without VNNI): then quantize makes every such pair's sum fit (targets.arithmetic).
    saturation_safe_weights: bool = False
    # The Int8Arithmetic (targets.arithmetic, by name) that passes and the tuner measure int8
    # in: the most demanding one of the artifact's CPU profile.
    arithmetic: str = "exact-int32"
    description: str = ""


@dataclass(frozen=True)
class ArtifactLayout:
    """How a target's artifact sits on disk: one file, or one folder (CoreML's .mlpackage),
    named by its suffix; further suffixes are other files its runner also opens."""

    suffix: str
    folder: bool = False
    also_opens: tuple[str, ...] = ()

    @property
    def suffixes(self) -> tuple[str, ...]:
        """Every suffix this target's runner opens, the one lower writes first."""
        return (self.suffix, *self.also_opens)

    def matches(self, path: Path) -> bool:
        """Whether path is shaped like this artifact (a folder for folder layouts)."""
        if path.suffix.lower() not in self.suffixes:
            return False
        return path.is_dir() if self.folder else not path.is_dir()


@dataclass(frozen=True)
class TargetCapabilities:
    """What a target supports; the CLI rejects impossible requests from this before any work."""

    precisions: tuple[str, ...]
    quant_scheme: QuantScheme
    runtime: str
    artifact: ArtifactLayout
    # The Python distribution that carries the runtime (its version goes in the manifest).
    runtime_package: str = ""
    # Precisions the target makes itself from the fp32 graph (no ONNX-level fp16/dynamic pass).
    lowers_from_fp32: tuple[str, ...] = ()
    # Whether inputs may keep dynamic dims beyond the batch (e.g. height and width); targets
    # that cannot take them refuse such inputs before any work, naming the --input-shape.
    dynamic_dims: bool = False
    # Whether the int8 artifact is the Q/DQ ONNX graph itself (run as is): then there is no
    # lowering to check against that graph and no separate per-layer artifact stage.
    runs_qdq_graph: bool = False
    # How the runtime sums int8 products when that does not depend on the CPU (e.g. "exact:
    # int32 accumulation (XNNPACK)"); "" when it does (the target then declares CPU profiles).
    int8_arithmetic: str = ""
    # Whether lowering starts from the torch module the ONNX graph was exported from (the
    # ONNX then only carries the int8 ranges and placement): such a target is bound to that
    # module with Target.bind_torch before lower, and an ONNX input model is refused.
    needs_torch_module: bool = False
    # Plain-words facts shown by `compress targets`.
    notes: tuple[str, ...] = ()

    @property
    def artifact_suffix(self) -> str:
        """The suffix of the file or folder lower writes."""
        return self.artifact.suffix


@dataclass(frozen=True)
class Artifact:
    """A lowered model (a file or a folder) and what is known about it.

    extra_files are further files shipped beside it; options are the target options it was
    lowered with (open_runner takes them back); seconds is how long lowering took.
    """

    path: Path
    target: str
    precision: str
    extra_files: tuple[Path, ...] = ()
    info: dict = field(default_factory=dict)
    options: object | None = None
    seconds: float = 0.0
    # What the lowering knows that the file does not record (e.g. where each ONNX tensor went),
    # for trace_layers; never written to a report.
    lowering: object | None = field(default=None, repr=False, compare=False)

    @property
    def files(self) -> tuple[Path, ...]:
        """Every file the artifact consists of: the file or the folder's files, then extras."""
        return (*_files_of(self.path), *self.extra_files)

    @property
    def size_bytes(self) -> int:
        """Bytes on disk of the model itself (every file of a folder artifact)."""
        return sum(p.stat().st_size for p in _files_of(self.path))


def _files_of(path: Path) -> tuple[Path, ...]:
    if path.is_dir():
        return tuple(sorted(p for p in path.rglob("*") if p.is_file()))
    return (path,)


@dataclass(frozen=True)
class TorchSource:
    """The torch module an ONNX graph was exported from, for targets that lower from torch:
    the module (eager, TorchScript or torch.export's), its input specs and real sample inputs."""

    module: object
    inputs: tuple[TensorSpec, ...]
    sample: dict[str, np.ndarray] | None = None


class Runner(abc.ABC):
    """Runs one artifact: named numpy inputs in, named numpy outputs out."""

    runtime: str = "unknown"
    proxy_for: str | None = None
    # The int8 arithmetic its outputs are computed in: "host" (the runtime's own kernels on
    # this machine) or the name of an emulated or exact one (targets/arithmetic).
    arithmetic: str = "host"
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
    """A deployment target: declares capabilities, lowers ONNX to an artifact, opens runners.

    The public methods check and time; subclasses implement _lower_impl and _open_runner_impl
    (and describe_io when the runner's specs do not tell the file's quantization or layout).
    """

    name: str
    capabilities: TargetCapabilities
    # A TargetOptions subclass of this target's own settings, or None when it takes none.
    options_type: type[TargetOptions] | None = None
    # The torch model lowering starts from (capabilities.needs_torch_module); see bind_torch.
    torch_source: TorchSource | None = None

    def bind_torch(self, source: TorchSource | None) -> Target:
        """This target bound to the torch model its ONNX graphs come from (a copy; targets that
        lower from ONNX alone are returned as they are)."""
        if not self.capabilities.needs_torch_module:
            return self
        bound = copy.copy(self)
        bound.torch_source = source
        return bound

    def parse_options(self, raw: dict) -> TargetOptions:
        """Build options_type from KEY=VALUE strings (or TOML values), rejecting unknown keys."""
        if self.options_type is None:
            if raw:
                raise UsageError(f"Target '{self.name}' takes no --target-option.")
            return TargetOptions()
        known = {f.name: f for f in dataclasses.fields(self.options_type)}
        values = {}
        for key, value in raw.items():
            key = key.replace("-", "_")
            if key not in known:
                raise UsageError(
                    f"Target '{self.name}' has no option '{key}'; it takes {sorted(known)}."
                )
            values[key] = coerce_option(value, known[key])
        return self.options_type(**values)

    def check_request(
        self, precision: str, options: TargetOptions | dict | None = None
    ) -> TargetOptions:
        """The options to use (raw -O values are parsed), after checking that the precision
        and the options fit this target; raises UsageError before any work otherwise."""
        if precision not in self.capabilities.precisions:
            raise UsageError(
                f"Target '{self.name}' supports precisions {list(self.capabilities.precisions)}, "
                f"not '{precision}'."
            )
        if not isinstance(options, TargetOptions):
            options = self.parse_options(options or {})
        options.validate(precision)
        return options

    def quant_scheme(self, options: TargetOptions | None) -> QuantScheme:
        """The int8 scheme to calibrate for; targets whose options change it override this."""
        return self.capabilities.quant_scheme

    def cpu_profile(self, options: TargetOptions | None) -> tuple[str, tuple[str, ...]]:
        """(profile, arithmetic names) an int8 artifact is verified for when the runtime's
        arithmetic depends on the CPU it runs on; ("", ()) when it does not."""
        return "", ()

    def availability(self) -> tuple[bool, str]:
        """Whether this target can lower and run here, and why not."""
        return True, "available"

    def lower(
        self,
        onnx_path: str | Path,
        precision: str,
        out_dir: str | Path,
        options: TargetOptions | None = None,
    ) -> Artifact:
        """Turn a (possibly Q/DQ) ONNX model into this target's artifact inside out_dir.

        Lowering happens in a hidden folder inside out_dir; the artifact's files move into
        out_dir only when it succeeds, so a failed lowering leaves nothing behind.
        """
        options = self.check_request(precision, options)
        if self.capabilities.needs_torch_module and self.torch_source is None:
            raise UsageError(
                f"Target '{self.name}' lowers from the torch model, not from ONNX: pass the "
                "model as .pt2 (torch.export), TorchScript or a state dict with --model-factory."
            )
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix=".lowering-", dir=out_dir) as tmp:
            made = self._lower_impl(Path(onnx_path), precision, Path(tmp), options)
            moved = _move_artifact(made, Path(tmp), out_dir)
        seconds = round(time.perf_counter() - started, 4)
        return dataclasses.replace(moved, options=options, seconds=seconds)

    def open_runner(
        self, path: str | Path, threads: int = 1, options: TargetOptions | None = None
    ) -> Runner:
        """Open a runner for an artifact this target produced, with the options it was made with."""
        path = Path(path)
        if not path.exists():
            raise UsageError(f"'{path}' does not exist; pass a {self.name} artifact.")
        if threads < 1:
            raise UsageError(f"threads must be at least 1, not {threads}.")
        options = self.parse_options({}) if options is None else options
        return self._open_runner_impl(path, threads, options)

    def describe_io(self, path: Path) -> dict:
        """{"inputs": [...], "outputs": [...]} of the artifact as the file holds it, each
        {"name", "shape", "dtype", "quantization"} (None when float); default: the runner's."""
        with self.open_runner(path) as runner:
            return {
                "inputs": [_io_entry(s) for s in runner.inputs],
                "outputs": [_io_entry(s) for s in runner.outputs],
            }

    @abc.abstractmethod
    def _lower_impl(
        self, onnx_path: Path, precision: str, work: Path, options: TargetOptions
    ) -> Artifact:
        """Write the artifact into the empty folder work; checks are done already."""

    @abc.abstractmethod
    def _open_runner_impl(self, path: Path, threads: int, options: TargetOptions) -> Runner:
        """Open an existing artifact; checks are done already."""

    def trace_layers(
        self, artifact: Artifact, feeds: dict[str, np.ndarray]
    ) -> dict[str, tuple[np.ndarray, str]] | None:
        """Intermediate tensors of the artifact on feeds, by ONNX tensor name, each with the op
        that makes it in the artifact (e.g. `op 2 CONV_2D+Relu`); None: this target cannot."""
        return None


def _io_entry(spec: TensorSpec) -> dict:
    return {"name": spec.name, "shape": list(spec.shape), "dtype": spec.dtype, "quantization": None}


def _move_artifact(artifact: Artifact, work: Path, out_dir: Path) -> Artifact:
    """The artifact with its files moved from work into out_dir (each replaced atomically)."""

    def move(path: Path) -> Path:
        if path.parent != work:
            raise ValueError(f"{path} was not written directly inside the lowering folder")
        dst = out_dir / path.name
        if dst.is_dir() and not dst.is_symlink():
            shutil.rmtree(dst)  # a folder artifact of an earlier lowering
        os.replace(path, dst)
        return dst

    extras = tuple(move(p) for p in artifact.extra_files)
    return dataclasses.replace(artifact, path=move(artifact.path), extra_files=extras)
