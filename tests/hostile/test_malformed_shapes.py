"""Property-style: a real report.json, recipe.toml and manifest.json, with a wrong-typed value
(null, text, number, NaN, list, table, 80-deep nesting) put at sampled key paths, fed to every
command that reads them. Each must end 0, 1 or 2 (never 3), without a traceback, writing only
where it was told to. The sample is fixed (seeded), so a failure reproduces."""

from __future__ import annotations

import copy
import gzip
import io
import json
import random
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomli_w

from tests.hostile.cli_harness import run_cli, snapshot


def _deep(depth: int = 80) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


WRONG = {
    "null": None,
    "text": "x",
    "int": 7,
    "negative": -1,
    "nan": float("nan"),
    "list": [1, "x"],
    "table": {"k": 1},
    "deep": _deep(),
}
SEED = 23


def key_paths(value: object, path: tuple = ()) -> Iterator[tuple]:
    """Every key path into value (tables and lists), the root aside."""
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else []
    )
    for key, child in items:
        yield (*path, key)
        yield from key_paths(child, (*path, key))


def replaced(doc: dict, path: tuple, value: object) -> dict:
    """A copy of doc with the value at path replaced (None deletes it where TOML has no null)."""
    out = copy.deepcopy(doc)
    parent = out
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = copy.deepcopy(value)
    return out


def sample(doc: dict, count: int, prefer: tuple = ()) -> list[tuple[tuple, str]]:
    """`count` (path, wrong-kind) pairs, deterministically; about 3/4 under `prefer`'s keys."""
    pairs = [(p, kind) for p in key_paths(doc) for kind in sorted(WRONG)]
    rng = random.Random(SEED)
    hot = [pair for pair in pairs if pair[0][0] in prefer]
    cold = [pair for pair in pairs if pair[0][0] not in prefer]
    take_hot = min(len(hot), count * 3 // 4) if prefer else 0
    return rng.sample(hot, take_hot) + rng.sample(cold, min(len(cold), count - take_hot))


def _outcome(result, label: str) -> str | None:
    text = result.output
    if result.exit_code not in (0, 1, 2) or "Traceback" in text or "internal error" in text:
        return f"{label}: exit {result.exit_code}\n{text[-600:]}"
    return None


@pytest.fixture(scope="module")
def labelled_run(example: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A compress output folder whose report has accuracy and per-output records."""
    out = tmp_path_factory.mktemp("shapes") / "out"
    args = [example["model"], "--eval", example["eval"], "--runs", "3", "--warmup", "1"]
    result = run_cli(*args, "-o", out)
    assert result.exit_code in (0, 1), result.output
    return out


def _run_dir(src: Path, root: Path, name: str) -> Path:
    return Path(shutil.copytree(src, root / name))


def test_reports_of_every_shape_in_a_run_folder(labelled_run, tmp_path):
    """bench DIR and package DIR read the folder's report.json (artifact, sections, info)."""
    report = json.loads((labelled_run / "report.json").read_text())
    failures = []
    for i, (path, kind) in enumerate(sample(report, 36, prefer=("artifact", "extra_files"))):
        folder = _run_dir(labelled_run, tmp_path, f"run{i}")
        (folder / "report.json").write_text(json.dumps(replaced(report, path, WRONG[kind])))
        command = ["bench", folder, "--runs", "2", "--warmup", "0"]
        if i % 2:
            command = ["package", folder, "-o", tmp_path / f"b{i}.tar.gz"]
        before = snapshot(tmp_path, skip=tmp_path / f"b{i}.tar.gz")
        failures.append(_outcome(run_cli(*command), f"{command[0]} {path}={kind}"))
        if snapshot(tmp_path, skip=tmp_path / f"b{i}.tar.gz") != before:
            failures.append(f"{command[0]} {path}={kind}: changed files outside the bundle")
        shutil.rmtree(folder)
    assert not [f for f in failures if f], "\n\n".join(f for f in failures if f)


def test_against_reports_of_every_shape(labelled_run, example, tmp_path):
    """verify --against reads figures, sections and per-output records of a stored report."""
    report = json.loads((labelled_run / "report.json").read_text())
    failures = []
    for i, (path, kind) in enumerate(sample(report, 40, prefer=("compressed", "baseline"))):
        stored = tmp_path / "stored.json"
        stored.write_text(json.dumps(replaced(report, path, WRONG[kind])))
        before = snapshot(tmp_path)
        result = run_cli(
            "verify", labelled_run / "model.onnx", "--baseline", example["model"],
            "--eval", example["eval"], "--runs", "2", "--warmup", "0", "--against", stored,
        )  # fmt: skip
        failures.append(_outcome(result, f"verify --against {path}={kind} (case {i})"))
        if snapshot(tmp_path) != before:
            failures.append(f"verify --against {path}={kind}: changed files")
    assert not [f for f in failures if f], "\n\n".join(f for f in failures if f)


def _members(bundle: Path) -> dict[str, bytes]:
    with tarfile.open(bundle) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar}


def _rebuild(members: dict[str, bytes], path: Path) -> Path:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(gzip.compress(raw.getvalue()))
    return path


def test_manifests_of_every_shape(labelled_run, tmp_path):
    """package --check reads manifest.json's files table and nothing it does not need."""
    bundle = tmp_path / "good.tar.gz"
    assert run_cli("package", labelled_run, "-o", bundle).exit_code == 0
    members = _members(bundle)
    manifest = json.loads(members["manifest.json"])
    failures = []
    for i, (path, kind) in enumerate(sample(manifest, 80, prefer=("files",))):
        edited = dict(
            members, **{"manifest.json": json.dumps(replaced(manifest, path, WRONG[kind])).encode()}
        )
        crafted = _rebuild(edited, tmp_path / "crafted.tar.gz")
        before = snapshot(tmp_path)
        failures.append(
            _outcome(run_cli("package", "--check", crafted), f"--check {path}={kind} ({i})")
        )
        if snapshot(tmp_path) != before:
            failures.append(f"--check {path}={kind}: changed files")
    assert not [f for f in failures if f], "\n\n".join(f for f in failures if f)


def test_recipes_of_every_shape(labelled_run, tmp_path):
    """compress --recipe type-checks every key and table of recipe.toml before any work."""
    import tomllib

    recipe = tomllib.loads((labelled_run / "recipe.toml").read_text())
    failures = []
    for i, (path, kind) in enumerate(sample(recipe, 14)):
        value = WRONG[kind]
        doc = replaced(recipe, path, value) if value is not None else _without(recipe, path)
        file = tmp_path / "r.toml"
        file.write_text(tomli_w.dumps(doc))
        out = tmp_path / f"out{i}"
        before = snapshot(tmp_path, skip=out)
        failures.append(_outcome(run_cli("--recipe", file, "-o", out), f"--recipe {path}={kind}"))
        if snapshot(tmp_path, skip=out) != before:
            failures.append(f"--recipe {path}={kind}: changed files outside -o")
        shutil.rmtree(out, ignore_errors=True)
    assert not [f for f in failures if f], "\n\n".join(f for f in failures if f)


def test_run_folder_recipes_of_every_shape(labelled_run, tmp_path):
    """package DIR reads the folder's recipe.toml (target, preprocess, target options)."""
    import tomllib

    recipe = tomllib.loads((labelled_run / "recipe.toml").read_text())
    recipe["target_options"] = {"optimization": "all"}
    recipe["preprocess"] = "scale=1"
    failures = []
    for i, (path, kind) in enumerate(
        sample(recipe, 24, prefer=("target", "target_options", "preprocess"))
    ):
        value = WRONG[kind]
        doc = replaced(recipe, path, value) if value is not None else _without(recipe, path)
        folder = _run_dir(labelled_run, tmp_path, f"run{i}")
        (folder / "recipe.toml").write_text(tomli_w.dumps(doc))
        bundle = tmp_path / f"b{i}.tar.gz"
        before = snapshot(tmp_path, skip=bundle)
        result = run_cli("package", folder, "-o", bundle)
        failures.append(_outcome(result, f"package recipe {path}={kind}"))
        if snapshot(tmp_path, skip=bundle) != before:
            failures.append(f"package recipe {path}={kind}: changed files outside the bundle")
        shutil.rmtree(folder)
    assert not [f for f in failures if f], "\n\n".join(f for f in failures if f)


def _without(doc: dict, path: tuple) -> dict:
    out = copy.deepcopy(doc)
    parent = out
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    return out


def test_the_sample_is_fixed_and_covers_every_wrong_kind(labelled_run):
    report = json.loads((labelled_run / "report.json").read_text())
    first, second = sample(report, 40, ("compressed",)), sample(report, 40, ("compressed",))
    assert first == second
    assert {kind for _, kind in first} == set(WRONG)
