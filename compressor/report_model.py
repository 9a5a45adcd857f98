"""The typed report of `compress` and `compress verify`: frozen records, JSON only at the edge.

`to_json_dict()` gives report.json's form with the key order and names of schema 2, and
`Report.from_json_dict` reads that form back (compressor/run_record.py reads stored runs)."""

from __future__ import annotations

from dataclasses import dataclass, field

from compressor.budget import BudgetResult
from compressor.latency import LatencyStats
from compressor.outputs import OutputRecord


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


@dataclass(frozen=True)
class Report:
    """One run's verdict and measurements; `command` says which keys its JSON carries."""

    command: str  # "compress" (report.json) or "verify" (verify --json); not written
    schema_version: int  # report.json schema (2: per-output records, floor, sources, --metric)
    passed: bool  # every budget, given or default, measured and met
    target: str  # target name (onnx, tflite, tensorrt, ...)
    precision: str | None  # fp32, fp16, int8, dynamic (None when verify cannot tell)
    artifact: str  # compress: artifact file name; verify: its path
    model: str  # the input model (compress) or --baseline (verify)
    baseline: Section  # the input model measured in its runtime
    compressed: Section  # the artifact measured in its runtime, with per-output records
    budgets: tuple[BudgetResult, ...]  # every budget row with value, limit and source
    notes: tuple[str, ...] = ()  # what a reader should know about the numbers
    against: str | None = None  # verify: the stored report compared with
    fp32_reference: Section | None = None  # compress: fp32 lowered for the same target
    environment: dict[str, str] | None = None  # compress: library versions and machine
    passes: dict = field(default_factory=dict)  # compress: what each pass did
    qdq_reference: QdqReference | None = None  # compress int8 off onnx: lowering vs Q/DQ
    extra_files: tuple[str, ...] = ()  # compress: files shipped beside the artifact
    artifact_info: dict = field(default_factory=dict)  # compress: the target's artifact facts
    elapsed_s: float | None = None  # compress: whole run, seconds
    conversion_s: float | None = None  # compress: export to lowered artifact, seconds
    # int8: the CPU profile verified, the host's int8 features and each arithmetic's figures
    int8_arithmetic: dict | None = None

    def to_json_dict(self) -> dict:
        """report.json's (or verify --json's) form, keys in the order schema 2 writes them."""
        head = {
            "schema_version": self.schema_version,
            "passed": self.passed,
            "target": self.target,
            "precision": self.precision,
            "artifact": self.artifact,
            "model": self.model,
        }
        if self.command == "verify":
            head["against"] = self.against
        head["baseline"] = self.baseline.to_json_dict()
        head["compressed"] = self.compressed.to_json_dict()
        if self.fp32_reference is not None:
            head["fp32_reference"] = self.fp32_reference.to_json_dict()
        head["budgets"] = [b.to_dict() for b in self.budgets]
        head["notes"] = list(self.notes)
        if self.command == "verify":
            return head | self._arithmetic()
        return head | self._compress_tail()

    @classmethod
    def from_json_dict(cls, data: dict) -> Report:
        """A report from report.json's (or verify --json's) form; KeyError, TypeError or
        ValueError when it is not that form (an edited file, another tool's JSON)."""
        optional = {"fp32_reference": Section, "qdq_reference": QdqReference}
        sections = {k: t.from_json_dict(data[k]) for k, t in optional.items() if data.get(k)}
        return cls(
            command="verify" if "against" in data else "compress",
            schema_version=data["schema_version"],
            passed=data["passed"],
            target=data["target"],
            precision=data["precision"],
            artifact=data["artifact"],
            model=data["model"],
            baseline=Section.from_json_dict(data["baseline"]),
            compressed=Section.from_json_dict(data["compressed"]),
            budgets=tuple(BudgetResult.from_dict(b) for b in data["budgets"]),
            notes=tuple(data.get("notes", ())),
            against=data.get("against"),
            environment=data.get("environment"),
            passes=dict(data.get("passes") or {}),
            extra_files=tuple(data.get("extra_files", ())),
            artifact_info=dict(data.get("artifact_info") or {}),
            elapsed_s=data.get("elapsed_s"),
            conversion_s=data.get("conversion_s"),
            int8_arithmetic=data.get("int8_arithmetic"),
            **sections,
        )

    def _arithmetic(self) -> dict:
        """The `int8_arithmetic` key, only when int8 was measured in its arithmetics."""
        return {} if self.int8_arithmetic is None else {"int8_arithmetic": self.int8_arithmetic}

    def _compress_tail(self) -> dict:
        tail: dict = {"environment": self.environment, "passes": self.passes}
        if self.qdq_reference is not None:
            tail["qdq_reference"] = self.qdq_reference.to_json_dict()
        tail |= self._arithmetic()
        return tail | {
            "extra_files": list(self.extra_files),
            "artifact_info": self.artifact_info,
            "elapsed_s": self.elapsed_s,
            "conversion_s": self.conversion_s,
        }
