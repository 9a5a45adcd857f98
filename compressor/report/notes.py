"""The notes of a compress report: what a reader should know about its numbers (speed against
fp32, an accuracy fall no budget gates, proxies, int8 that stayed large, lowering vs Q/DQ)."""

from __future__ import annotations

from compressor.judging.sections import QdqReference, Section
from compressor.report.schema import Report

SLOW_REASONS = {
    "int8": "On small tensors the Q/DQ conversions cost more than int8 kernels save.",
    "dynamic": "Quantizing activations at run time costs more than it saves on small MatMuls.",
    "fp16": "This CPU runtime has no fast fp16 kernels; fp16 mainly halves the size here.",
}


def verdict_notes(report: Report, no_eval: bool) -> list[str]:
    """Speed against fp32, an accuracy fall, missing eval data and proxies."""
    comp, ref = report.compressed, report.fp32_reference
    no_int8 = no_int8_note(report)
    notes = no_int8 + _speed_notes(report.precision, comp, ref, why=not no_int8)
    base_acc, comp_acc = report.baseline.accuracy, comp.accuracy
    if base_acc is not None and comp_acc is not None and base_acc - comp_acc > 0.05:
        gated = any(b.name == "max_accuracy_drop" for b in report.budgets)
        notes.append(
            f"WARNING: top-1 fell {100 * (base_acc - comp_acc):.1f} points "
            f"({100 * base_acc:.2f}% → {100 * comp_acc:.2f}%)"
            + ("." if gated else "; no --max-accuracy-drop budget gates this run.")
        )
    if no_eval:
        notes.append(
            "No --eval data: fidelity was measured on the calibration samples, "
            "or only latency and size when there were none."
        )
    if comp.proxy_for:
        arithmetic = (report.int8_arithmetic or {}).get("runtime_arithmetic")
        how = f"; int8 {arithmetic}" if arithmetic else ""
        notes.append(f"Measured in {comp.runtime} as a PROXY for {comp.proxy_for}{how}.")
    return notes + _budget_width_note(report)


def _budget_width_note(report: Report) -> list[str]:
    """Say so when the accuracy budget is narrower than the measured drop's own uncertainty."""
    ci = report.compressed.accuracy_drop_ci
    limits = [b.limit for b in report.budgets if b.name == "max_accuracy_drop"]
    if ci is None or not limits or (ci[1] - ci[0]) / 2 <= limits[0]:
        return []
    samples = report.compressed.eval_samples
    return [
        f"The {limits[0]:g}-point accuracy budget is narrower than the 95% interval of the "
        f"measured drop [{ci[0]:+.2f}, {ci[1]:+.2f}] points on {samples} samples: a few samples "
        "decide pass or fail. Give more --eval samples, or gate on fidelity (--min-sqnr)."
    ]


def no_int8_note(report: Report) -> list[str]:
    """An int8 run whose graph holds no Q/DQ at all (--auto or a plan kept every block float)."""
    info = report.passes.get("int8") or {}
    if report.precision != "int8" or info.get("quantize_nodes", 1) != 0:
        return []
    why = (
        "--auto kept every block float to meet the budgets"
        if info.get("tuning")
        else "every block was kept float (the recipe's int8_plan or the placement rules)"
    )
    return [
        f"WARNING: nothing is int8: {why}, so the artifact is the fp32 model (no int8 size or "
        "speed gain). Check the budget against the measured drop's interval, give more --eval "
        "samples, or compress without --auto and look at `compress debug`."
    ]


def _speed_notes(precision: str, comp: Section, ref: Section | None, why: bool = True) -> list[str]:
    """How the compressed artifact's p50 compares with fp32 in the same runtime."""
    if ref is None:
        return []
    mine, fp32 = round(comp.latency.p50, 4), round(ref.latency.p50, 4)
    if mine > fp32:
        return [
            f"{precision} is SLOWER than fp32 in {comp.runtime} here: p50 "
            f"{mine:.3f} ms vs {fp32:.3f} ms "
            f"({mine / fp32:.2f}× the fp32 time). {SLOW_REASONS.get(precision, '') if why else ''}"
        ]
    return [f"{precision} runs {fp32 / max(mine, 1e-9):.2f}× the speed of fp32 in {comp.runtime}."]


def size_note(report: Report) -> list[str]:
    """Say so when static int8 left most weights in float, and why."""
    comp = report.compressed
    fp32 = (report.fp32_reference or report.baseline).size_bytes
    info = report.passes.get("int8") or {}
    if report.precision != "int8" or comp.size_bytes <= 0.6 * fp32 or no_int8_note(report):
        return []
    ratio = comp.size_bytes / fp32
    if info.get("float_recurrent_ops"):
        why = "LSTM/GRU get no static Q/DQ; try --dynamic, which quantizes their weights."
    else:
        why = "on a model this small the Q/DQ scales and graph overhead outweigh the weights."
    return [f"int8 is {ratio:.0%} of the fp32 size: {why}"]


def qdq_note(target: str, qdq: QdqReference | None) -> list[str]:
    """The lowered int8 artifact against onnxruntime on the same Q/DQ graph, in one line."""
    if not qdq:
        return []
    worst = qdq.fidelity
    return [
        f"{target} int8 vs onnxruntime on the same Q/DQ graph: worst output "
        f"'{worst['worst_output']}' cosine {worst['cosine']:.5f}, "
        f"SQNR {worst['sqnr_db']} dB."
    ]
