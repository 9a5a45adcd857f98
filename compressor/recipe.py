"""Recipe: everything a run needs, from CLI flags or TOML, saved beside every output."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

import tomli_w

from compressor.budget import Budget
from compressor.errors import UsageError


def _f(default: object, help: str, **kw: object) -> dataclasses.Field:
    return field(default=default, metadata={"help": help}, **kw)


@dataclass(frozen=True)
class Recipe:
    """One compression run: model, passes, target, precision, data and budgets."""

    model: str = _f("", "Model file: .pt2 (torch.export), TorchScript .pt, .onnx, state dict.")
    target: str = _f("onnx", "Deployment target (see `compress targets`).")
    precision: str = _f("fp32", "fp32, fp16, int8 (static, calibrated) or dynamic (int8 weights).")
    calib: str | None = _f(None, "Calibration data: .npz, image folder or pkg.module:function.")
    eval: str | None = _f(None, "Evaluation data (same formats); labels give top-1 accuracy.")
    calib_samples: int | None = _f(None, "Use at most this many calibration samples (all: 512).")
    calibration: str = _f("minmax", "Range method for int8: minmax, entropy or percentile.")
    threads: int = _f(1, "Intra-op threads for latency measurement and evaluation.")
    warmup: int = _f(10, "Warm-up runs before timing.")
    runs: int = _f(100, "Timed runs for latency percentiles.")
    model_factory: str | None = _f(
        None, "pkg.module:function building the nn.Module for a state dict."
    )
    trust_pickle: bool = _f(False, "Allow unpickling a whole-module .pt (runs code from the file).")
    input_shapes: dict[str, list[int]] = _f(
        None, "Per-input shapes with batch, for models that do not record them."
    )
    target_options: dict[str, object] = _f(
        None, "Target-specific settings (see `compress targets --options`)."
    )
    output: str = _f("out", "Output directory.")
    budget: Budget = _f(Budget(), "Limits the result must meet.")

    def __post_init__(self) -> None:
        if self.input_shapes is None:
            object.__setattr__(self, "input_shapes", {})
        if self.target_options is None:
            object.__setattr__(self, "target_options", {})

    def to_toml(self) -> str:
        """TOML text with None values left out (TOML has no null)."""
        data = {
            k: v for k, v in dataclasses.asdict(self).items() if v is not None and k != "budget"
        }
        budget = {k: v for k, v in dataclasses.asdict(self.budget).items() if v is not None}
        for key in ("input_shapes", "target_options"):
            if not data.get(key):
                data.pop(key, None)
        data["budget"] = budget
        return tomli_w.dumps(data)

    def with_absolute_paths(self, base: Path) -> Recipe:
        """Resolve model and data paths (not entry points) against base, for reproducibility."""

        def resolve(value: str | None) -> str | None:
            if value is None or (":" in value and not (base / value).exists()):
                return value
            return str((base / value).resolve())

        return dataclasses.replace(
            self,
            model=resolve(self.model) or "",
            calib=resolve(self.calib),
            eval=resolve(self.eval),
            output=resolve(self.output) or "out",
        )


def load_recipe(path: Path) -> Recipe:
    """Read a recipe TOML written by a previous run (or by hand)."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UsageError(f"Recipe '{path}' does not exist.") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"Recipe '{path}' is not valid TOML: {exc}") from exc
    known = {f.name for f in fields(Recipe)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UsageError(
            f"Recipe '{path}' has unknown keys {unknown}; known keys: {sorted(known)}."
        )
    budget_data = data.pop("budget", {})
    budget_known = {f.name for f in fields(Budget)}
    if set(budget_data) - budget_known:
        raise UsageError(
            f"Recipe '{path}' [budget] has unknown keys {sorted(set(budget_data) - budget_known)}."
        )
    return Recipe(**data, budget=Budget(**budget_data))


def field_help(name: str, cls: type = Recipe) -> str:
    """The one-line description of a config field, used for --help."""
    return next(f.metadata.get("help", "") for f in fields(cls) if f.name == name)
