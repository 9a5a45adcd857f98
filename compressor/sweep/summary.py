"""The sweep's summary: one row per job (figures read from its report.json), how many jobs ran
at once per node, the Pareto front per target, as JSON, markdown and a terminal table."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from compressor.report.run_record import read_run
from compressor.report.staging import staged_file
from compressor.sweep.figures import latency, quality, report_figures
from compressor.sweep.jobs import Job
from compressor.sweep.worker import JobOutcome

COLUMNS = (  # (header, row key, format)
    ("job", "id", "{}"),
    ("status", "status", "{}"),
    ("size KB", "size_kb", "{:.1f}"),
    ("top-1 %", "accuracy_pct", "{:.2f}"),
    ("Δ top-1 pts", "accuracy_drop_pts", "{:+.2f}"),
    ("cosine", "fidelity_cosine", "{:.5f}"),
    ("p50 ms", "p50_ms", "{:.3f}"),
    ("alone p50 ms", "exclusive_p50_ms", "{:.3f}"),
    ("p99 ms", "p99_ms", "{:.3f}"),
    ("Pareto", "pareto", "{}"),
    ("tries", "attempts", "{}"),
    ("s", "elapsed_s", "{:.1f}"),
)


def job_row(job: Job, outcome: JobOutcome) -> dict:
    """What the summary shows of one job; figures only when its report exists."""
    row = {
        "id": job.id,
        "model": job.model,
        "target": job.target,
        "precision": job.precision,
        "variant": job.variant,
        "status": outcome.status,
        "exit_code": outcome.exit_code,
        "attempts": outcome.attempts,
        "resumed": outcome.resumed,
        "elapsed_s": outcome.elapsed_s,
        "node": outcome.node,
        "cores": list(outcome.cores),
        "error": outcome.error,
    }
    report = None
    if outcome.status in ("passed", "failed"):
        report = read_run(Path(job.recipe.output)).typed_report()
    return row | (report_figures(report) if report else {})


def mark_pareto(rows: list[dict]) -> None:
    """Per target: a job is on the front when no other is both faster and at least as good."""
    measured = [r for r in rows if latency(r) is not None and quality(r) is not None]
    for row in measured:
        row["pareto"] = not any(
            o is not row
            and o["target"] == row["target"]
            and latency(o) <= latency(row)
            and quality(o) >= quality(row)
            and (latency(o) < latency(row) or quality(o) > quality(row))
            for o in measured
        )


def concurrency(outcomes: list[JobOutcome]) -> dict[str, int]:
    """Per node, the most jobs that were running at the same moment (resumed jobs aside)."""
    per_node: dict[str, list[tuple[float, int]]] = {}
    for o in outcomes:
        if o.ended and not o.resumed:
            per_node.setdefault(o.node, []).extend([(o.started, 1), (o.ended, -1)])
    peaks = {}
    for node, events in per_node.items():
        running = peak = 0
        for _, step in sorted(events, key=lambda e: (e[0], e[1])):
            running += step
            peak = max(peak, running)
        peaks[node] = peak
    return peaks


def build_summary(
    jobs: list[Job], outcomes: list[JobOutcome], meta: dict, timings: dict | None = None
) -> dict:
    """The whole summary.json: rows, counts, exit code and how latency was measured;
    `timings` holds the --timing exclusive re-measurements by job id."""
    rows = [
        job_row(j, o) | (timings or {}).get(j.id, {}) for j, o in zip(jobs, outcomes, strict=True)
    ]
    mark_pareto(rows)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    peaks = concurrency(outcomes)
    passed = all(r["status"] == "passed" for r in rows)
    note = _latency_note(peaks, bool(timings), all(r["cores"] for r in rows if r["node"]))
    return {
        "passed": passed,
        "exit_code": 0 if passed else 1,
        "counts": counts,
        "jobs_at_once_per_node": peaks,
        "latency_note": note,
        **meta,
        "rows": rows,
    }


TERMINAL = ("id", "status", "size_kb", "accuracy_pct", "fidelity_cosine", "p50_ms", "pareto")


def _latency_note(peaks: dict[str, int], retimed: bool, pinned: bool) -> str:
    """How far the latencies can be compared, given how many jobs timed at once."""
    if retimed:
        return (
            "Latencies re-timed one at a time on this machine after the sweep (--timing "
            "exclusive); the Pareto front uses them."
        )
    if not peaks or max(peaks.values()) == 1:
        return "One job at a time per node: latencies were timed without other jobs running."
    shared = (
        "each on its own cores but sharing caches and memory bandwidth"
        if pinned
        else "sharing the node's cores"
    )
    return (
        f"Up to {max(peaks.values())} jobs ran at once on one node, {shared}, while timing: "
        "compare latencies with care, or rerun with --timing exclusive."
    )


def _cell(row: dict, key: str, fmt: str) -> str:
    value = row.get(key)
    if key == "pareto":
        return "★" if value else ""
    return "" if value is None else fmt.format(value)


def markdown_summary(summary: dict) -> str:
    """summary.md: the table, then each failure's error and how latency was measured."""
    rows = summary["rows"]
    retimed = any(r.get("exclusive_p50_ms") for r in rows)
    columns = [c for c in COLUMNS if retimed or c[1] != "exclusive_p50_ms"]
    lines = [
        f"# Sweep {'PASSED' if summary['passed'] else 'FAILED'}: {summary['counts']}",
        "",
        "| " + " | ".join(h for h, _, _ in columns) + " |",
        "|" + "---|" * len(columns),
    ]
    lines += ["| " + " | ".join(_cell(r, k, f) for _, k, f in columns) + " |" for r in rows]
    notes = [
        f"- {r['id']}: failed budgets {r['failed_budgets']}"
        for r in rows
        if r.get("failed_budgets")
    ]
    notes += [f"- {r['id']}: {r['error']}" for r in rows if r.get("error")]
    lines += ["", *notes, *([""] if notes else []), summary["latency_note"]]
    lines += [
        f"Jobs at once per node: {summary['jobs_at_once_per_node']}; {summary.get('backend')}."
    ]
    if summary.get("skipped"):
        lines += [f"Skipped grid cells: {summary['skipped']}"]
    return "\n".join(lines) + "\n"


def write_summary(summary: dict, out_dir: Path) -> list[Path]:
    """summary.json and summary.md in DIR (and summary.png when matplotlib is installed)."""
    from compressor.sweep.plot import plot_summary

    written = []
    for name, text in (
        ("summary.json", json.dumps(summary, indent=1)),
        ("summary.md", markdown_summary(summary)),
    ):
        with staged_file(out_dir / name) as out:
            out.write(text.encode())
        written.append(out_dir / name)
    png = plot_summary(summary["rows"], out_dir / "summary.png")
    return written + ([png] if png else [])


def render_summary(summary: dict, console: Console) -> None:
    """The terminal table with one line per failure and the latency note."""
    columns = [c for c in COLUMNS if c[1] in TERMINAL]
    if any(r.get("exclusive_p50_ms") for r in summary["rows"]):
        columns.insert(-1, next(c for c in COLUMNS if c[1] == "exclusive_p50_ms"))
    table = Table(title="sweep summary (all columns in summary.md)")
    for header, key, _ in columns:
        table.add_column(header, no_wrap=key != "id", overflow="fold")
    for row in summary["rows"]:
        cells = [escape(_cell(row, k, f)) for _, k, f in columns]
        table.add_row(*cells, style="" if row["status"] == "passed" else "red")
    console.print(table)
    for row in summary["rows"]:
        if row.get("error"):
            console.print(f"[red]{escape(row['id'])}[/]: {escape(row['error'])}", soft_wrap=True)
    console.print(summary["latency_note"], soft_wrap=True)
