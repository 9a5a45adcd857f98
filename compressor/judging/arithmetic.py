"""Int8 measured in every arithmetic an artifact may meet: the exact Q/DQ reference, this host's
kernels and, where the target's CPU profile allows an arithmetic this host does not compute
in, an emulation of it. The verdict is taken on the worst of the profile's arithmetics, so a
PASSED int8 artifact holds on every CPU of its profile, not only on the one that measured it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from calibration.dataset import Dataset
from compressor.judging.assess import Measured, run_eval
from compressor.judging.evaluate import EvalResult
from compressor.judging.output_records import compare_outputs, worst_summary
from targets.base import Target
from targets.registry import (
    EXACT_ARITHMETIC,
    host_int8,
    reference_runner,
    unemulated_int8_nodes,
)

EXACT_HOW, HOST_HOW = "exact Q/DQ", "this host's kernels"


@dataclass(frozen=True)
class ArithmeticFigures:
    """One arithmetic's outputs against the baseline: how they were computed and the worst
    output's summary (cosine, SQNR, max error, top-1 agreement)."""

    arithmetic: str  # an Int8Arithmetic name, or "host" for this CPU's kernels
    how: str  # "exact Q/DQ reference", "this host's kernels", "emulated"
    eval: EvalResult | None

    def summary(self, base: EvalResult | None, tasks: dict[str, str]) -> dict:
        """The worst output's figures against the baseline ({} without eval data)."""
        return worst_summary(compare_outputs(base, self.eval, tasks)) or {}


@dataclass(frozen=True)
class ArithmeticVerdict:
    """The compressed artifact's Measured as judged (its eval in the profile's worst
    arithmetic) and the report's `int8_arithmetic` record."""

    measured: Measured
    record: dict


def check_arithmetics(
    target: Target,
    options: object,
    path: Path,
    host: Measured,
    base: EvalResult | None,
    data: Dataset | None,
    tasks: dict[str, str],
    threads: int,
) -> ArithmeticVerdict:
    """Measure the int8 artifact at path (a Q/DQ ONNX its target runs) in every arithmetic of
    its CPU profile; the Measured to judge keeps the host's latency and takes the worst eval."""
    profile, arithmetics = target.cpu_profile(options)
    cpu = host_int8()
    if not arithmetics:  # the runtime's arithmetic does not depend on the CPU
        record = {"profile": None, "runtime_arithmetic": target.capabilities.int8_arithmetic}
        return ArithmeticVerdict(host, record | {"host": cpu})
    figures = measure_figures(path, arithmetics, cpu["arithmetic"], host, data, threads)
    rows = {id(f): f.summary(base, tasks) for f in figures}
    judged = {name: profile_figure(figures, name, cpu["arithmetic"]) for name in arithmetics}
    hardest = target.quant_scheme(options).arithmetic
    worst = min(judged.values(), key=lambda f: _badness(rows[id(f)], f.arithmetic == hardest))
    record = {  # the first four keys do not depend on the host that measured them
        "profile": profile,
        "judged_in": worst.arithmetic,
        "profile_figures": {name: rows[id(f)] for name, f in judged.items()},
        "exact_reference": rows[id(figures[0])],
        "host_kernels": rows[id(figures[1])],
        "measured_on": {name: f.how for name, f in judged.items()},
        "host": cpu,
    }
    unmodelled = unemulated_int8_nodes(path)
    if unmodelled:  # never silently: these nodes' figures are this host's in every row
        record["not_emulated"] = unmodelled
    return ArithmeticVerdict(dataclasses.replace(host, eval=worst.eval), record)


def measure_figures(
    path: Path,
    arithmetics: tuple[str, ...],
    host_arithmetic: str,
    host: Measured,
    data: Dataset | None,
    threads: int,
) -> list[ArithmeticFigures]:
    """The exact Q/DQ reference, this host's kernels, then each profile arithmetic that is
    neither of those, emulated."""
    exact = run_eval(reference_runner(path, threads, arithmetic=EXACT_ARITHMETIC), data, "exact")
    figures = [
        ArithmeticFigures(EXACT_ARITHMETIC, EXACT_HOW, exact),
        ArithmeticFigures(host_arithmetic, HOST_HOW, host.eval),
    ]
    for name in arithmetics:
        if name not in (host_arithmetic, EXACT_ARITHMETIC):
            runner = reference_runner(path, threads, arithmetic=name)
            figures.append(ArithmeticFigures(name, "emulated", run_eval(runner, data, name)))
    return figures


def profile_figure(
    figures: list[ArithmeticFigures], name: str, host_arithmetic: str
) -> ArithmeticFigures:
    """The figure that stands for one of the profile's arithmetics: this host's kernels when
    they compute in it, else the exact reference or its emulation."""
    how = HOST_HOW if name == host_arithmetic else None
    return next(f for f in figures if f.arithmetic == name and how in (None, f.how))


# Figures this close are a tie (the same weights computed alike, up to float rounding): the
# scheme's most demanding arithmetic is then named, whichever host measured them.
TIE_DB = 0.05


def _badness(row: dict, hardest: bool) -> tuple[float, float]:
    """Sort key: lower SQNR, then lower cosine, is worse (missing figures sort last)."""
    sqnr = row.get("sqnr_db", float("inf")) - (TIE_DB if hardest else 0.0)
    return (sqnr, row.get("cosine", float("inf")))


def arithmetic_notes(record: dict | None) -> list[str]:
    """Plain words when an arithmetic of the profile loses more than 1 dB against exact."""
    if not record or not record.get("profile"):
        return []
    exact = record["exact_reference"].get("sqnr_db")
    figures = record["profile_figures"].items()
    worse = [
        (n, f["sqnr_db"]) for n, f in figures if exact is not None and f["sqnr_db"] < exact - 1
    ]
    missing = [f"{n['node']} ({n['op']})" for n in record.get("not_emulated", [])]
    unmodelled = (
        [
            f"int8 arithmetic of {len(missing)} node(s) is not emulated: {', '.join(missing[:5])}"
            f"{' ...' if len(missing) > 5 else ''}; their figures in every arithmetic are this "
            "host's kernels, so the verdict does not cover CPUs that compute them differently "
            "(see docs/cpu-profiles.md)."
        ]
        if missing
        else []
    )
    return unmodelled + [
        f"int8 in {name} ({record['measured_on'][name]}) reaches {sqnr:.1f} dB SQNR, "
        f"{exact - sqnr:.1f} dB below the exact Q/DQ reference: CPUs that sum int8 this way "
        f"get the worse figure, and the verdict is judged on it (CPU profile "
        f"{record['profile']}; see docs/cpu-profiles.md)."
        for name, sqnr in worse
    ]
