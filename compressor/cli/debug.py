"""`compress debug MODEL --target T --calib DATA`: which layer breaks int8, at every stage."""

from __future__ import annotations

import dataclasses
import html
import json
import tempfile
from functools import partial
from pathlib import Path

import click
import onnx
from rich.console import Console
from rich.table import Table

from compressor.cli.common import CONSOLE, handle_errors
from compressor.cli.flags import CALIBRATION_METHODS, fields_of, flag, options
from compressor.debug import layer_rows, stage_table
from compressor.debug_artifact import artifact_note
from compressor.export import export_onnx
from compressor.loading import load_model
from compressor.passes.cleanup import cleanup_onnx
from compressor.passes.quantize import quantize_int8_static
from compressor.recipe import Recipe
from targets.registry import get_target, reference_runner, torch_runner

STAGE_SAMPLES = 32
ONNX_IS_ARTIFACT = (
    "onnx: the artifact is the Q/DQ ONNX itself; its per-layer figures are the q/dq columns."
)


def run_debug(recipe: Recipe, work: Path) -> dict:
    """Quantize as `compress --int8` would and measure every layer and stage."""
    from compressor.model_data import load_run_data
    from compressor.precision import calibration_batch

    target = get_target(recipe.target)
    options = target.parse_options(recipe.target_options)
    model = load_model(recipe.model, recipe.model_factory, recipe.trust_pickle)
    calib, _, specs = load_run_data(recipe, model)
    raw = export_onnx(model, specs, work / "raw.onnx")
    fp32, qdq = work / "fp32.onnx", work / "int8.onnx"
    cleanup_onnx(raw, fp32)
    fixed = reference_runner(fp32).fixed_batch
    batch = calibration_batch(recipe.calibration, len(calib), fixed)
    scheme = target.quant_scheme(options)
    # layers are compared by tensor name with fp32: no step may rescale those tensors here
    plain = dataclasses.replace(recipe.int8, equalize=False, smooth=False)
    info = quantize_int8_static(fp32, qdq, calib, scheme, recipe.calibration, batch, config=plain)
    kept = {k["tensor"]: k["why"] for k in info["kept_float"] if "tensor" in k}
    runners = {"onnx fp32": reference_runner(fp32), "onnx q/dq": reference_runner(qdq)}
    if model.is_torch:
        runners = {"torch": torch_runner(model.module, specs), **runners}
    artifact, note = None, ONNX_IS_ARTIFACT
    if target.name != "onnx":
        artifact = target.lower(qdq, "int8", work, options)
        runners[f"{target.name} artifact"] = target.open_runner(artifact.path, 1, artifact.options)
    trace = partial(target.trace_layers, artifact) if artifact else None
    rows = layer_rows(fp32, onnx.load(str(raw)), qdq, calib, kept, batch, trace)
    if artifact is not None:
        traced = any(row.stages.get("artifact") for row in rows)
        proxy = runners[f"{target.name} artifact"].proxy_for
        note = artifact_note(target, traced, proxy, artifact)
    sample = calib.take(min(len(calib), STAGE_SAMPLES))
    stages = {name: _outputs(r, sample, fixed or 1) for name, r in runners.items()}
    return {
        "model": str(recipe.model),
        "target": target.name,
        "scheme": scheme.description,
        "calibration": recipe.calibration,
        "stages": stage_table(stages),
        "layers": [r.to_dict() for r in rows],
        "kept_float": info["kept_float"],
        "notes": [
            "Layers: each quantized tensor as the Q/DQ graph's readers get it (dequantized) "
            "and as the target's artifact holds it, against fp32 ONNX on the same samples; "
            "torch is compared on the model outputs (the export is checked there).",
            note,
        ],
    }


def _outputs(runner, data, batch: int) -> list:
    from compressor.debug import _outputs as gather

    return gather(runner.run, data, batch)


def render(result: dict, console: Console, top: int) -> None:
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


DEBUG_FLAGS = [
    flag(Recipe, "target"),
    flag(Recipe, "calib", required=True),
    flag(Recipe, "calib_samples"),
    click.option("--calibration", type=click.Choice(CALIBRATION_METHODS[1:]), default="minmax"),
]
TARGET_OPTIONS = flag(Recipe, "target_options")


@click.command("debug")
@click.argument("model")
@options(
    [
        *DEBUG_FLAGS,
        click.option(
            "--precision", type=click.Choice(["int8"]), default="int8", help="Only int8 today."
        ),
        TARGET_OPTIONS,
    ],
    field_default=True,
)
@click.option("--top", type=int, default=15, help="Rows of the layer table on the terminal.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write all rows here.")
@click.option("--html", "html_path", type=click.Path(path_type=Path), help="Write an HTML page.")
@handle_errors
def debug_command(model: str, **flags: object) -> None:
    """Find the layers int8 breaks: per layer SQNR, ranges and outlier channels, worst first."""
    settings = fields_of(Recipe, [*DEBUG_FLAGS, TARGET_OPTIONS], flags)
    recipe = Recipe(
        model=str(Path(model).absolute()),
        precision="int8",
        calibration=flags["calibration"],
        **settings,
    )
    with tempfile.TemporaryDirectory(prefix="compress-debug-") as tmp:
        result = run_debug(recipe, Path(tmp))
    render(result, CONSOLE, flags["top"])
    if flags["json_path"]:
        Path(flags["json_path"]).write_text(json.dumps(result, indent=1))
    if flags["html_path"]:
        Path(flags["html_path"]).write_text(html_page(result))
