"""What one runner measured (a report section) and the lowered artifact against its Q/DQ graph:
the records the judging steps fill and the report carries (report/ stands on these, not the
reverse)."""

from __future__ import annotations

from dataclasses import dataclass

from compressor.judging.latency import LatencyStats
from compressor.judging.output_records import OutputRecord


def _records(records: tuple[OutputRecord, ...] | None) -> list[dict] | None:
    return None if records is None else [r.to_dict() for r in records]


def _typed_records(rows: list[dict] | None) -> tuple[OutputRecord, ...] | None:
    return None if rows is None else tuple(OutputRecord.from_dict(r) for r in rows)


@dataclass(frozen=True)
class Section:
    """What was measured for one runner (baseline, fp32 reference or compressed artifact)."""

    runtime: str  # the runtime that ran it (onnxruntime, litert, torch, ...)
    proxy_for: str | None  # the runtime it stands in for when timed by proxy
    accuracy: float | None  # top-1 on labelled eval data, else None
    eval_samples: int | None  # samples evaluated, None without data
    size_bytes: int  # size of the file(s) measured
    latency: LatencyStats  # batch-1 latency stats (JSON key latency_ms)
    compared: bool = False  # True for the artifact's section: carries the fields below
    outputs: tuple[OutputRecord, ...] | None = None  # every output against the baseline's
    fidelity: dict | None = None  # the worst output's cosine/SQNR summary
    accuracy_drop_ci: tuple[float, float] | None = None  # 95% CI of the top-1 drop, points
    metric: float | None = None  # the user --metric's score
    metric_name: str | None = None  # the --metric pkg.module:function; None when not scored
    outputs_vs_student: tuple[OutputRecord, ...] | None = None  # vs the fp32 after torch passes
    size_of: str | None = None  # verify: the file whose size is size_bytes

    def to_json_dict(self) -> dict:
        """The report.json section."""
        out = {
            "runtime": self.runtime,
            "proxy_for": self.proxy_for,
            "accuracy": self.accuracy,
            "eval_samples": self.eval_samples,
            "size_bytes": self.size_bytes,
            "latency_ms": self.latency.to_dict(),
        }
        if self.compared:
            out["outputs"] = _records(self.outputs)
            out["fidelity"] = self.fidelity
            ci = self.accuracy_drop_ci
            out["accuracy_drop_ci"] = None if ci is None else list(ci)
        if self.metric_name is not None:
            out["metric"], out["metric_name"] = self.metric, self.metric_name
        if self.outputs_vs_student is not None:
            out["outputs_vs_student"] = _records(self.outputs_vs_student)
        if self.size_of is not None:
            out["size_of"] = self.size_of
        return out

    @classmethod
    def from_json_dict(cls, data: dict) -> Section:
        """The section from its report.json form (compared when it carries `outputs`)."""
        ci = data.get("accuracy_drop_ci")
        return cls(
            runtime=data["runtime"],
            proxy_for=data["proxy_for"],
            accuracy=data["accuracy"],
            eval_samples=data["eval_samples"],
            size_bytes=data["size_bytes"],
            latency=LatencyStats.from_dict(data["latency_ms"]),
            compared="outputs" in data,
            outputs=_typed_records(data.get("outputs")),
            fidelity=data.get("fidelity"),
            accuracy_drop_ci=None if ci is None else tuple(ci),
            metric=data.get("metric"),
            metric_name=data.get("metric_name"),
            outputs_vs_student=_typed_records(data.get("outputs_vs_student")),
            size_of=data.get("size_of"),
        )


@dataclass(frozen=True)
class QdqReference:
    """The lowered int8 artifact against onnxruntime running the same Q/DQ graph."""

    runtime: str  # "onnxruntime (Q/DQ)"
    fidelity: dict  # worst-output summary (cosine, sqnr_db, max_abs_error, worst_output, top1)
    outputs: tuple[OutputRecord, ...]  # every output of the lowered artifact vs the Q/DQ graph

    def to_json_dict(self) -> dict:
        """The report.json `qdq_reference` section."""
        return {"runtime": self.runtime, **self.fidelity, "outputs": _records(self.outputs)}

    @classmethod
    def from_json_dict(cls, data: dict) -> QdqReference:
        """The section from its report.json form."""
        fidelity = {k: v for k, v in data.items() if k not in ("runtime", "outputs")}
        return cls(data["runtime"], fidelity, _typed_records(data["outputs"]))
