"""Click options generated from the frozen config dataclasses.

A flag's name, type, default and help come from its config field (`Recipe`, `Budget`,
`PruneConfig`, `DistillConfig`, `Regression`, `BenchSettings`); `FLAG_SPECS` holds only what a
field cannot say (a short name, choices, a metavar, how repeated values become the field's
value). So a new config field is a new flag without writing a `click.option`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import click

from compressor.cli.common import parse_batch_axes, parse_input_shapes, parse_key_values
from compressor.judging.budget import Budget
from compressor.judging.regression import Regression
from compressor.judging.task_rules import parse_task_option
from compressor.recipe import (
    CALIBRATION_METHODS,
    NESTED,
    OPTIMIZERS,
    PRUNE_METHODS,
    TUNE_OBJECTIVES,
    DistillConfig,
    Int8Config,
    PruneConfig,
    QatConfig,
    Recipe,
)

TASK_HELP = (
    "Task rule for every output, or OUTPUT=KIND for one (repeatable): classify, embed, detect, "
    "segment, sequence or regression [default: inferred from shape, values and labels]."
)
SECTIONS = {cls: name for name, cls in NESTED.items()} | {Regression: "regression"}
PREFIXES = {
    PruneConfig: "prune-",
    QatConfig: "qat-",
}  # --prune-method; other configs' flags are bare (--epochs)


@dataclass(frozen=True)
class Flag:
    """How one config field appears on the command line; what is left unset comes from the field."""

    config: type
    field: str
    name: str = ""  # the long flag [default: --PREFIX-FIELD-NAME]
    short: str = ""
    metavar: str | None = None
    choices: tuple[str, ...] = ()
    help: str = ""  # replaces the field's help
    parse: Callable[[tuple], object] | None = None  # repeated values -> the field's value
    show_default: bool = True
    required: bool = False
    negatable: bool = False  # --x/--no-x even when the field defaults to False

    @property
    def param(self) -> str:
        """The click parameter name: the field name, prefixed by its section when nested."""
        section = SECTIONS.get(self.config)
        return f"{section}__{self.field}" if section else self.field

    @property
    def long(self) -> str:
        return self.name or "--" + PREFIXES.get(self.config, "") + self.field.replace("_", "-")


FLAG_SPECS: dict[tuple[type, str], dict] = {
    (Recipe, "target"): {"short": "-t"},
    (Recipe, "calibration"): {"choices": CALIBRATION_METHODS},
    (Recipe, "tune_objective"): {"choices": TUNE_OBJECTIVES},
    (Int8Config, "smooth_mul"): {"negatable": True},
    (Int8Config, "learned_rounding"): {"negatable": True},
    (Recipe, "input_shapes"): {
        "name": "--input-shape",
        "help": "NAME:1x3x224x224: shapes for models without them, or fixing dynamic dims.",
        "parse": parse_input_shapes,
    },
    (Recipe, "batch_axes"): {
        "name": "--batch-axis",
        "metavar": "NAME:AXIS",
        "parse": parse_batch_axes,
    },
    (Recipe, "target_options"): {
        "name": "--target-option",
        "short": "-O",
        "metavar": "KEY=VALUE",
        "parse": parse_key_values,
    },
    (Recipe, "task"): {"metavar": "[OUTPUT=]KIND", "help": TASK_HELP, "parse": parse_task_option},
    (Recipe, "metric"): {"metavar": "PKG.MODULE:FUNCTION"},
    (Recipe, "output"): {"short": "-o"},
    (PruneConfig, "ratio"): {"name": "--prune", "metavar": "RATIO", "show_default": False},
    (PruneConfig, "method"): {"choices": PRUNE_METHODS},
    (PruneConfig, "global_ranking"): {"name": "--prune-global"},
    (PruneConfig, "exclude"): {"metavar": "NAME"},
    (DistillConfig, "enabled"): {"name": "--distill"},
    (DistillConfig, "optimizer"): {"choices": OPTIMIZERS},
    (DistillConfig, "features"): {"name": "--distill-features", "metavar": "NAME"},
    (QatConfig, "enabled"): {"name": "--qat"},
}


def flag(config: type, field: str, **changes: object) -> Flag:
    """The flag of one config field, with a command's own changes (e.g. another help)."""
    return Flag(config, field, **{**FLAG_SPECS.get((config, field), {}), **changes})


def flags_of(config: type, skip: Iterable[str] = ()) -> list[Flag]:
    """A flag for every field of a config, nested configs expanded into their own fields."""
    found = []
    for f in dataclasses.fields(config):
        if f.name in skip:
            continue
        nested = NESTED.get(f.name) if config is Recipe else None
        found += flags_of(nested) if nested else [flag(config, f.name)]
    return found


def config_field(item: Flag) -> dataclasses.Field:
    return next(f for f in dataclasses.fields(item.config) if f.name == item.field)


def _kind(f: dataclasses.Field) -> str:
    """bool, many (a repeatable flag: tuple and dict fields), int, float or str."""
    base = [p.strip().split("[")[0] for p in str(f.type).split("|") if p.strip() != "None"][0]
    return {"tuple": "many", "dict": "many"}.get(base, base)


def _shown(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _option(item: Flag, field_default: bool) -> Callable:
    """One click.option; with field_default False the default is None (so 'given' is seen) and
    the field's default is stated in the help instead."""
    f = config_field(item)
    kind = _kind(f)
    long = item.long
    if kind == "bool" and (f.default is True or item.negatable):
        long = f"{long}/--no-{long[2:]}"
    kw = {"help": item.help or f.metadata.get("help", ""), "required": item.required}
    kw |= {"metavar": item.metavar} | KIND_KWARGS.get(kind, _value_kwargs)(item, f, field_default)
    return click.option(*([item.short] if item.short else []), long, item.param, **kw)


def _bool_kwargs(item: Flag, f: dataclasses.Field, field_default: bool) -> dict:
    kw = {"is_flag": True, "default": f.default if field_default else None}
    if field_default or not (f.default is True or item.negatable):
        return kw
    on_off = " [default: on]" if f.default else " [default: off]"
    return kw | {"help": (item.help or f.metadata.get("help", "")) + on_off}


def _many_kwargs(item: Flag, f: dataclasses.Field, field_default: bool) -> dict:
    return {"multiple": True}


def _value_kwargs(item: Flag, f: dataclasses.Field, field_default: bool) -> dict:
    kind = (
        click.Choice(item.choices) if item.choices else {"int": int, "float": float}.get(_kind(f))
    )
    kw = {"type": kind, "default": f.default if field_default else None}
    if (
        item.required
    ):  # click 8.3+ takes an explicit default=None as given: a required flag has none
        del kw["default"]
    shown = item.show_default and f.default is not None
    if field_default:
        return kw | {"show_default": shown}
    suffix = f" [default: {_shown(f.default)}]" if shown else ""
    return kw | {"help": (item.help or f.metadata.get("help", "")) + suffix}


KIND_KWARGS = {"bool": _bool_kwargs, "many": _many_kwargs}


def options(items: Iterable[Flag | Callable], field_default: bool = False) -> Callable:
    """Decorate a command with these flags (and hand-written click options), in this order."""
    decorators = [i if callable(i) else _option(i, field_default) for i in items]

    def apply(func: Callable) -> Callable:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


def parsed(item: Flag, value: object) -> object:
    """A flag's click value as its field's value (repeated values parsed, tuples kept)."""
    return item.parse(value) if item.parse else value


def given(items: Iterable[Flag], values: dict) -> dict[type, dict[str, object]]:
    """The flags that were given (None, () and "" mean not given), parsed, by config class."""
    found: dict[type, dict[str, object]] = {}
    for item in items:
        value = values.pop(item.param)
        if value is None or value == () or value == "":
            continue
        found.setdefault(item.config, {})[item.field] = parsed(item, value)
    return found


def fields_of(config: type, items: Iterable[Flag], values: dict) -> dict[str, object]:
    """The parsed values of a config's flags, by field name (taken out of `values`)."""
    mine = [i for i in items if isinstance(i, Flag) and i.config is config]
    return {i.field: parsed(i, values.pop(i.param)) for i in mine}


def build(config: type, items: Iterable[Flag], values: dict) -> object:
    """A config from its flags' values (every flag has one: field defaults were used)."""
    return config(**fields_of(config, items, values))


def ordered(items: dict[str, Flag | Callable], order: Iterable[str]) -> list[Flag | Callable]:
    """Options (by param name) in the order of `order`; those not named there come last."""
    rank = {name: i for i, name in enumerate(order)}
    return [items[name] for name in sorted(items, key=lambda name: rank.get(name, len(rank)))]


BUDGET_FLAGS = flags_of(Budget)
REGRESSION_FLAGS = flags_of(Regression)
