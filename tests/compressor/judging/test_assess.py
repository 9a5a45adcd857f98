"""compressor/judging/assess.py judging every output (in compress and compress verify): dead detection
scores, a 1000-class classifier's quiet classes and a broken class, a broken second head,
--against per output, the default floor and the user's --metric."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

METRICS = Path(__file__).parent  # holds user_metrics.py, the metric functions these tests ship


class BoxesAndScores(nn.Module):
    """A detection head: box coordinates in pixels (0..300) and sigmoid class scores,
    concatenated along the channel axis as [B, 4 + 3, anchors]."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Conv1d(8, 16, 1)
        self.boxes = nn.Conv1d(16, 4, 1)
        self.scores = nn.Conv1d(16, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.trunk(x))
        return torch.cat([300 * torch.sigmoid(self.boxes(h)), torch.sigmoid(self.scores(h))], 1)


class TwoHeads(nn.Module):
    """Class logits and a 6-d auxiliary vector from one trunk."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Linear(12, 32)
        self.logits = nn.Linear(32, 10)
        self.aux = nn.Linear(32, 6)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.relu(self.trunk(x))
        return self.logits(h), self.aux(h)


class ManyClasses(nn.Module):
    """1000 class logits, 24 of them loud (the classes the eval data shows) and the rest quiet,
    each with its own small spread, as a real ImageNet head's logits are on a few photos."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Linear(16, 64)
        self.fc = nn.Linear(64, 1000)
        spread = np.exp(np.random.default_rng(0).uniform(np.log(0.05), np.log(1.0), 1000))
        spread[:24] = 4.0
        with torch.no_grad():
            self.fc.weight.mul_(torch.from_numpy(spread).float()[:, None])
            self.fc.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.trunk(x)))


def _save(module: nn.Module, example: torch.Tensor, path: Path) -> Path:
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(module.eval(), (example,), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(path))
    return path


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("detector")
    torch.manual_seed(0)
    x = np.random.default_rng(0).normal(size=(96, 8, 40)).astype(np.float32)
    model = _save(BoxesAndScores(), torch.from_numpy(x[:2]), folder / "detector.pt2")
    np.savez(folder / "calib.npz", x=x[:64])
    np.savez(folder / "eval.npz", x=x[64:])
    return {"model": model, "calib": folder / "calib.npz", "eval": folder / "eval.npz"}


def test_int8_detector_with_dead_scores_is_never_passed(
    detector: dict, tmp_path: Path, cli
) -> None:
    out = tmp_path / "out"
    args = [detector["model"], "--int8", "--calib", detector["calib"], "--eval", detector["eval"]]
    result = cli([*args, "--task", "detect", "--runs", "3", "--warmup", "0", "-o", out])
    report = json.loads((out / "report.json").read_text())
    (record,) = report["compressed"]["outputs"]
    assert record["task"] == "detect" and "--task detect" in record["rule"]
    assert record["fidelity"]["channels"] == 7
    scores_kept = record["fidelity"]["worst_channel_sqnr_db"] >= 10
    if scores_kept:  # the quantizer kept the small-range scores: a pass is then earned
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 1, result.output
    assert report["passed"] is False and "PASSED" not in result.output
    assert record["fidelity"]["worst_channel"] >= 4  # a score channel, not a box channel
    failed = {b["name"]: b for b in report["budgets"] if not b["passed"]}
    assert failed["min_channel_sqnr"]["source"] == "default"
    assert "channel" in failed["min_channel_sqnr"]["note"]


def test_floor_can_be_switched_off_and_says_so(detector: dict, tmp_path: Path, cli) -> None:
    out = tmp_path / "out"
    args = [detector["model"], "--int8", "--calib", detector["calib"], "--eval", detector["eval"]]
    result = cli([*args, "--no-default-floor", "--runs", "3", "--warmup", "0", "-o", out])
    report = json.loads((out / "report.json").read_text())
    assert result.exit_code == 0, result.output
    assert report["budgets"] == [] and report["schema_version"] == 2
    (record,) = report["compressed"]["outputs"]
    assert record["task"] == "detect" and "scores in [0, 1]" in record["rule"]  # inferred


@pytest.fixture(scope="module")
def many_classes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """good.pt2; broken.pt2, whose loudest class row has half its weights; calib data; eval
    data with labels (the fp32 top-1) and without."""
    folder = tmp_path_factory.mktemp("many-classes")
    torch.manual_seed(0)
    good = ManyClasses().eval()
    x = np.random.default_rng(0).normal(size=(160, 16)).astype(np.float32)
    with torch.no_grad():
        logits = good(torch.from_numpy(x[64:])).numpy()
    _save(good, torch.from_numpy(x[:2]), folder / "good.pt2")
    broken, loud = ManyClasses(), int(np.bincount(logits.argmax(1)).argmax())
    broken.load_state_dict(good.state_dict())
    with torch.no_grad():
        broken.fc.weight[loud] *= 0.5  # a wrong scale on one class row
    _save(broken, torch.from_numpy(x[:2]), folder / "broken.pt2")
    np.savez(folder / "calib.npz", x=x[:64])
    np.savez(folder / "eval.npz", x=x[64:], labels=logits.argmax(1))
    np.savez(folder / "unlabelled.npz", x=x[64:])
    paths = {k: folder / f"{k}.npz" for k in ("calib", "eval", "unlabelled")}
    return paths | {"good": folder / "good.pt2", "broken": folder / "broken.pt2", "loud": loud}


def _channel_row(report: dict) -> dict:
    return next(b for b in report["budgets"] if b["name"] == "min_channel_sqnr")


def test_int8_classifier_is_judged_on_its_decisive_classes_not_its_noise_floor(
    many_classes: dict, tmp_path: Path, cli
) -> None:
    out, data = tmp_path / "out", many_classes
    args = [data["good"], "--int8", "--calib", data["calib"], "--eval", data["eval"]]
    result = cli([*args, "--runs", "3", "--warmup", "0", "-o", out])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    (record,) = report["compressed"]["outputs"]
    fid = record["fidelity"]
    assert record["gated"] and fid["channels"] == 1000 and fid["judged_channels"] < 200
    assert "classes judged" in _channel_row(report)["note"]
    # The same artifact and data without labels: a guessed rule judges all 1000 classes, and the
    # quiet ones sit under int8's shared noise (measured 0.5 dB; the judged classes 28.7 dB).
    verify = tmp_path / "verify.json"
    cmd = ["verify", out / "model.onnx", "--baseline", data["good"], "--eval"]
    result = cli([*cmd, data["unlabelled"], "--runs", "3", "--warmup", "0", "--json", verify])
    assert result.exit_code == 1, result.output
    row = _channel_row(json.loads(verify.read_text()))
    assert not row["passed"] and row["value"] < 10 and "--task classify" in row["note"]


def test_a_broken_class_of_a_classifier_fails_verify_and_is_named(
    many_classes: dict, tmp_path: Path, cli
) -> None:
    out, data = tmp_path / "out", many_classes
    fp32 = [data["broken"], "--eval", data["eval"], "--runs", "3", "--warmup", "0", "-o", out]
    assert cli(fp32).exit_code == 0  # broken against itself: it is faithful
    verify = tmp_path / "verify.json"
    cmd = ["verify", out / "model.onnx", "--baseline", data["good"], "--eval", data["eval"]]
    result = cli([*cmd, "--runs", "3", "--warmup", "0", "--json", verify])
    assert result.exit_code == 1, result.output
    report = json.loads(verify.read_text())
    row = _channel_row(report)
    assert not row["passed"] and row["value"] < 10 and f"channel {data['loud']} " in row["note"]
    assert report["compressed"]["outputs"][0]["fidelity"]["worst_channel"] == data["loud"]


@pytest.fixture(scope="module")
def two_heads(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """good.pt2, a copy whose aux head weights were changed (broken.pt2), and eval data that
    also carries the good aux outputs as an extra array for the metric."""
    folder = tmp_path_factory.mktemp("two-heads")
    torch.manual_seed(0)
    good = TwoHeads().eval()
    x = np.random.default_rng(1).normal(size=(64, 12)).astype(np.float32)
    with torch.no_grad():
        logits, aux = good(torch.from_numpy(x))
    labels = logits.argmax(1).numpy()
    _save(good, torch.from_numpy(x[:2]), folder / "good.pt2")
    broken = TwoHeads()
    broken.load_state_dict(good.state_dict())
    with torch.no_grad():
        broken.aux.weight.mul_(-1.0)  # the deliberate weight change: aux now points away
    _save(broken, torch.from_numpy(x[:2]), folder / "broken.pt2")
    np.savez(folder / "eval.npz", x=x, labels=labels, aux_target=aux.numpy())
    return {
        "good": folder / "good.pt2",
        "broken": folder / "broken.pt2",
        "eval": folder / "eval.npz",
    }


def test_broken_second_output_fails_verify_and_is_named(
    two_heads: dict, tmp_path: Path, cli
) -> None:
    out = tmp_path / "out"
    args = [two_heads["broken"], "--eval", two_heads["eval"], "--runs", "3", "--warmup", "0"]
    compressed = cli([*args, "-o", out])
    assert compressed.exit_code == 0, compressed.output  # broken vs itself: it is faithful
    report_path = tmp_path / "verify.json"
    result = cli(
        [
            "verify",
            out / "model.onnx",
            "--baseline",
            two_heads["good"],
            "--eval",
            two_heads["eval"],
            "--runs",
            "3",
            "--warmup",
            "0",
            "--json",
            report_path,
        ]
    )
    assert result.exit_code == 1, result.output
    report = json.loads(report_path.read_text())
    first, second = report["compressed"]["outputs"]
    assert first["headline_value"] == 1.0 and first["fidelity"]["cosine_mean"] > 0.9999
    assert second["fidelity"]["cosine_mean"] < 0
    failed = [b for b in report["budgets"] if not b["passed"]]
    assert failed and all(f"'{second['name']}'" in b["note"] for b in failed)
    assert {b["name"] for b in failed} >= {"min_fidelity", "min_sqnr"}


def test_metric_gates_verify_with_extra_arrays(
    two_heads: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    monkeypatch.syspath_prepend(str(METRICS))
    out = tmp_path / "out"
    args = [two_heads["broken"], "--no-default-floor", "--runs", "3", "-o", out]
    assert cli(args).exit_code == 0
    report_path = tmp_path / "verify.json"
    verify = ["verify", out / "model.onnx", "--baseline", two_heads["good"]]
    result = cli(
        [
            *verify,
            "--eval",
            two_heads["eval"],
            "--metric",
            "user_metrics:aux_cosine",
            "--max-metric-drop",
            "0.1",
            "--no-default-floor",
            "--runs",
            "3",
            "--json",
            report_path,
        ]
    )
    assert result.exit_code == 1, result.output
    report = json.loads(report_path.read_text())
    assert report["baseline"]["metric"] == pytest.approx(1.0, abs=1e-5)
    assert report["compressed"]["metric"] < 0
    (row,) = report["budgets"]
    assert (row["name"], row["passed"], row["source"]) == ("max_metric_drop", False, "flag")
    drop = report["baseline"]["metric"] - report["compressed"]["metric"]
    assert row["value"] == pytest.approx(drop, abs=1e-5) and drop > 1


def test_metric_in_compress_passes_and_is_recorded(
    example: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    monkeypatch.syspath_prepend(str(METRICS))
    out = tmp_path / "out"
    args = [example["model"], "--int8", "--calib", example["calib"], "--eval", example["eval"]]
    metric = ["--metric", "user_metrics:digit_accuracy", "--max-metric-drop", "0.02"]
    result = cli([*args, *metric, "--runs", "3", "--warmup", "0", "-o", out])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    base, comp = report["baseline"], report["compressed"]
    assert base["metric"] == pytest.approx(base["accuracy"])  # same rule, so the same number
    assert comp["metric"] == pytest.approx(comp["accuracy"])
    row = next(b for b in report["budgets"] if b["name"] == "max_metric_drop")
    assert row["passed"] and row["value"] == pytest.approx(
        base["metric"] - comp["metric"], abs=1e-5
    )
    assert 'metric = "user_metrics:digit_accuracy"' in (out / "recipe.toml").read_text()


def test_metric_that_returns_no_number_is_a_usage_error(
    two_heads: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    monkeypatch.syspath_prepend(str(METRICS))
    args = [two_heads["good"], "--eval", two_heads["eval"], "--runs", "2", "-o", tmp_path / "o"]
    result = cli([*args, "--metric", "user_metrics:not_a_number"])
    assert result.exit_code == 2 and "not a number" in result.output
    result = cli([two_heads["good"], "--max-metric-drop", "1", "-o", tmp_path / "p"])
    assert result.exit_code == 2 and "--eval" in result.output


def test_against_compares_each_output_and_names_the_one_that_fell(
    two_heads: dict, tmp_path: Path, cli
) -> None:
    good_out, stored = tmp_path / "good", tmp_path / "good" / "report.json"
    fast = ["--eval", two_heads["eval"], "--runs", "3", "--warmup", "0"]
    assert cli([two_heads["good"], *fast, "-o", good_out]).exit_code == 0
    broken_out = tmp_path / "broken"
    assert cli([two_heads["broken"], *fast, "-o", broken_out]).exit_code == 0
    verify = ["verify", broken_out / "model.onnx", "--baseline", two_heads["good"], *fast]
    report_path = tmp_path / "verify.json"
    args = [*verify, "--against", stored, "--no-default-floor", "--json", report_path]
    result = cli([*args, "--max-latency-regression-pct", "100000"])
    assert result.exit_code == 1, result.output
    report = json.loads(report_path.read_text())
    rows = {b["name"]: b for b in report["budgets"]}
    second = report["compressed"]["outputs"][1]["name"]
    assert not rows["max_sqnr_regression_db"]["passed"]
    assert rows["max_sqnr_regression_db"]["source"] == "default"
    assert rows["max_latency_regression_pct"]["source"] == "flag"
    assert f"'{second}'" in rows["max_sqnr_regression_db"]["note"]
    assert rows["max_sqnr_regression_db"]["value"] > 100  # exact (capped 200 dB) to broken
    assert f"'{second}'" in rows["max_agreement_regression"]["note"]  # aux is judged by top-1
    assert rows["max_accuracy_regression"]["passed"]  # the logits are untouched


def test_against_an_old_report_without_outputs_says_so(
    two_heads: dict, tmp_path: Path, cli
) -> None:
    out = tmp_path / "good"
    fast = ["--eval", two_heads["eval"], "--runs", "3", "--warmup", "0"]
    assert cli([two_heads["good"], *fast, "-o", out]).exit_code == 0
    old = json.loads((out / "report.json").read_text())
    old.pop("schema_version")
    old["compressed"].pop("outputs")
    stored = tmp_path / "v1-report.json"
    stored.write_text(json.dumps(old))
    report_path = tmp_path / "verify.json"
    verify = ["verify", out / "model.onnx", "--baseline", two_heads["good"], *fast]
    loose = ["--max-latency-regression-pct", "100000"]  # timing on a shared machine is noise here
    result = cli([*verify, "--against", stored, "--json", report_path, *loose])
    assert result.exit_code == 0, result.output
    report = json.loads(report_path.read_text())
    assert any("schema 1) has no per-output records" in n for n in report["notes"])
    assert "max_sqnr_regression_db" not in {b["name"] for b in report["budgets"]}


@pytest.mark.parametrize(("flag", "value"), [("--min-sqnr", "nan"), ("--min-sqnr", "500")])
def test_nonsense_floor_values_are_refused_before_work(example: dict, tmp_path, flag, value, cli):
    result = cli([example["model"], flag, value, "-o", tmp_path / "o"])
    assert result.exit_code == 2 and "--min-sqnr" in result.output
    assert not (tmp_path / "o").exists()
