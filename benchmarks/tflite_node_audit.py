"""Audit: onnx's own node test cases for every op the tflite target lowers, on both resolvers.

python -m benchmarks.tflite_node_audit [OP ...] [--show ok|refused|wrong|all]

Each single-node case of `onnx.backend.test.case.node` (installed with onnx; its expected
outputs come from onnx's reference code) whose op is in `rules.RULES` is lowered to .tflite
as it is, then, if that fails, with every input after the first as a constant (as a zoo graph
holds its weights, pads and axes). Each file runs on both LiteRT resolvers and is compared
with the expected outputs (1e-4 of the output magnitude, 1e-3 relative). A case ends `ok`,
`refused` (a CompressError naming what is not lowered) or `wrong` — the count that must be 0.
"""

from __future__ import annotations

import argparse
import collections
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.backend.test.case.node import collect_testcases

from foundation.errors import CompressError
from targets.tflite.lower import lower_onnx
from targets.tflite.options import TfliteOptions
from targets.tflite.rules import RULES
from targets.tflite.runner import LiteRtRunner


def with_constants(model: onnx.ModelProto, inputs: list, keep: set[int]) -> tuple:
    """The model with inputs not in `keep` turned into initializers, and the feeds left."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    graph, feeds, kept = copy.graph, {}, []
    for index, (info, array) in enumerate(zip(list(graph.input), inputs, strict=False)):
        if index in keep:
            kept.append(info)
            feeds[info.name] = array
        else:
            graph.initializer.append(numpy_helper.from_array(array, info.name))
    del graph.input[:]
    graph.input.extend(kept)
    return copy, feeds


def mismatches(model: onnx.ModelProto, feeds: dict, expected: list, work: Path) -> list[str]:
    """Lower, run on both resolvers, and list what differs from the expected outputs."""
    path = work / "case.tflite"
    path.write_bytes(lower_onnx(model, "fp32", TfliteOptions()).builder.to_bytes())
    found = []
    for resolver in ("default", "builtin"):
        runner = LiteRtRunner(path, 1, resolver)
        got = runner.run(feeds)
        for spec, want in zip(runner.outputs, expected, strict=False):
            have = np.asarray(got[spec.name])
            if have.shape != want.shape:
                found.append(f"{resolver}: shape {have.shape} vs {want.shape}")
            elif want.dtype.kind in "fc":
                scale = max(float(np.abs(want).max()) if want.size else 1.0, 1.0)
                close = np.isclose(have, want, atol=1e-4 * scale, rtol=1e-3, equal_nan=True)
                if not close.all():
                    found.append(f"{resolver}: max err {np.nanmax(np.abs(have - want)):.3g}")
            elif not np.array_equal(have, want):
                found.append(f"{resolver}: values differ")
    return found


def audit_case(case, work: Path) -> str:
    """'ok', 'ok (params as constants)', 'refused: …' or 'wrong: …' for one test case."""
    inputs, outputs = case.data_sets[0]
    status = "refused: no attempt"
    for keep in (set(range(len(inputs))), {0}):
        try:
            model, feeds = with_constants(case.model, inputs, keep)
        except (TypeError, ValueError, AttributeError):
            break  # inputs numpy cannot store as initializers (float8, int4): keep the status
        try:
            errors = mismatches(model, feeds, outputs, work)
            status = "wrong: " + "; ".join(errors) if errors else "ok"
        except CompressError as exc:
            status = f"refused: {exc}"
        except (RuntimeError, ValueError) as exc:  # LiteRT failing to run the file
            status = f"wrong: LiteRT failed: {str(exc)[:120]}"
        if status == "ok":
            return "ok" if len(keep) == len(inputs) else "ok (params as constants)"
    return status


def main() -> None:
    """Print each case's outcome and the totals."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ops", nargs="*", help="only these ONNX ops (default: every rule's op)")
    parser.add_argument("--show", default="all", choices=["ok", "refused", "wrong", "all"])
    args = parser.parse_args()
    ops = set(args.ops) or set(RULES)
    cases = [
        c
        for c in collect_testcases(None)
        if c.kind == "node"
        and len(c.model.graph.node) == 1
        and c.model.graph.node[0].op_type in ops
    ]
    totals: collections.Counter = collections.Counter()
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            status = audit_case(case, Path(tmp))
            kind = status.split()[0].rstrip(":")
            totals[kind] += 1
            if args.show in ("all", kind):
                print(f"{case.model.graph.node[0].op_type:20s} {case.name:58s} {status[:160]}")
    print(dict(totals))


if __name__ == "__main__":
    main()
