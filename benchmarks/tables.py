"""Turn pipeline reports into benchmark rows, a markdown table, JSON and an optional plot."""

from __future__ import annotations

import json
from pathlib import Path

from compressor.progress import STDERR
from compressor.report.staging import staged_file

COLUMNS = (
    ("model", "model", "{}"),
    ("target", "target", "{}"),
    ("precision", "precision", "{}"),
    ("size KB", "size_kb", "{:.1f}"),
    ("size vs fp32", "size_ratio", "{:.2f}×"),
    ("top-1 %", "accuracy_pct", "{:.2f}"),
    ("Δ top-1 pts", "accuracy_drop_pts", "{:+.2f}"),
    ("p50 ms", "p50_ms", "{:.3f}"),
    ("speed-up vs torch fp32", "speedup_vs_torch", "{:.2f}×"),
    ("speed-up vs fp32, same runtime", "speedup_vs_fp32_same_runtime", "{:.2f}×"),
    ("conversion s", "conversion_s", "{:.2f}"),
)

MARKERS = {"fp32": "o", "fp16": "s", "int8": "^", "dynamic": "D"}


def summarize_report(report: dict) -> dict:
    """The numbers one row shows; every ratio uses baselines timed interleaved in the same run."""
    base, comp = report["baseline"], report["compressed"]
    ref = report.get("fp32_reference")
    p50 = comp["latency_ms"]["p50"]
    # The pipeline lowers the fp32 reference for the same target and times it in the same runtime.
    fp32_same_p50 = ref["latency_ms"]["p50"] if ref else p50
    fp32_size = ref["size_bytes"] if ref else base["size_bytes"]
    accuracy = comp.get("accuracy")
    return {
        "runtime": comp["runtime"],
        "proxy_for": comp.get("proxy_for"),
        "size_kb": round(comp["size_bytes"] / 1024, 2),
        "size_ratio": round(comp["size_bytes"] / fp32_size, 4),
        "accuracy_pct": None if accuracy is None else round(accuracy * 100, 2),
        "accuracy_drop_pts": None
        if accuracy is None
        else round((accuracy - base["accuracy"]) * 100, 2),
        "p50_ms": p50,
        "p90_ms": comp["latency_ms"]["p90"],
        "torch_fp32_p50_ms": base["latency_ms"]["p50"],
        "fp32_p50_ms": fp32_same_p50,  # the same target's fp32 artifact, timed beside it
        "fp32_accuracy_pct": _pct((ref or base).get("accuracy")),
        "speedup_vs_torch": round(base["latency_ms"]["p50"] / p50, 3),
        "speedup_vs_fp32_same_runtime": round(fp32_same_p50 / p50, 3),
        "conversion_s": report.get("conversion_s"),
        "fidelity_cosine": (comp.get("fidelity") or {}).get("cosine"),
        "worst_channel_sqnr_db": min(
            (
                o["fidelity"]["worst_channel_sqnr_db"]
                for o in comp.get("outputs") or []
                if o["fidelity"]["worst_channel_sqnr_db"] is not None
            ),
            default=None,
        ),
        "passed": report.get("passed"),  # every budget, the default fidelity floor included
    }


def markdown_table(rows: list[dict], meta: dict) -> str:
    """The README-ready table, failures included with their reason."""
    env, suite = meta["environment"], meta["suite"]
    lines = [
        f"# Benchmark results ({suite['name']} suite)",
        "",
        f"Measured by `python -m benchmarks.run{' --quick' if suite['name'] == 'quick' else ''}` "
        f"in {meta['elapsed_s']} s on {env['machine']} ({env['cpu_count']} CPUs), "
        f"{suite['threads']} thread, batch 1, p50 of {suite['runs']} interleaved runs; "
        f"torch {env['torch']}, onnxruntime {env['onnxruntime']}, targets {env['targets']}.",
        "Accuracy is top-1 on the digits eval split (361 samples); Δ is against the torch "
        "fp32 model. Speed-ups divide the fp32 p50 by this artifact's p50, both timed in the "
        "same run; conversion is export + cleanup + quantization + lowering.",
        "",
        "| " + " | ".join(title for title, _, _ in COLUMNS) + " |",
        "|" + "|".join("---" if i < 3 else "---:" for i in range(len(COLUMNS))) + "|",
    ]
    for row in rows:
        if "error" in row:
            cells = [row["model"], row["target"], row["precision"], _reason(row)]
            cells += [""] * (len(COLUMNS) - len(cells))
        else:
            cells = [_cell(row.get(key), fmt) for _, key, fmt in COLUMNS]
            if row.get("proxy_for"):
                cells[1] += f" (proxy: {row['runtime']})"
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def side_by_side(
    rows: list[tuple[str, str, dict[str, str]]], columns: dict[str, str], blank: dict[str, str]
) -> list[str]:
    """Markdown lines, a runtime per column: (model, measure, {target: cell}) per row; a cell
    missing from a row shows the target's `blank` text (why it was not measured), else "–"."""
    lines = [
        "| model | measure | " + " | ".join(columns.values()) + " |",
        "|---|---|" + "---:|" * len(columns),
    ]
    for model, measure, cells in rows:
        shown = [str(cells.get(t, blank.get(t, "–"))).replace("|", "/") for t in columns]
        lines.append(f"| {model} | {measure} | " + " | ".join(shown) + " |")
    return lines


def _pct(value: float | None) -> float | None:
    return None if value is None else round(value * 100, 2)


def _reason(row: dict) -> str:
    """The first sentence of why a combination did not run (latest.json keeps all of it)."""
    first = row["error"].split(". ")[0].split("\n")[0]
    return f"{row.get('status', 'failed')}: {first[:140]}"


def _cell(value: object, fmt: str) -> str:
    return "–" if value is None else fmt.format(value)


def write_results(rows: list[dict], meta: dict, out: Path) -> list[Path]:
    """latest.md and latest.json, plus latest.png when matplotlib is installed."""
    written = [out / "latest.md", out / "latest.json"]
    with staged_file(written[0]) as handle:
        handle.write(markdown_table(rows, meta).encode())
    with staged_file(written[1]) as handle:
        handle.write((json.dumps({**meta, "rows": rows}, indent=2) + "\n").encode())
    png = plot_results(rows, out / "latest.png")
    return written + ([png] if png else [])


def plot_results(rows: list[dict], path: Path) -> Path | None:
    """Accuracy vs latency; colour = model, marker = precision, area ∝ size. None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.lines import Line2D
    except ImportError:
        STDERR.print("no matplotlib: skipping latest.png (pip install matplotlib)")
        return None
    good = [r for r in rows if "error" not in r and r["accuracy_pct"] is not None]
    models = list(dict.fromkeys(r["model"] for r in good))
    colors = {m: f"C{i % 10}" for i, m in enumerate(models)}
    targets = list(dict.fromkeys(r["target"] for r in good)) or ["none"]
    fig, axes = plt.subplots(
        1, len(targets), figsize=(4 + 5 * len(targets), 6), sharex=True, sharey=True
    )
    axes = list(getattr(axes, "flat", [axes]))
    for ax, target in zip(axes, targets, strict=True):
        for r in (r for r in good if r["target"] == target):
            ax.scatter(
                r["p50_ms"],
                r["accuracy_pct"],
                s=20 + 20 * r["size_kb"] ** 0.5,
                c=colors[r["model"]],
                marker=MARKERS.get(r["precision"], "o"),
                alpha=0.65,
                edgecolors="black",
                linewidths=0.4,
            )
        ax.set_xscale("log")
        proxy = next((r["runtime"] for r in good if r["target"] == target and r["proxy_for"]), None)
        label = f"{target} (proxy: measured in {proxy})" if proxy else target
        ax.set_title(f"{label}: accuracy vs latency vs size (area grows with size)", fontsize=9)
        ax.set_xlabel("latency p50, ms (batch 1, 1 thread, log scale)")
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], ls="", marker="o", color=colors[m], label=m) for m in models]
    handles += [
        Line2D([], [], ls="", marker=mk, color="grey", label=p) for p, mk in MARKERS.items()
    ]
    axes[-1].legend(handles=handles, loc="lower right", fontsize=8, ncols=2)
    axes[0].set_ylabel("top-1 accuracy, % (digits eval)")
    fig.tight_layout()
    with staged_file(path) as handle:
        fig.savefig(handle, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return path
