"""`compress debug MODEL --target T --calib DATA`: which layer breaks int8, at every stage."""

from __future__ import annotations

import dataclasses
import html
import json
import tempfile
from pathlib import Path

import click
import onnx
from rich.console import Console
from rich.table import Table

from compressor.debug import layer_rows, stage_table
from compressor.export import export_onnx
from compressor.loading import load_model
from compressor.passes.cleanup import cleanup_onnx
from compressor.passes.quantize import quantize_int8_static
from compressor.recipe import Recipe
from targets.onnx.runner import OnnxRuntimeRunner
from targets.registry import get_target
from targets.torch import TorchRunner

STAGE_SAMPLES = 32


def run_debug(recipe: Recipe, work: Path) -> dict:
    """Quantize as `compress --int8` would and measure every layer and stage."""
    from compressor.pipeline import _load_data, calibration_batch

    target = get_target(recipe.target)
    options = target.parse_options(recipe.target_options)
    model = load_model(recipe.model, recipe.model_factory, recipe.trust_pickle)
    calib, _, specs = _load_data(recipe, model)
    raw = export_onnx(model, specs, work / "raw.onnx")
    fp32, qdq = work / "fp32.onnx", work / "int8.onnx"
    cleanup_onnx(raw, fp32)
    fixed = OnnxRuntimeRunner(fp32).fixed_batch
    batch = calibration_batch(recipe.calibration, len(calib), fixed)
    scheme = target.quant_scheme(options)
    # layers are compared by tensor name with fp32: no step may rescale those tensors here
    plain = dataclasses.replace(recipe.int8, equalize=False, smooth=False)
    info = quantize_int8_static(fp32, qdq, calib, scheme, recipe.calibration, batch, config=plain)
    kept = {k["tensor"]: k["why"] for k in info["kept_float"] if "tensor" in k}
    rows = layer_rows(fp32, onnx.load(str(raw)), qdq, calib, kept, batch)
    runners = {"onnx fp32": OnnxRuntimeRunner(fp32), "onnx q/dq": OnnxRuntimeRunner(qdq)}
    if model.is_torch:
        runners = {"torch": TorchRunner(model.module, specs), **runners}
    if target.name != "onnx":
        artifact = target.lower(qdq, "int8", work, options)
        runners[f"{target.name} artifact"] = target.open_runner(artifact.path)
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
            "Layers are compared between the fp32 and Q/DQ ONNX graphs (same tensor names); "
            "torch and the target artifact are compared on the model outputs.",
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
    for row in [r for r in result["layers"] if r["median_channel_sqnr_db"] < 20][:3]:
        console.print(
            f"[bold red]breaks int8:[/] {row['module']} ({row['node']}, tensor {row['tensor']}): "
            f"median channel SQNR {row['median_channel_sqnr_db']:.1f} dB; {row['fix']}",
            soft_wrap=True,
            highlight=False,
        )
    for kept in result["kept_float"]:
        console.print(f"kept float: {kept.get('tensor') or kept.get('node')}: {kept['why']}")


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
    cells = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row.values()) + "</tr>"
        for row in layers
    )
    head = "".join(f"<th>{html.escape(k)}</th>" for k in (layers[0] if layers else {}))
    return (
        f"<html><head><meta charset='utf-8'><title>compress debug</title></head><body>"
        f"<h1>{html.escape(result['model'])} → {html.escape(result['target'])}</h1>"
        f"<p>Median per-channel SQNR of int8 rounding by layer, worst first "
        f"(dashed line: 20 dB).</p>{svg}<table border='1'><tr>{head}</tr>{cells}</table>"
        f"<pre>{html.escape(json.dumps(result['stages'], indent=1))}</pre></body></html>"
    )


@click.command("debug")
@click.argument("model")
@click.option("--target", "-t", default="onnx", help="Deployment target (see `compress targets`).")
@click.option("--calib", required=True, help="Calibration data: .npz, image folder or entry point.")
@click.option("--calib-samples", type=int, default=None, help="Use at most N calibration samples.")
@click.option(
    "--calibration", type=click.Choice(["minmax", "entropy", "percentile"]), default="minmax"
)
@click.option("--precision", type=click.Choice(["int8"]), default="int8", help="Only int8 today.")
@click.option("--target-option", "-O", multiple=True, metavar="KEY=VALUE")
@click.option("--top", type=int, default=15, help="Rows of the layer table on the terminal.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write all rows here.")
@click.option("--html", "html_path", type=click.Path(path_type=Path), help="Write an HTML page.")
def debug_command(model: str, **flags: object) -> None:
    """Find the layers int8 breaks: per layer SQNR, ranges and outlier channels, worst first."""
    from compressor.cli import CONSOLE, _key_values, handle_errors

    @handle_errors
    def body() -> None:
        recipe = Recipe(
            model=str(Path(model).absolute()),
            target=flags["target"],
            precision="int8",
            calib=flags["calib"],
            calib_samples=flags["calib_samples"],
            calibration=flags["calibration"],
            target_options=_key_values(flags["target_option"]) or None,
        )
        with tempfile.TemporaryDirectory(prefix="compress-debug-") as tmp:
            result = run_debug(recipe, Path(tmp))
        render(result, CONSOLE, flags["top"])
        if flags["json_path"]:
            Path(flags["json_path"]).write_text(json.dumps(result, indent=1))
        if flags["html_path"]:
            Path(flags["html_path"]).write_text(html_page(result))

    body()
