"""A sweep row's figures: read from its run's report, and the latency and quality that rank it."""

from __future__ import annotations

from compressor.report.schema import Report


def report_figures(report: Report) -> dict:
    """Size, accuracy, fidelity, latency and failed budgets of one run's report."""
    comp, timing = report.compressed, report.compressed.latency
    accuracy, base_acc = comp.accuracy, report.baseline.accuracy
    drop = None if accuracy is None or base_acc is None else round((accuracy - base_acc) * 100, 2)
    return {
        "artifact": report.artifact,
        "runtime": comp.runtime,
        "proxy_for": comp.proxy_for,
        "size_kb": round(comp.size_bytes / 1024, 2),
        "accuracy_pct": None if accuracy is None else round(accuracy * 100, 2),
        "accuracy_drop_pts": drop,
        "fidelity_cosine": (comp.fidelity or {}).get("cosine"),
        "p50_ms": timing.p50,
        "p90_ms": timing.p90,
        "p99_ms": timing.p99,
        "threads": timing.threads,
        "failed_budgets": [b.name for b in report.budgets if not b.passed],
    }


def latency(row: dict) -> float | None:
    """p50 re-timed alone (--timing exclusive) when there is one, else as the job timed it."""
    return row.get("exclusive_p50_ms") or row.get("p50_ms")


def quality(row: dict) -> float | None:
    """Accuracy where labels were given, else output fidelity (cosine to the original)."""
    return row.get("accuracy_pct") if row.get("accuracy_pct") is not None else _cos(row)


def _cos(row: dict) -> float | None:
    cosine = row.get("fidelity_cosine")
    return None if cosine is None else 100 * cosine
