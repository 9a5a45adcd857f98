"""`compress example`'s report.json compared field by field with a recorded golden report.

Refactors must not change what a run reports. Timings, versions and paths are skipped; measured
figures (accuracy, fidelity, sizes) may move within a tolerance, since the example trains its
model on this machine's CPU. Everything else (keys, strings, flags, counts) must be equal.
Re-record after an intended change with: GOLDEN_WRITE=1 python -m pytest tests/compressor/test_golden_report.py
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "data" / "golden_example_report.json"
# Keys whose values differ run to run by nature (wall time, machine, versions, where it ran).
# int8_arithmetic's host, host_kernels and measured_on describe the measuring CPU; its profile
# figures and judged_in do not (the other arithmetic is emulated), so those stay compared.
VOLATILE = {"latency_ms", "elapsed_s", "conversion_s", "environment", "model", "artifact_info"}
VOLATILE |= {"host", "host_kernels", "measured_on"}
# Measured figures: equal within a tolerance (decibels get an absolute one).
DB_TOLERANCE = 3.0
REL_TOLERANCE = 0.05
ABS_TOLERANCE = 0.02
NUMBER = re.compile(r"[-+]?\d+(\.\d+)?")


def compare(got: object, want: object, path: str = "") -> list[str]:
    """Differences between two report trees, one line each, with the key path."""
    if isinstance(want, dict) and isinstance(got, dict):
        return _compare_dicts(got, want, path)
    if isinstance(want, list) and isinstance(got, list):
        if len(got) != len(want):
            return [f"{path}: {len(got)} items, golden has {len(want)}"]
        return [
            d
            for i, (g, w) in enumerate(zip(got, want, strict=True))
            for d in compare(g, w, f"{path}[{i}]")
        ]
    if isinstance(want, bool) or isinstance(got, bool) or want is None or got is None:
        return [] if got == want else [f"{path}: {got!r} != golden {want!r}"]
    if isinstance(want, int | float) and isinstance(got, int | float):
        return [] if _close(path, float(got), float(want)) else [f"{path}: {got} vs golden {want}"]
    if isinstance(want, str) and isinstance(got, str):
        return [] if NUMBER.sub("#", got) == NUMBER.sub("#", want) else [f"{path}: {got!r}"]
    return [f"{path}: {type(got).__name__} where golden has {type(want).__name__}"]


def _compare_dicts(got: dict, want: dict, path: str) -> list[str]:
    diffs = [f"{path}.{k}: missing" for k in sorted(set(want) - set(got))]
    diffs += [f"{path}.{k}: not in golden" for k in sorted(set(got) - set(want))]
    for key in sorted(set(got) & set(want) - VOLATILE):
        diffs += compare(got[key], want[key], f"{path}.{key}")
    return diffs


def _close(path: str, got: float, want: float) -> bool:
    if got.is_integer() and want.is_integer() and not path.endswith("bytes"):
        return got == want
    if path.endswith("_db") or "_db." in path:
        return abs(got - want) <= DB_TOLERANCE
    return math.isclose(got, want, rel_tol=REL_TOLERANCE, abs_tol=ABS_TOLERANCE)


@pytest.fixture(scope="module")
def example_report(tmp_path_factory: pytest.TempPathFactory, cli) -> dict:
    """report.json of a real `compress example` run (trains, compresses to int8, verifies)."""
    folder = tmp_path_factory.mktemp("golden") / "example"
    cli(["example", "--dir", folder], code=0)
    return json.loads((folder / "out" / "report.json").read_text())


def test_example_report_matches_golden(example_report: dict) -> None:
    if os.environ.get("GOLDEN_WRITE"):
        GOLDEN.write_text(json.dumps(example_report, indent=2, sort_keys=True) + "\n")
    diffs = compare(example_report, json.loads(GOLDEN.read_text()))
    assert not diffs, "report.json differs from the golden one:\n" + "\n".join(diffs)


def test_compare_catches_changes() -> None:
    golden = {"a": {"sqnr_db": 40.0, "method": "minmax", "n": 9}, "latency_ms": {"p50": 1}}
    assert compare(golden, golden) == []
    assert compare({**golden, "latency_ms": {"p50": 9}}, golden) == []
    changed = {"a": {"sqnr_db": 30.0, "method": "entropy", "n": 12, "new": 1}, "latency_ms": {}}
    diffs = compare(changed, golden)
    assert any(".a.sqnr_db" in d for d in diffs)
    assert any(".a.method" in d for d in diffs)
    assert any(".a.n" in d for d in diffs)
    assert any(".a.new: not in golden" in d for d in diffs)
    assert compare({"a": [1, 2]}, {"a": [1]}) == [".a: 2 items, golden has 1"]
