"""summary.png: accuracy (or fidelity) vs latency, one panel per target, Pareto front marked."""

from __future__ import annotations

from pathlib import Path

from compressor.progress import STDERR
from compressor.sweep.figures import latency, quality


def plot_summary(rows: list[dict], path: Path) -> Path | None:
    """Write the plot; None (and a hint) when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        STDERR.print("no matplotlib: skipping summary.png (pip install -e '.\\[plot]')")
        return None
    good = [r for r in rows if latency(r) is not None and quality(r) is not None]
    targets = list(dict.fromkeys(r["target"] for r in good)) or ["none"]
    fig, axes = plt.subplots(1, len(targets), figsize=(1 + 5 * len(targets), 5), squeeze=False)
    for ax, target in zip(axes[0], targets, strict=True):
        _panel(ax, [r for r in good if r["target"] == target], target)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _panel(ax: object, rows: list[dict], target: str) -> None:
    fidelity = any(r.get("accuracy_pct") is None for r in rows)
    for row in rows:
        ax.scatter(
            latency(row),
            quality(row),
            c="C2" if row["status"] == "passed" else "C3",
            marker="*" if row.get("pareto") else "o",
            s=140 if row.get("pareto") else 40,
            edgecolors="black",
            linewidths=0.4,
        )
        ax.annotate(row["id"], (latency(row), quality(row)), fontsize=6, alpha=0.7)
    front = sorted((r for r in rows if r.get("pareto")), key=latency)
    if front:
        ax.plot([latency(r) for r in front], [quality(r) for r in front], "k--", lw=0.8)
    ax.set_xlabel("p50 latency, ms")
    ax.set_ylabel("fidelity (100 × cosine)" if fidelity else "top-1 accuracy, %")
    ax.set_title(f"{target}: ★ Pareto front, green passed, red failed", fontsize=9)
