"""Report notes that keep a verdict honest: an int8 run with nothing int8, a budget narrower
than the measured drop's own interval. Built from the golden example report."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from compressor.report.notes import no_int8_note, size_note, verdict_notes
from compressor.report.schema import Report

GOLDEN = json.loads((Path(__file__).parents[1] / "data" / "golden_example_report.json").read_text())


def _report(**changes: object) -> Report:
    data = copy.deepcopy(GOLDEN)
    for path, value in changes.items():
        *keys, last = path.split("__")
        node = data
        for key in keys:
            node = node[key]
        node[last] = value
    return Report.from_json_dict(data)


def test_an_int8_run_that_quantized_nothing_says_so_instead_of_blaming_small_tensors():
    info = {**GOLDEN["passes"]["int8"], "quantize_nodes": 0, "tuning": {"plan": ["a", "b"]}}
    fp32_size = GOLDEN["fp32_reference"]["size_bytes"]
    slow = GOLDEN["fp32_reference"]["latency_ms"]["p50"] * 1.05
    report = _report(
        passes__int8=info, compressed__size_bytes=fp32_size, compressed__latency_ms__p50=slow
    )
    notes = verdict_notes(report, no_eval=False)
    assert any("nothing is int8: --auto kept every block float" in n for n in notes)
    assert not any("small tensors" in n for n in notes)  # not the reason here
    assert size_note(report) == []  # the size note's "model this small" would mislead too
    plain = _report(passes__int8={**info, "tuning": None})
    assert "int8_plan" in no_int8_note(plain)[0]


def test_a_quantized_run_gets_no_such_warning():
    assert no_int8_note(_report()) == []
    assert not any("nothing is int8" in n for n in verdict_notes(_report(), no_eval=False))


def test_a_budget_inside_the_drop_interval_is_called_out():
    wide = _report(compressed__accuracy_drop_ci=[-0.17, 4.13])
    notes = verdict_notes(wide, no_eval=False)
    assert any("narrower than the 95% interval" in n and "[-0.17, +4.13]" in n for n in notes)
    narrow = _report(compressed__accuracy_drop_ci=[-0.5, 0.5])
    assert not any("narrower than" in n for n in verdict_notes(narrow, no_eval=False))
