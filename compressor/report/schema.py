"""The typed report of `compress` and `compress verify`: frozen records, JSON only at the edge.

`to_json_dict()` gives report.json's form with the key order and names of schema 2, and
`Report.from_json_dict` reads that form back (compressor/report/run_record.py reads stored runs)."""

from __future__ import annotations

from dataclasses import dataclass, field

from compressor.judging.budget import BudgetResult
from compressor.judging.sections import QdqReference, Section


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
