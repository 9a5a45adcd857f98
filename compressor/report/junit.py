"""JUnit XML for CI: one testcase per budget, failures carry the measured value and the limit."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from compressor.report.schema import Report
from compressor.report.staging import staged_file

SUITE = "compress verify"
# Budgets named max_* fail above their limit, min_* below it.
COMPARATORS = {"max": ">", "min": "<"}


def failure_message(budget: dict) -> str:
    """One line a CI page shows: which budget, what was measured, what the limit is."""
    unit = f" {budget['unit']}" if budget.get("unit") else ""
    if budget["value"] is None:
        return f"{budget['name']}: not measured ({budget.get('note') or 'no data'}); limit {budget['limit']}{unit}"
    sign = COMPARATORS.get(budget["name"].split("_", 1)[0], "vs")
    return (
        f"{budget['name']}: measured {budget['value']}{unit} {sign} limit {budget['limit']}{unit}"
    )


def junit_tree(report: dict, elapsed_s: float) -> ET.ElementTree:
    """A <testsuites> tree for a verify report; an empty budget list gives one 'artifact_runs' case."""
    budgets = report["budgets"] or [
        {"name": "artifact_runs", "limit": None, "value": None, "passed": True, "unit": ""}
    ]
    failures = sum(not b["passed"] for b in budgets)
    root = ET.Element("testsuites", tests=str(len(budgets)), failures=str(failures))
    suite = ET.SubElement(
        root,
        "testsuite",
        name=SUITE,
        tests=str(len(budgets)),
        failures=str(failures),
        errors="0",
        skipped="0",
        time=f"{elapsed_s:.3f}",
    )
    props = ET.SubElement(suite, "properties")
    for key in ("artifact", "model", "target", "precision", "against"):
        if report.get(key):
            ET.SubElement(props, "property", name=key, value=str(report[key]))
    classname = f"compress.verify.{Path(report['artifact']).name}"
    for budget in budgets:
        case = ET.SubElement(suite, "testcase", classname=classname, name=budget["name"], time="0")
        if not budget["passed"]:
            failure = ET.SubElement(
                case, "failure", message=failure_message(budget), type="BudgetExceeded"
            )
            failure.text = (
                f"measured: {budget['value']}\nlimit: {budget['limit']}\nunit: {budget.get('unit', '')}\n"
                + (f"note: {budget['note']}\n" if budget.get("note") else "")
            )
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(report: Report, path: Path, elapsed_s: float = 0.0) -> None:
    """Write the JUnit XML to a temp file beside path, then move it into place."""
    with staged_file(path) as out:
        junit_tree(report.to_json_dict(), elapsed_s).write(
            out, encoding="utf-8", xml_declaration=True
        )
