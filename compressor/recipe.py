"""Recipe: everything a run needs, from CLI flags or TOML, saved beside every output."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

import tomli_w

from compressor.judging.budget import Budget
from compressor.judging.task_rules import TASKS
from compressor.trust.strict_read import load_toml
from foundation.errors import UsageError

# The values of the recipe's choice fields (the CLI's choices and the recipe check read these).
CALIBRATION_METHODS = ("auto", "minmax", "entropy", "percentile")
TUNE_OBJECTIVES = ("accuracy", "latency")
CHOICES = {"calibration": CALIBRATION_METHODS, "tune_objective": TUNE_OBJECTIVES}
# Counts a recipe or sweep file sets: the least and the most each may be (the CLI checks the same).
# The most are far past any useful setting and keep a run finite (runs = 2**63-1 never ends).
COUNTS = {
    "threads": (1, 1024),
    "runs": (1, 100_000),
    "warmup": (0, 10_000),
    "calib_samples": (1, 1_000_000),
    "tune_trials": (1, 1_000),
}


def _f(default: object, help: str, **kw: object) -> dataclasses.Field:
    return field(default=default, metadata={"help": help}, **kw)


PRUNE_METHODS = ("l1", "l2", "taylor", "unstructured", "2:4")
OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class PruneConfig:
    """Pruning: structured channels (l1, l2, taylor) or sparsity (unstructured, 2:4)."""

    ratio: float = _f(0.0, "Fraction of channels (or weights) to remove, 0 < RATIO < 1; 0 = off.")
    method: str = _f("l1", "l1/l2/taylor channel importance, or unstructured / 2:4 sparsity.")
    global_ranking: bool = _f(
        False, "Rank channels across all layers, not a uniform per-layer ratio."
    )
    exclude: tuple[str, ...] = _f((), "Module names never pruned (the output layer never is).")
    round_to: int | None = _f(None, "Keep pruned channel counts at multiples of N (e.g. 8 or 16).")

    def __post_init__(self) -> None:
        object.__setattr__(self, "exclude", tuple(self.exclude))

    @property
    def enabled(self) -> bool:
        return self.ratio > 0


@dataclass(frozen=True)
class DistillConfig:
    """Knowledge distillation: the input model teaches the pruned student."""

    enabled: bool = _f(False, "Fine-tune the student on --train data against the teacher.")
    epochs: int = _f(10, "Training epochs (early stop keeps the best epoch).")
    lr: float = _f(1e-3, "Peak learning rate (cosine schedule to zero).")
    batch_size: int = _f(64, "Training batch size.")
    optimizer: str = _f("adam", "adam or sgd (momentum 0.9).")
    temperature: float = _f(4.0, "Softmax temperature for the KL term.")
    alpha: float = _f(0.7, "Weight of the KL term; 1 - alpha weighs cross-entropy on labels.")
    patience: int = _f(3, "Stop after this many epochs without a better validation metric.")
    features: tuple[str, ...] = _f((), "Module names whose outputs the student also matches.")

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", tuple(self.features))


@dataclass(frozen=True)
class Int8Config:
    """Static int8 steps tried on the fp32 graph, each kept only if held-back SQNR rises."""

    equalize: bool = _f(
        True,
        "Cross-layer equalization of Conv pairs joined by nothing, Relu/LeakyRelu/PRelu or a "
        "ReLU6/Clip (within the clip); kept only if held-back int8 SQNR rises.",
    )
    smooth: bool = _f(
        True,
        "SmoothQuant: move MatMul/Gemm input outlier channels into the weights; kept only if "
        "held-back int8 SQNR rises.",
    )
    smooth_alpha: float = _f(0.5, "SmoothQuant strength a in s = max|X|^a / max|W|^(1-a).")
    smooth_mul: bool = _f(
        False,
        "SmoothQuant where 1/s cannot be folded into the producer: insert a float Mul (right "
        "in onnxruntime; the TFLite lowering mis-reads it, so off by default).",
    )
    bias_correction: bool = _f(
        True, "Correct int8 Conv/Gemm biases for weight rounding; kept only if SQNR rises."
    )
    learned_rounding: bool = _f(
        False,
        "AdaRound: learn each int8 weight's rounding (up/down) to reconstruct every layer's "
        "fp32 output from calibration data; kept only if held-back SQNR rises (costs minutes).",
    )
    rounding_time: float = _f(
        120.0, "Seconds learned rounding may spend in all (iterations per layer sized to fit)."
    )
    weight_bits: int = _f(
        8,
        "Weight bits: 8, or 4 (W4A8: 4-bit values stored in int8, run on int8 kernels by every "
        "target); best with --learned-rounding.",
    )

    def __post_init__(self) -> None:
        if not 0.0 <= self.smooth_alpha <= 1.0:
            raise UsageError(f"smooth_alpha is {self.smooth_alpha}; give a value in [0, 1].")
        if self.weight_bits not in (8, 4):
            raise UsageError(f"weight_bits is {self.weight_bits}; give 8 or 4.")
        if not self.rounding_time > 0:
            raise UsageError(f"rounding_time is {self.rounding_time}; give seconds above 0.")


@dataclass(frozen=True)
class QatConfig:
    """Quantization-aware fine-tuning through the target's own Q/DQ (docs/int8.md)."""

    enabled: bool = _f(
        False,
        "int8: fine-tune with fake-quant mirroring the target's Q/DQ graph, distilled from the "
        "fp32 model (no labels needed; --train labels are used when present).",
    )
    epochs: int = _f(5, "QAT epochs (the epoch with the best held-back SQNR is kept).")
    lr: float = _f(1e-5, "QAT peak learning rate (Adam, cosine schedule to zero).")
    batch_size: int = _f(32, "QAT batch size.")
    time: float = _f(900.0, "QAT: start no new epoch after this many seconds.")
    learn_ranges: bool = _f(True, "QAT: learn the activation step sizes (LSQ) too.")


NESTED = {
    "budget": Budget,
    "prune": PruneConfig,
    "distill": DistillConfig,
    "int8": Int8Config,
    "qat": QatConfig,
}


@dataclass(frozen=True)
class Recipe:
    """One compression run: model, passes, target, precision, data and budgets."""

    model: str = _f("", "Model file: .pt2 (torch.export), TorchScript .pt, .onnx, state dict.")
    target: str = _f("onnx", "Deployment target (see `compress targets`).")
    precision: str = _f("fp32", "fp32, fp16, int8 (static, calibrated) or dynamic (int8 weights).")
    calib: str | None = _f(None, "Calibration data: .npz, image folder or pkg.module:function.")
    eval: str | None = _f(None, "Evaluation data (same formats); labels give top-1 accuracy.")
    calib_samples: int | None = _f(None, "Use at most this many calibration samples (all: 512).")
    calibration: str = _f(
        "auto",
        "Range method for int8: minmax, entropy, percentile, or auto (each tried on held-back "
        "calibration samples; the best output SQNR is kept).",
    )
    threads: int = _f(1, "Intra-op threads for latency measurement and evaluation.")
    warmup: int = _f(10, "Warm-up runs before timing.")
    runs: int = _f(100, "Timed runs for latency percentiles.")
    model_factory: str | None = _f(
        None, "pkg.module:function building the nn.Module for a state dict."
    )
    trust_pickle: bool = _f(
        False,
        "Allow unpickling (runs code from the model file). Command line only: recipes and sweep "
        "files cannot set it, and recipe.toml never records it.",
    )
    input_shapes: dict[str, list[int]] = _f(
        None, "Per-input shapes with batch, for models that do not record them."
    )
    preprocess: str | None = _f(
        None,
        "Image-folder preprocessing: mean=..,std=..,resize=..,crop=..,layout=NCHW|NHWC,"
        "channels=RGB|BGR,scale=1|255.",
    )
    batch_axes: dict[str, int] = _f(
        None, "Per-input batch axis in data and model when it is not 0 (e.g. state:1)."
    )
    target_options: dict[str, object] = _f(
        None, "Target-specific settings (see `compress targets --options`)."
    )
    output: str = _f("out", "Output directory.")
    task: dict[str, str] = _f(
        None, "Task rule per output ({'*' or output name: classify|embed|detect|segment|...})."
    )
    metric: str | None = _f(
        None, "pkg.module:function(outputs, data) -> float, higher is better, scored on --eval."
    )
    budget: Budget = _f(Budget(), "Limits the result must meet.")
    train: str | None = _f(None, "Training data for distillation (same formats as --calib).")
    seed: int = _f(0, "Random seed for pruning and distillation (same seed, same result).")
    prune: PruneConfig = _f(PruneConfig(), "Pruning pass settings.")
    distill: DistillConfig = _f(DistillConfig(), "Distillation pass settings.")
    int8: Int8Config = _f(Int8Config(), "Static int8 steps (equalization, smoothing, bias).")
    qat: QatConfig = _f(QatConfig(), "Quantization-aware fine-tuning settings.")
    auto: bool = _f(False, "int8: search which blocks to keep float until the budgets hold.")
    tune_trials: int = _f(12, "--auto: at most this many quantize-and-evaluate trials.")
    tune_time: float = _f(600.0, "--auto: stop starting new trials after this many seconds.")
    int8_plan: tuple[str, ...] = _f(
        (), "int8 blocks (tensors and nodes) kept float; --auto writes it, --recipe replays it."
    )
    int8_fp16: tuple[str, ...] = _f(
        (), "Of int8_plan, the nodes whose float weights are stored fp16 (--auto writes it)."
    )
    tune_objective: str = _f(
        "accuracy",
        "--auto: accuracy (fewest float blocks) or latency (fastest passing plan; blocks "
        "measured slower in int8 than float stay float).",
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "int8_plan", tuple(self.int8_plan))
        object.__setattr__(self, "int8_fp16", tuple(self.int8_fp16))
        if self.input_shapes is None:
            object.__setattr__(self, "input_shapes", {})
        if self.target_options is None:
            object.__setattr__(self, "target_options", {})
        if self.batch_axes is None:
            object.__setattr__(self, "batch_axes", {})
        if self.task is None:
            object.__setattr__(self, "task", {})

    def to_toml(self) -> str:
        """TOML text with None values left out (TOML has no null)."""
        data = {
            k: v for k, v in dataclasses.asdict(self).items() if v is not None and k not in NESTED
        }
        data.pop("trust_pickle")  # trust is given on the command line only, never replayed
        for key in ("input_shapes", "target_options", "batch_axes", "task"):
            if not data.get(key):
                data.pop(key, None)
        for key in NESTED:
            section = dataclasses.asdict(getattr(self, key))
            data[key] = {k: list(v) if isinstance(v, tuple) else v for k, v in section.items()}
            data[key] = {k: v for k, v in data[key].items() if v is not None}
        return tomli_w.dumps(data)

    def with_absolute_paths(self, base: Path) -> Recipe:
        """Resolve model and data paths (not entry points) against base, for reproducibility."""

        def resolve(value: str | None) -> str | None:
            if not value or (":" in value and not (base / value).exists()):
                return value
            try:
                return str((base / value).resolve())
            except (RuntimeError, OSError):  # a symlink loop: loading names it properly
                return os.path.abspath(base / value)

        return dataclasses.replace(
            self,
            model=resolve(self.model) or "",
            calib=resolve(self.calib),
            eval=resolve(self.eval),
            train=resolve(self.train),
            # Not resolved: a link as -o is checked (and refused when broken), never followed.
            output=os.path.abspath(base / (self.output or "out")),
        )


def load_recipe(path: Path) -> Recipe:
    """Read a recipe TOML written by a previous run (or by hand)."""
    try:
        data = load_toml(path, f"Recipe '{path}'")
    except FileNotFoundError:
        raise UsageError(f"Recipe '{path}' does not exist.") from None
    except (IsADirectoryError, UnicodeDecodeError, PermissionError) as exc:
        raise UsageError(f"Recipe '{path}' could not be read as a TOML file: {exc}.") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"Recipe '{path}' is not valid TOML: {exc}") from exc
    return recipe_from_dict(data, f"Recipe '{path}'")


def recipe_from_dict(data: dict, where: str) -> Recipe:
    """A Recipe from TOML-shaped data (nested [budget]/[prune]/[distill] tables), type-checked;
    `where` starts every error message (e.g. "Recipe 'r.toml'")."""
    data = dict(data)
    if data.get("trust_pickle") is True:
        raise UsageError(
            f"{where} sets trust_pickle = true, but a file cannot grant itself trust: unpickling "
            "runs code from the model file. Remove the key and pass --trust-pickle on the command "
            "line (compress or compress sweep) if you trust the model."
        )
    if "allow_code" in data:
        raise UsageError(
            f"{where} sets allow_code, but a file cannot grant itself the right to run code. "
            "Remove the key and pass --allow-code on the command line if you trust the file."
        )
    known = {f.name for f in fields(Recipe)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UsageError(f"{where} has unknown keys {unknown}; known keys: {sorted(known)}.")
    sections = {}
    for key, cls in NESTED.items():
        section = data.pop(key, {})
        if not isinstance(section, dict):
            raise UsageError(f"{where}: '{key}' must be a [{key}] table.")
        unknown = sorted(set(section) - {f.name for f in fields(cls)})
        if unknown:
            raise UsageError(f"{where} [{key}] has unknown keys {unknown}.")
        _check_types(cls, section, f"{where} [{key}]")
        sections[key] = cls(**section)
    _check_types(Recipe, data, where)
    _check_tables(data, where)
    return Recipe(**data, **sections)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_tables(data: dict, where: str) -> None:
    """The values inside the per-input tables, which a plain type check lets through."""
    for name, shape in (data.get("input_shapes") or {}).items():
        if not isinstance(shape, list) or not shape or not all(_is_int(d) for d in shape):
            raise UsageError(
                f"{where}: input_shapes.{name} is {shape!r}; give a list of dims with the batch "
                f"first, e.g. {name} = [1, 3, 224, 224]."
            )
    for name, axis in (data.get("batch_axes") or {}).items():
        if not _is_int(axis) or axis < 0:
            raise UsageError(f"{where}: batch_axes.{name} is {axis!r}; give an axis index >= 0.")
    for name, kind in (data.get("task") or {}).items():
        if kind not in TASKS:
            raise UsageError(f"{where}: task.{name} is {kind!r}; choose one of {', '.join(TASKS)}.")
    check_choices(data, where)  # a file's choices and counts: refused before any job runs
    check_counts(data, where)


def check_choices(values: dict, where: str = "") -> None:
    """Choice fields within CHOICES; errors name the file's key, or the flag without `where`."""
    for key, choices in CHOICES.items():
        if key in values and values[key] not in choices:
            given = f"{where}: {key} is" if where else f"--{key.replace('_', '-')}"
            raise UsageError(f"{given} {values[key]!r}; choose one of {list(choices)}.")


def check_counts(values: dict, where: str = "") -> None:
    """Counts within their COUNTS range (None: not given). Errors name the file's key when
    `where` names a file, else the flag (--calib-samples 0)."""
    for key, (least, most) in COUNTS.items():
        value = values.get(key)
        if _is_int(value) and not least <= value <= most:
            given = f"{where}: {key} is {value}" if where else f"--{key.replace('_', '-')} {value}"
            bound = f"at least {least}" if value < least else f"at most {most:,}"
            raise UsageError(f"{given}; give {bound}.")


# Fields that may name Python code to import and run (pkg.module:function; for data, a value
# that is not an existing path). Given as flags they run by design; set by a recipe, sweep or
# stored recipe.toml file, only with --allow-code on the command line (as --trust-pickle).
CODE_FIELDS = ("model_factory", "metric", "calib", "eval", "train")
DATA_FIELDS = ("calib", "eval", "train")


def code_fields(recipe: Recipe) -> dict[str, str]:
    """The recipe's fields that import code, with their values (as the loaders decide)."""
    found = {}
    for name in CODE_FIELDS:
        value = getattr(recipe, name)
        if value and (name not in DATA_FIELDS or (":" in value and not Path(value).exists())):
            found[name] = value
    return found


def check_file_code(recipe: Recipe, where: str, allowed: bool, names: tuple = CODE_FIELDS) -> None:
    """Refuse a file's entry points (of `names`) unless --allow-code was given: importing the
    module runs its code, and a file cannot grant itself that."""
    found = {k: v for k, v in code_fields(recipe).items() if k in names}
    if found and not allowed:
        name, value = next(iter(found.items()))
        raise UsageError(
            f"{where} sets {name} = {value!r}, which imports and runs Python code; a file cannot "
            "grant itself that. Pass --allow-code on the command line if you trust the file and "
            f"its code, or give it as a flag (--{name.replace('_', '-')}) instead."
        )


TOML_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "None": (type(None),),
    "dict": (dict,),
    "list": (list,),
    "tuple": (list, tuple),
    "object": (object,),
}


def _check_types(cls: type, values: dict, where: str) -> None:
    """Reject values whose TOML type does not fit the field's annotation (e.g. threads = "2")."""
    annotations = {f.name: str(f.type) for f in fields(cls)}
    for key, value in values.items():
        names = [part.strip().split("[")[0] for part in annotations[key].split("|")]
        allowed = tuple(t for name in names for t in TOML_TYPES.get(name, (object,)))
        bad_bool = isinstance(value, bool) and bool not in allowed
        # tuple[str, ...]: every item text too (int8_plan = [1, 2] is not a list of node names)
        bad_items = "tuple[str" in annotations[key] and isinstance(value, list | tuple)
        bad_items = bad_items and not all(isinstance(item, str) for item in value)
        if bad_bool or bad_items or not isinstance(value, allowed):
            raise UsageError(
                f"{where}: '{key}' is {value!r} ({type(value).__name__}) but must be "
                f"{annotations[key]}."
            )


def field_help(name: str, cls: type = Recipe) -> str:
    """The one-line description of a config field, used for --help."""
    return next(f.metadata.get("help", "") for f in fields(cls) if f.name == name)
