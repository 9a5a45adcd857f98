"""The summary's Pareto front and per-node concurrency, from rows and outcomes."""

from __future__ import annotations

import pytest

from compressor.sweep.summary import concurrency, mark_pareto
from compressor.sweep.worker import JobOutcome


def row(job_id: str, target: str, p50: float, acc: float | None, cos: float = 0.99) -> dict:
    return {
        "id": job_id,
        "target": target,
        "p50_ms": p50,
        "accuracy_pct": acc,
        "fidelity_cosine": cos,
        "status": "passed",
    }


def test_pareto_front_per_target() -> None:
    rows = [
        row("fast-bad", "onnx", 1.0, 90.0),
        row("slow-good", "onnx", 3.0, 99.0),
        row("dominated", "onnx", 3.5, 95.0),  # slower and worse than slow-good
        row("tie-slower", "onnx", 3.0, 98.0),  # as fast as slow-good but worse
        row("other-target", "tflite", 9.0, 80.0),  # alone on its target: on the front
        row("fidelity-only", "tensorrt", 2.0, None, 0.98),
        row("fidelity-better", "tensorrt", 2.0, None, 0.999),
    ]
    rows.append({"id": "failed-early", "target": "onnx", "status": "error"})
    mark_pareto(rows)
    front = {r["id"] for r in rows if r.get("pareto")}
    assert front == {"fast-bad", "slow-good", "other-target", "fidelity-better"}
    assert "pareto" not in rows[-1]


def test_exclusive_timings_decide_the_front_when_present() -> None:
    a, b = row("a", "onnx", 1.0, 95.0), row("b", "onnx", 2.0, 95.0)
    a["exclusive_p50_ms"], b["exclusive_p50_ms"] = 3.0, 2.0  # a was fast only while sharing
    mark_pareto([a, b])
    assert (a["pareto"], b["pareto"]) == (False, True)


def test_concurrency_counts_overlapping_jobs_per_node() -> None:
    def out(job_id: str, node: str, start: float, end: float, resumed: bool = False):
        return JobOutcome(job_id, "passed", 0, node=node, started=start, ended=end, resumed=resumed)

    outcomes = [
        out("a", "n1", 0, 10),
        out("b", "n1", 5, 12),
        out("c", "n1", 11, 20),  # overlaps b only: still 2
        out("d", "n1", 12, 13),  # starts as b ends: c and d, 2
        out("e", "n2", 0, 5),
        out("f", "n2", 1, 2, resumed=True),  # from an earlier sweep: not counted
    ]
    assert concurrency(outcomes) == {"n1": 2, "n2": 1}


def test_summary_png_has_a_panel_per_target(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    from PIL import Image

    from compressor.sweep.plot import plot_summary

    rows = [row("a", "onnx", 1.0, 90.0), row("b", "onnx", 2.0, 99.0), row("c", "tflite", 3.0, 95.0)]
    mark_pareto(rows)
    path = plot_summary(rows, tmp_path / "summary.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = Image.open(path).size
    assert width > 1.8 * height  # two panels side by side
