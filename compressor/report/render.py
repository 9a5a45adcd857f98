"""Report: what was done and measured; JSON for machines and a rich table for people."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from compressor.judging.budget import BudgetResult
from compressor.judging.output_records import OutputRecord
from compressor.judging.sections import Section
from compressor.report import strict_json
from compressor.report.schema import Report


def write_report(report: dict, path: Path) -> None:
    """Write report.json with stable key order."""
    path.write_text(strict_json.dumps(report, indent=2, sort_keys=False) + "\n")


def _fmt_acc(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.2f}%"


def _fmt_ms(section: Section, key: str) -> str:
    return f"{section.latency.to_dict()[key]:.3f}"


def _metrics_table(report: Report) -> Table:
    base, comp, ref = report.baseline, report.compressed, report.fp32_reference
    label = f"{report.target} {report.precision}"
    if comp.proxy_for:
        label += f" (proxy: {comp.runtime})"
    table = Table(title=f"{Path(report.model).name} → {label}", title_justify="left")
    sections = [("baseline", base)] + ([("fp32", ref)] if ref else []) + [("compressed", comp)]
    table.add_column("metric")
    for name, section in sections:
        table.add_column(f"{name}\n({section.runtime})", justify="right")
    table.add_column("vs fp32" if ref else "vs baseline", justify="right")
    anchor = ref or base
    table.add_row("top-1 accuracy", *[_fmt_acc(s.accuracy) for _, s in sections], "")
    for key in ("p50", "p90", "p99"):
        speed = _ratio(anchor.latency.to_dict()[key], comp.latency.to_dict()[key])
        table.add_row(
            f"latency {key} (ms)",
            *[_fmt_ms(s, key) for _, s in sections],
            f"{speed} speed" if key == "p50" and speed else "",
        )
    size_ratio = comp.size_bytes / anchor.size_bytes if anchor.size_bytes else 0
    table.add_row(
        "size (KB)",
        *[f"{s.size_bytes / 1024:.1f}" for _, s in sections],
        f"{size_ratio:.2f}× size",
    )
    ci = comp.accuracy_drop_ci
    if ci and comp.accuracy is not None:
        blank = [""] * (len(sections) - 1)
        interval = f"[{ci[0]:+.2f}, {ci[1]:+.2f}]"
        table.add_row("top-1 drop, 95% CI (pts)", *blank, interval, f"n={comp.eval_samples}")
    if comp.metric is not None:
        values = [_fmt_metric(s.metric) for _, s in sections]
        table.add_row(f"--metric {comp.metric_name or ''}", *values, "")
    return table


def _fmt_metric(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


SHORT = {
    "top1_agreement": "top-1",
    "cosine": "cos",
    "detection_recall": "recall",
    "pixel_agreement": "pixel",
    "iou": "IoU",
    "step_agreement": "step",
    "relative_error": "rel.err",
}


def _outputs_table(outputs: tuple[OutputRecord, ...]) -> Table:
    """One row per output: the rule it got, its agreement and its fidelity numbers."""
    table = Table(title="outputs vs baseline (per sample: mean / worst)", title_justify="left")
    table.add_column("output")
    for col in ("rule", "agreement", "cosine", "SQNR dB", "worst ch. dB", "max |err|", "collapsed"):
        table.add_column(col, justify="left" if col == "rule" else "right")
    for out in outputs:
        fid = out.fidelity
        channel = fid.worst_channel_sqnr_db
        table.add_row(
            escape(f"{out.name} {list(out.shape)}"),
            out.task,
            f"{SHORT.get(out.headline, out.headline)} {out.headline_value:.4g}",
            f"{fid.cosine_mean:.4f} / {fid.cosine_worst:.4f}",
            f"{fid.sqnr_mean_db:.1f} / {fid.sqnr_worst_db:.1f}",
            "n/a" if channel is None else f"{channel:.1f} (#{fid.worst_channel})",
            f"{fid.max_abs_error:.3g}",
            f"{fid.collapse_share:.0%}",
        )
    return table


def _rule_notes(outputs: tuple[OutputRecord, ...]) -> list[str]:
    """Why each output got its rule."""
    return [f"output '{o.name}' judged as {o.task}: {o.rule}." for o in outputs]


def _ratio(base: float | None, comp: float | None, better_low: bool = True) -> str:
    if not base or not comp:
        return ""
    r = base / comp if better_low else comp / base
    return f"{r:.2f}×"


def render_report(report: Report, console: Console) -> None:
    """Print baseline vs compressed, then budget verdicts, then plain-words notes."""
    console.print(_metrics_table(report))
    line = arithmetic_line(report.int8_arithmetic)
    if line:
        console.print(line)
    outputs = report.compressed.outputs or ()
    if outputs:
        console.print(_outputs_table(outputs))
    render_torch_passes(report.passes, console)
    if report.budgets:
        console.print(_budgets_table(report.budgets))
    for note in _rule_notes(outputs) + list(report.notes):
        console.print(f"• {note}")
    verdict = "[bold green]PASSED[/]" if report.passed else "[bold red]FAILED[/]"
    console.print(f"{verdict}: artifact {report.artifact}")


def _budgets_table(rows: tuple[BudgetResult, ...]) -> Table:
    """One row per budget: limit, measured value, verdict and where the budget came from."""
    budgets = Table(title="budgets", title_justify="left")
    for col in ("budget", "limit", "measured", "verdict", "source: note"):
        budgets.add_column(
            col,
            justify="left" if col in ("budget", "source: note") else "right",
            no_wrap=col != "source: note",  # budget names and figures must stay whole
        )
    for b in rows:
        value = "n/a" if b.value is None else f"{b.value:.5g} {b.unit}"
        verdict = "[green]PASS[/]" if b.passed else "[red]FAIL[/]"
        budgets.add_row(
            b.name,
            f"{b.limit:.6g} {b.unit}",
            value,
            verdict,
            escape(f"{b.source}: {b.note or ''}".rstrip(": ")),
        )
    return budgets


STAGE_NAMES = {"prune": "pruned", "distill": "distilled"}


def render_torch_passes(passes: dict, console: Console) -> None:
    """One row per stage (original, after each torch pass): what each step bought."""
    names = [n for n in STAGE_NAMES if n in passes]
    if not names:
        return
    title = "torch passes (ORT p50 at batch 1; top-1 in torch on --eval)"
    table = Table(title=title, title_justify="left")
    for col in ("stage", "params", "≠0", "MACs", "ONNX KB", "gzip KB", "ORT ms", "top-1"):
        table.add_column(col, justify="left" if col == "stage" else "right", no_wrap=True)
    rows = [("original", passes[names[0]]["before"])]
    rows += [(STAGE_NAMES[n], passes[n]["after"]) for n in names]
    for stage, s in rows:
        table.add_row(
            stage,
            _count(s["params"]),
            f"{s['nonzero_params'] / max(s['params'], 1) * 100:.0f}%",
            _count(s.get("macs")),
            _kb(s.get("onnx_bytes")),
            _kb(s.get("onnx_gzip_bytes")),
            "n/a" if s.get("ort_p50_ms") is None else f"{s['ort_p50_ms']:.3f}",
            _fmt_acc(s.get("accuracy")),
        )
    console.print(table)


def _count(value: int | None) -> str:
    if value is None:
        return "n/a"
    return f"{value / 1e6:.2f}M" if value >= 1e6 else f"{value / 1e3:.1f}K"


def _kb(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 1024:.1f}"


def arithmetic_line(record: dict | None) -> str | None:
    """The terminal's one short line on the int8 arithmetic, or None without one."""
    if not record:
        return None
    host = record.get("host") or {}
    features = "+".join(host.get("int8_features") or []) or "(no int8 ISA)"
    where = f"host {host.get('arch')} {features}"
    if not record.get("profile"):
        return f"int8 arithmetic: {record.get('runtime_arithmetic')}; {where}"
    how = record.get("measured_on") or {}
    shown = ", ".join(
        f"{name} {fig.get('sqnr_db', 0):.1f} dB" + EMULATED.get(how.get(name), "")
        for name, fig in record["profile_figures"].items()
    )
    return (
        f"int8 CPU profile {record['profile']}: {shown}; judged in {record['judged_in']}; "
        f"{where} computes {host.get('arithmetic')}"
    )


EMULATED = {"emulated": " (emulated)"}
