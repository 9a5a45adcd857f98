"""Follow each layer through the chain: torch module → ONNX node → Q/DQ ONNX → target artifact.

Per quantized activation: the torch module it came from (the exporter's name scopes), its
calibrated range and outlier channels, the SQNR of int8 rounding alone (median and worst
channel), the SQNR the Q/DQ graph reaches at that tensor (error accumulated from upstream),
which rule kept it float, and what would fix it; per layer, the Q/DQ graph's and the target
artifact's own tensor against fp32 ONNX (debug_artifact.py). Whole-model stages are compared
on their outputs: torch vs fp32 ONNX, fp32 vs Q/DQ ONNX, Q/DQ ONNX vs the target's artifact.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import onnx

from calibration.activations import TensorStats, collect_stats
from calibration.dataset import Dataset
from compressor.debug.stages import artifact_note, layer_stages
from compressor.judging.fidelity import sqnr_db
from compressor.model.data import load_run_data
from compressor.model.export import export_onnx
from compressor.model.loading import load_model
from compressor.passes.cleanup import cleanup_onnx
from compressor.passes.quantize import quantize_int8_static
from compressor.pipeline.precision import calibration_batch
from compressor.recipe import Recipe
from compressor.tuning.sensitivity import BlockScore, block_sensitivity
from targets.base import TorchSource
from targets.registry import get_target, reference_runner, torch_runner

WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
OUTLIER_RATIO = 8.0  # a channel whose |max| is this many times the median channel's
STAGE_SAMPLES = 64
OUTPUT_SAMPLES = 32  # samples the whole-model stages are compared on
ONNX_IS_ARTIFACT = (
    "onnx: the artifact is the Q/DQ ONNX itself; its per-layer figures are the q/dq columns."
)


@dataclass(frozen=True)
class LayerRow:
    """One quantized activation, as the debug table shows it."""

    module: str
    node: str
    op: str
    tensor: str
    low: float
    high: float
    outliers: list[tuple[int, float]]
    rounding: BlockScore
    qdq_sqnr_db: float | None
    fix: str
    # {"qdq": match, "artifact": match with its op (None: no artifact stage)}: debug_artifact.py
    stages: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "module": self.module,
            "node": self.node,
            "op": self.op,
            "tensor": self.tensor,
            "range": [round(self.low, 6), round(self.high, 6)],
            "outlier_channels": [{"channel": c, "x_median": round(r, 1)} for c, r in self.outliers],
            **self.rounding.to_dict(),
            "qdq_sqnr_db": None if self.qdq_sqnr_db is None else round(self.qdq_sqnr_db, 2),
            "fix": self.fix,
            **self.stages,
        }


def module_scopes(raw: onnx.ModelProto) -> dict[str, str]:
    """{ONNX node name: torch module path} from the torch exporter's name-scope metadata."""
    scopes = {}
    for node in raw.graph.node:
        meta = {p.key: p.value for p in node.metadata_props}
        try:
            names = ast.literal_eval(meta.get("pkg.torch.onnx.name_scopes", "[]"))
        except (ValueError, SyntaxError):
            names = []
        modules = [n for n in names[:-1] if n]
        if modules:
            scopes[node.name] = modules[-1]
    return scopes


def source_layer(
    tensor: str, producer: dict, scopes: dict[str, str], weights: set[str]
) -> tuple[str, str]:
    """(torch module, ONNX node) of the weighted op that makes a tensor, through its activation,
    pooling and reshaping: the module is the weight's name (`features.0.weight` → features.0),
    which survives the Conv+BN fusion that folds two modules into one node."""
    node = producer.get(tensor)
    first = node
    for _ in range(4):
        if node is None or node.op_type in WEIGHTED_OPS:
            break
        data = [i for i in node.input if i and i not in weights]
        node = producer.get(data[0]) if data else None
    if node is None or node.op_type not in WEIGHTED_OPS:
        node = first
    if node is None:
        return "-", "(graph input)"
    weight = next((i for i in node.input[1:2] if i in weights), "")
    module = weight.removesuffix(".weight") if weight.endswith(".weight") else ""
    return module or scopes.get(node.name, "-"), node.name


def outlier_channels(stats: TensorStats | None) -> list[tuple[int, float]]:
    """Channels whose |max| is >= 8x the median channel's, widest first."""
    if stats is None or stats.channel_absmax is None or len(stats.channel_absmax) < 2:
        return []
    median = max(float(np.median(stats.channel_absmax)), 1e-12)
    ratios = stats.channel_absmax / median
    found = [(int(c), float(ratios[c])) for c in np.argsort(-ratios) if ratios[c] >= OUTLIER_RATIO]
    return found[:5]


def _tensor_sqnr(reference: np.ndarray, test: np.ndarray) -> float:
    ref = reference.astype(np.float64)
    return float(sqnr_db(np.mean(ref**2), np.mean((ref - test.astype(np.float64)) ** 2)))


def fix_for(row_score: BlockScore, outliers: list, kept: dict[str, str]) -> str:
    """What would fix this layer, in words: a rule already did, --auto, or nothing needed."""
    if row_score.tensor in kept:
        return f"kept float by rule: {kept[row_score.tensor]}"
    if row_score.median_channel_sqnr_db < 20 and outliers:
        channel = outliers[0][0]
        return f"outlier channel {channel}: --auto keeps this block float"
    if row_score.median_channel_sqnr_db < 20:
        return "--auto keeps this block float (or try --calibration entropy)"
    return "ok in int8"


def layer_rows(
    fp32: Path,
    raw: onnx.ModelProto,
    qdq: Path,
    calib: Dataset,
    kept: dict[str, str],
    batch: int = 16,
    trace: Callable[[dict], dict | None] | None = None,
) -> list[LayerRow]:
    """Every quantized activation of qdq, worst rounding SQNR first, with its Q/DQ stage and,
    where `trace(feeds)` reads them from the target's artifact, its artifact stage."""
    stats = collect_stats(fp32, calib, batch, histograms=False)
    scores = block_sensitivity(fp32, qdq, calib, batch)
    names = [s.tensor for s in scores]
    sample = calib.take(min(len(calib), STAGE_SAMPLES) // batch * batch or batch)
    stages = layer_stages(fp32, qdq, sample, names, batch, trace)
    scopes = module_scopes(raw)
    graph = onnx.load(str(fp32)).graph
    producer = {o: n for n in graph.node for o in n.output}
    weights = {i.name for i in graph.initializer}
    rows = []
    for score in scores:
        module, name = source_layer(score.tensor, producer, scopes, weights)
        node = producer.get(score.tensor)
        outliers = outlier_channels(stats.get(score.tensor))
        s = stats.get(score.tensor, TensorStats(0.0, 0.0))
        rows.append(
            LayerRow(
                module,
                name,
                node.op_type if node is not None else "input",
                score.tensor,
                s.lowest,
                s.highest,
                outliers,
                score,
                stages[score.tensor]["qdq"].get("sqnr_db"),
                fix_for(score, outliers, kept),
                stages[score.tensor],
            )
        )
    return rows


def _outputs(runner_run, data: Dataset, batch: int) -> list[np.ndarray]:
    parts = [runner_run(inputs) for inputs, _ in data.batches(batch)]
    names = list(parts[0])
    return [np.concatenate([p[n] for p in parts]) for n in names]


def stage_table(stages: dict[str, list[np.ndarray]]) -> list[dict]:
    """Output SQNR and cosine between consecutive stages (and of each stage vs the first)."""
    names = list(stages)
    rows = []
    for i in range(1, len(names)):
        for ref_name in dict.fromkeys([names[i - 1], names[0]]):
            ref, out = stages[ref_name], stages[names[i]]
            sqnr = min(_tensor_sqnr(r, o) for r, o in zip(ref, out, strict=True))
            cos = min(_tensor_cosine(r, o) for r, o in zip(ref, out, strict=True))
            rows.append(
                {
                    "stage": names[i],
                    "against": ref_name,
                    "sqnr_db": round(sqnr, 2),
                    "cosine": round(cos, 5),
                }
            )
    return rows


def _tensor_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.reshape(-1).astype(np.float64), b.reshape(-1).astype(np.float64)
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-30))


@dataclass(frozen=True)
class _Graphs:
    """The exported, cleaned and quantized graphs of one debug run."""

    raw: Path
    fp32: Path
    qdq: Path
    fixed_batch: int | None
    batch: int
    kept_float: list


def run_debug(recipe: Recipe, work: Path) -> dict:
    """Quantize as `compress --int8` would and measure every layer and stage."""
    target = get_target(recipe.target)
    options = target.parse_options(recipe.target_options)
    model = load_model(recipe.model, recipe.model_factory, recipe.trust_pickle)
    calib, _, specs = load_run_data(recipe, model)
    scheme = target.quant_scheme(options)
    graphs = _quantize(recipe, scheme, model, specs, calib, work)
    kept = {k["tensor"]: k["why"] for k in graphs.kept_float if "tensor" in k}
    sample = calib.repeated(graphs.fixed_batch or 1)  # real inputs, for targets lowering from torch
    runners, artifact = _stage_runners(target, options, model, specs, graphs, work, scheme, sample)
    trace = partial(target.trace_layers, artifact) if artifact else None
    raw = onnx.load(str(graphs.raw))
    rows = layer_rows(graphs.fp32, raw, graphs.qdq, calib, kept, graphs.batch, trace)
    note = ONNX_IS_ARTIFACT
    if artifact is not None:
        traced = any(row.stages.get("artifact") for row in rows)
        proxy = runners[f"{target.name} artifact"].proxy_for
        note = artifact_note(target, traced, proxy, artifact)
    sample = calib.take(min(len(calib), OUTPUT_SAMPLES))
    batch = graphs.fixed_batch or 1
    stages = {name: _outputs(r.run, sample, batch) for name, r in runners.items()}
    return _result(recipe, target.name, scheme, stages, rows, graphs, note)


def _quantize(recipe: Recipe, scheme, model, specs, calib: Dataset, work: Path) -> _Graphs:
    """Export, clean up and quantize with the target's scheme, as `compress --int8` does."""
    raw = export_onnx(model, specs, work / "raw.onnx")
    fp32, qdq = work / "fp32.onnx", work / "int8.onnx"
    cleanup_onnx(raw, fp32)
    fixed = reference_runner(fp32).fixed_batch
    batch = calibration_batch(recipe.calibration, len(calib), fixed)
    # layers are compared by tensor name with fp32: no step may rescale those tensors here
    plain = dataclasses.replace(recipe.int8, equalize=False, smooth=False)
    info = quantize_int8_static(fp32, qdq, calib, scheme, recipe.calibration, batch, config=plain)
    return _Graphs(raw, fp32, qdq, fixed, batch, info["kept_float"])


def _stage_runners(
    target, options, model, specs, graphs: _Graphs, work: Path, scheme, sample: dict | None = None
) -> tuple:
    """A runner per stage (torch, fp32 ONNX, Q/DQ ONNX in the scheme's int8 arithmetic, the
    target's artifact) and the artifact."""
    arithmetic = scheme.arithmetic
    runners = {
        "onnx fp32": reference_runner(graphs.fp32),
        "onnx q/dq": reference_runner(graphs.qdq, arithmetic=arithmetic),
    }
    if model.is_torch:
        runners = {"torch": torch_runner(model.module, specs), **runners}
    artifact = None
    if not target.capabilities.runs_qdq_graph:
        source = TorchSource(model.module, tuple(specs), sample) if model.is_torch else None
        artifact = target.bind_torch(source).lower(graphs.qdq, "int8", work, options)
        runners[f"{target.name} artifact"] = target.open_runner(artifact.path, 1, artifact.options)
    return runners, artifact


def _result(
    recipe: Recipe, target: str, scheme, stages: dict, rows: list, graphs: _Graphs, note: str
) -> dict:
    """The JSON-able result that `render` and `html_page` show."""
    return {
        "model": str(recipe.model),
        "target": target,
        "scheme": scheme.description,
        "arithmetic": scheme.arithmetic,
        "calibration": recipe.calibration,
        "stages": stage_table(stages),
        "layers": [r.to_dict() for r in rows],
        "kept_float": graphs.kept_float,
        "notes": [
            "Layers: each quantized tensor as the Q/DQ graph's readers get it (dequantized) "
            "and as the target's artifact holds it, against fp32 ONNX on the same samples; "
            "torch is compared on the model outputs (the export is checked there).",
            "The Q/DQ graph's outputs are computed in the scheme's int8 arithmetic "
            "(the target scheme's most demanding), not on this CPU's own kernels.",
            note,
        ],
    }
