"""What `compress debug` found, for people: terminal tables and a self-contained HTML page."""

from __future__ import annotations

import html
import json

from rich.console import Console
from rich.table import Table


def render(result: dict, console: Console, top: int) -> None:
    """The stage and layer tables, the worst layers in words and what was kept float."""
    stages = Table("stage", "against", "output SQNR dB", "cosine", title="stages (model outputs)")
    for s in result["stages"]:
        stages.add_row(s["stage"], s["against"], f"{s['sqnr_db']:.1f}", f"{s['cosine']:.4f}")
    console.print(stages)
    layers = Table(
        "torch module",
        "onnx node",
        "tensor",
        "range",
        "outlier ch",
        "median ch dB",
        "worst ch (dB)",
        "q/dq dB",
        "fix",
        title=f"layers, worst first (top {top})",
    )
    for row in result["layers"][:top]:
        outliers = ", ".join(
            f"{o['channel']} (x{o['x_median']:g})" for o in row["outlier_channels"]
        )
        q = row["qdq_sqnr_db"]
        layers.add_row(
            row["module"],
            row["node"],
            row["tensor"],
            f"{row['range'][0]:.3g}..{row['range'][1]:.3g}",
            outliers or "-",
            f"{row['median_channel_sqnr_db']:.1f}",
            f"{row['worst_channel']} ({row['worst_channel_sqnr_db']:.1f})",
            "-" if q is None else f"{q:.1f}",
            row["fix"],
        )
    console.print(layers)
    console.print(chain_table(result, top))
    for row in result["layers"]:
        status = (row.get("artifact") or {}).get("status")
        if status:
            console.print(f"{result['target']} artifact: tensor {row['tensor']}: {status}")
    for note in result["notes"][1:]:
        console.print(note, soft_wrap=True, highlight=False)
    for row in [r for r in result["layers"] if r["median_channel_sqnr_db"] < 20][:3]:
        console.print(
            f"[bold red]breaks int8:[/] {row['module']} ({row['node']}, tensor {row['tensor']}): "
            f"median channel SQNR {row['median_channel_sqnr_db']:.1f} dB; {row['fix']}"
            + _artifact_words(result["target"], row.get("artifact")),
            soft_wrap=True,
            highlight=False,
        )
    for kept in result["kept_float"]:
        console.print(f"kept float: {kept.get('tensor') or kept.get('node')}: {kept['why']}")


def _artifact_words(target: str, match: dict | None) -> str:
    """The artifact stage of one layer in a sentence ('' where there is none)."""
    if not match or "sqnr_db" not in match:
        return "" if not match else f"; {target} artifact: {match['status']}"
    return (
        f"; in the {target} artifact: {match['op']}, median channel SQNR "
        f"{match['median_channel_sqnr_db']:.1f} dB, widest channel {match['widest_channel']}"
    )


def chain_table(result: dict, top: int) -> Table:
    """Each layer's own tensor at every stage against fp32 ONNX, same order as the layers."""
    name = f"{result['target']} artifact"
    table = Table(
        "torch module",
        "tensor",
        "q/dq dB",
        "q/dq med ch dB",
        "q/dq widest ch",
        f"{name} op",
        "artifact dB",
        "artifact med ch dB",
        "cosine",
        "max err",
        "artifact widest ch",
        title=f"layers through the chain vs fp32 ONNX (top {top})",
    )
    for row in result["layers"][:top]:
        qdq, art = row.get("qdq") or {}, row.get("artifact")
        table.add_row(row["module"], row["tensor"], *_match_cells(qdq)[:3], *_artifact_cells(art))
    return table


def _match_cells(match: dict) -> list[str]:
    if "sqnr_db" not in match:
        return [match.get("status", "-"), "", "", "", "", ""]
    channel = match["widest_channel"]
    widest = "-" if channel is None else f"{channel} (x{match['widest_x_median']:g})"
    return [
        f"{match['sqnr_db']:.1f}",
        f"{match['median_channel_sqnr_db']:.1f}",
        widest,
        f"{match['cosine']:.4f}",
        f"{match['max_error']:.3g}",
    ]


def _artifact_cells(match: dict | None) -> list[str]:
    if match is None:
        return ["-"] * 6
    if "sqnr_db" not in match:
        return [match.get("op") or "not mapped", "-", "-", "-", "-", "-"]
    dbs, med, widest, cos, err = _match_cells(match)
    return [match["op"], dbs, med, cos, err, widest]


def html_page(result: dict) -> str:
    """One self-contained page: an SVG bar chart of SQNR by layer and the tables."""
    layers = result["layers"]
    bars = []
    for i, row in enumerate(layers):
        value = max(0.0, min(row["median_channel_sqnr_db"], 60.0))
        bars.append(
            f'<rect x="{i * 14 + 40}" y="{210 - value * 3}" width="10" height="{value * 3}" '
            f'fill="{"#c33" if value < 20 else "#4a7"}"><title>{html.escape(row["tensor"])}: '
            f"{row['median_channel_sqnr_db']:.1f} dB</title></rect>"
        )
    svg = (
        f'<svg width="{len(layers) * 14 + 60}" height="230"><text x="0" y="20">dB</text>'
        f'<line x1="38" y1="150" x2="{len(layers) * 14 + 50}" y2="150" stroke="#999" '
        'stroke-dasharray="4"/>' + "".join(bars) + "</svg>"
    )
    flat = [_flatten(row) for row in layers]
    columns = list(dict.fromkeys(k for row in flat for k in row))
    cells = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(row.get(k, '')))}</td>" for k in columns) + "</tr>"
        for row in flat
    )
    head = "".join(f"<th>{html.escape(k)}</th>" for k in columns)
    return (
        f"<html><head><meta charset='utf-8'><title>compress debug</title></head><body>"
        f"<h1>{html.escape(result['model'])} → {html.escape(result['target'])}</h1>"
        f"<p>Median per-channel SQNR of int8 rounding by layer, worst first "
        f"(dashed line: 20 dB).</p>{svg}<table border='1'><tr>{head}</tr>{cells}</table>"
        f"<pre>{html.escape(json.dumps(result['stages'], indent=1))}</pre>"
        f"<p>{'<br>'.join(html.escape(n) for n in result['notes'])}</p></body></html>"
    )


def _flatten(row: dict) -> dict:
    """A layer row with its stage dicts spread into `stage.field` columns."""
    flat = {}
    for key, value in row.items():
        if key in ("qdq", "artifact"):
            flat.update({f"{key}.{k}": v for k, v in (value or {}).items()})
        else:
            flat[key] = value
    return flat
