"""On the device: this host's int8 arithmetic against the CPU profile an artifact was verified
for (read from its run record), said plainly by `compress verify` and `compress bench`, with
verify's re-measurement of the artifact on this host's kernels beside the exact reference."""

from __future__ import annotations

from pathlib import Path

from calibration.dataset import Dataset
from compressor.judging.arithmetic import measure_figures
from compressor.judging.assess import Measured
from compressor.report.run_record import recorded_int8_arithmetic
from targets.registry import EXACT_ARITHMETIC, host_int8


def host_notes(
    record: dict | None, host: dict, done: str = "Measured again on this host's kernels."
) -> list[str]:
    """What a reader must know when this host computes int8 otherwise than the host that
    verified the artifact, or in an arithmetic its CPU profile does not cover."""
    if not record or not record.get("profile"):
        return []
    profile, covered = record["profile"], list(record.get("profile_figures") or {})
    here = host.get("arithmetic", "unknown")
    verified = (record.get("host") or {}).get("arithmetic")
    what = f"This host ({_describe(host)}) computes int8 in {here}"
    if here not in covered:
        return [
            f"WARNING: {what}, but the artifact was verified for CPU profile {profile} "
            f"({', '.join(covered)}) only: its int8 figures do not hold here. {done} "
            "Recompress with -O cpu=portable (or -O cpu=host here)."
        ]
    if here != verified:
        return [
            f"{what}; the artifact was verified on {_describe(record.get('host') or {})} "
            f"({verified}) for CPU profile {profile}, which covers {here} (verified there by "
            f"emulation). {done}"
        ]
    return []


def remeasure(
    artifact: Path,
    measured: list[Measured],
    data: Dataset | None,
    tasks: dict[str, str],
    threads: int,
) -> tuple[dict | None, list[str]]:
    """verify's `int8_arithmetic` section and notes: the recorded profile and host, this host,
    and (with eval data) the artifact on this host's kernels beside the exact Q/DQ reference,
    with their difference and the figure stored for the arithmetic this host computes in
    (measured: the baseline's and the artifact's Measured)."""
    record = recorded_int8_arithmetic(artifact)
    if not record or not record.get("profile"):
        return None, []
    host = host_int8()
    section = {
        "verified_profile": record["profile"],
        "verified_arithmetics": list(record.get("profile_figures") or {}),
        "verified_host": record.get("host"),
        "host": host,
    }
    notes = host_notes(record, host)
    base, here = measured[0].eval, measured[1]
    if data is not None and base is not None:
        figures = measure_figures(artifact, (), host["arithmetic"], here, data, threads)
        rows = [f.summary(base, tasks) for f in figures]
        section["exact_reference"], section["host_kernels"] = rows
        notes += _difference(section, record, host["arithmetic"])
    return section, notes


def _difference(section: dict, record: dict, arithmetic: str) -> list[str]:
    """This host's figure against exact and against the stored one (added to section)."""
    exact = section["exact_reference"].get("sqnr_db")
    here = section["host_kernels"].get("sqnr_db")
    if exact is None or here is None:
        return []
    stored = _stored_sqnr(record, arithmetic)
    section["host_minus_exact_db"] = round(here - exact, 3)
    section["stored_sqnr_db"] = stored
    recorded = "" if stored is None else f"; the run recorded {stored:.1f} dB for {arithmetic}"
    return [
        f"int8 on this host's kernels: {here:.1f} dB SQNR, exact Q/DQ {exact:.1f} dB "
        f"({here - exact:+.1f} dB){recorded}."
    ]


def _stored_sqnr(record: dict, arithmetic: str) -> float | None:
    """The SQNR the verifying run measured for this arithmetic (exact: the Q/DQ reference)."""
    figures = record.get("profile_figures")
    row = figures.get(arithmetic) if isinstance(figures, dict) else None
    if arithmetic == EXACT_ARITHMETIC:
        row = record.get("exact_reference")
    value = row.get("sqnr_db") if isinstance(row, dict) else None
    return float(value) if isinstance(value, (int, float)) else None


def _describe(host: dict) -> str:
    features = host.get("int8_features")
    listed = "+".join(str(f) for f in features) if isinstance(features, list) else ""
    return f"{host.get('arch', 'unknown')} {listed or 'without int8 features'}".strip()


def bench_notes(paths: list[Path]) -> list[str]:
    """bench: for each artifact verified for a CPU profile, how this host compares with it
    (bench times only: `compress verify --eval` re-measures the figures here)."""
    host = host_int8()
    notes = []
    for path in paths:
        done = "Timed here; `compress verify --eval DATA` re-measures its figures here."
        notes += [
            f"{path.name}: {n}" for n in host_notes(recorded_int8_arithmetic(path), host, done)
        ]
    return notes
