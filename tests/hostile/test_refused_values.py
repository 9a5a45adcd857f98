"""Values that were accepted where exit 2 is due: non-finite --preprocess values in every spelling,
--preprocess JSON of any type, recipe lists of the wrong items, sweep names with a trailing
newline, and a stored p50 below zero."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.hostile.cli_harness import assert_clean_refusal, run_cli, snapshot

NON_FINITE = ["nan", "NaN", "-nan", "inf", "-inf", "+inf", "Infinity", "-Infinity", "INF",
              " inf ", "infinity", "1e999", "-1e999", "[1, NaN]", "[1, 1e999]", '"nan"', '["inf"]']  # fmt: skip


@pytest.fixture()
def run_dir(compressed: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(compressed, tmp_path / "out"))


def _package(run_dir: Path, tmp_path: Path, *preprocess: object):
    flags = [a for p in preprocess for a in ("--preprocess", p)]
    return run_cli("package", run_dir, "-o", tmp_path / "b.tar.gz", *flags)


@pytest.mark.parametrize("value", NON_FINITE)
def test_package_preprocess_scale_is_finite_in_every_spelling(run_dir, tmp_path, value):
    before = snapshot(tmp_path)
    result = _package(run_dir, tmp_path, f"scale={value}")
    assert_clean_refusal(result, 2, "--preprocess")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "spec",
    [
        {"mean": {"a": 1}},
        {"mean": [[0.5]]},
        {"mean": [None, {"x": 1}]},
        {"scale": "nan"},
        {"scale": 1e308 * 10},
        {"": 1},
        {"x" * 100: 1},
        {"layout": "x" * 5000},
        {"mean": list(range(100))},
    ],
    ids=["table", "nested-list", "list-of-table", "text-nan", "json-inf", "empty-key", "long-key",
         "long-text", "long-list"],
)  # fmt: skip
def test_package_preprocess_json_of_the_wrong_types_is_refused(run_dir, tmp_path, spec):
    prep = tmp_path / "prep.json"
    prep.write_text(json.dumps(spec).replace("Infinity", "1e999"))
    before = snapshot(tmp_path)
    result = _package(run_dir, tmp_path, prep)
    assert_clean_refusal(result, 2, "--preprocess")
    assert snapshot(tmp_path) == before


def test_package_preprocess_of_plain_values_still_works(run_dir, tmp_path):
    prep = tmp_path / "prep.json"
    prep.write_text(json.dumps({"mean": [0.485, 0.456, 0.406], "layout": "NCHW", "rgb": True}))
    result = _package(run_dir, tmp_path, prep, "scale=1/255", "std=[0.2,0.2,0.2]")
    assert result.exit_code == 0, result.output
    from compressor.bundle.archive import check_bundle

    manifest = check_bundle(tmp_path / "b.tar.gz").manifest
    assert manifest["preprocessing"]["scale"] == "1/255"
    assert manifest["preprocessing"]["mean"] == [0.485, 0.456, 0.406]


@pytest.mark.parametrize(
    "line", ["int8_plan = [1, 2]", "int8_fp16 = [{}]", "int8_plan = [[]]", "int8_fp16 = [true]"]
)
def test_recipe_lists_of_the_wrong_items_are_refused(digits, tmp_path, line):
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'model = "{digits["model"]}"\n{line}\n')
    before = snapshot(tmp_path)
    result = run_cli("--recipe", recipe, "-o", tmp_path / "out")
    assert_clean_refusal(result, 2, line.split(" ")[0], "tuple[str, ...]")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("where", ["model name", "job id", "variant name"])
def test_sweep_names_ending_in_a_newline_are_refused(digits, tmp_path, where):
    model = "d\n" if where == "model name" else "d"
    lines = [f'[[models]]\nname = {json.dumps(model)}\nmodel = "{digits["model"]}"']
    if where == "variant name":
        lines.append('[[variants]]\nname = "v\\n"\nruns = 3')
    lines.append('[grid]\ntargets = ["onnx"]\nprecisions = ["fp32"]')
    if where == "job id":
        lines.append('[[jobs]]\nmodel = "d"\ntarget = "onnx"\nprecision = "fp32"\nid = "j\\n"')
    sweep = tmp_path / "sweep.toml"
    sweep.write_text("\n".join(lines) + "\n")
    before = snapshot(tmp_path)
    result = run_cli("sweep", sweep, "-o", tmp_path / "out", "--workers", "1")
    assert_clean_refusal(result, 2, "must be letters, digits")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "section, value",
    [("compressed", -1), ("baseline", -1), ("compressed", -0.5), ("baseline", "1")],
)
def test_a_stored_p50_below_zero_is_refused(compressed, digits, tmp_path, section, value):
    report = json.loads((compressed / "report.json").read_text())
    report.setdefault(section, {}).setdefault("latency_ms", {})["p50"] = value
    stored = tmp_path / "stored.json"
    stored.write_text(json.dumps(report))
    result = run_cli(
        "verify", compressed / "model.onnx", "--baseline", digits["model"], "--against", stored
    )
    assert_clean_refusal(result, 2, f"{section}.latency_ms.p50")


AGAINST_FIELDS = ["compressed.size_bytes", "compressed.accuracy", "compressed.latency_ms.p50",
                  "baseline.latency_ms.p50", "compressed.outputs", "compressed.latency_ms"]  # fmt: skip
RIGHT_FORM = {("compressed.outputs", "[]"), ("compressed.latency_ms", "{}")}


@pytest.mark.parametrize(
    "where, value",
    [(w, v) for w in AGAINST_FIELDS for v in ('"x"', "{}", "[]", "true", "deep")
     if (w, v) not in RIGHT_FORM],
)  # fmt: skip
def test_against_values_of_the_wrong_form_exit_2(compressed, digits, tmp_path, where, value):
    report = json.loads((compressed / "report.json").read_text())
    *parents, last = where.split(".")
    node = report
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = "__VALUE__"
    text = "[" * 1000 + "1" + "]" * 1000 if value == "deep" else value
    stored = tmp_path / "stored.json"
    stored.write_text(json.dumps(report).replace('"__VALUE__"', text))
    result = run_cli(
        "verify", compressed / "model.onnx", "--baseline", digits["model"], "--against", stored
    )
    assert_clean_refusal(result, 2, "levels deep" if value == "deep" else where)
