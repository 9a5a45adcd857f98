"""Write outputs to a temporary folder and move them into place only when a run succeeds."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from compressor.errors import OutputError


def check_writable(out_dir: Path) -> None:
    """Fail early, before any work, when the output folder cannot be created or written."""
    parent = out_dir if out_dir.exists() else _existing_parent(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"Output path '{out_dir}' exists and is not a directory.")
    try:  # a real probe: permission bits do not tell root about read-only filesystems
        shutil.rmtree(tempfile.mkdtemp(prefix=".compress-probe-", dir=parent))
    except OSError as exc:
        raise OutputError(
            f"Cannot write to '{out_dir}' ('{parent}' is not writable: {exc.strerror}). "
            "Choose another -o DIR."
        ) from None


def previous_outputs(out_dir: Path) -> list[Path]:
    """Files an earlier run wrote into out_dir (from its report.json), to be replaced.

    Refuses a non-empty folder that holds no report.json: its files are not ours to overwrite
    (for example the input model itself).
    """
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        return []
    report_path = out_dir / "report.json"
    try:
        report = json.loads(report_path.read_text())
        names = [report["artifact"], *report.get("extra_files", [])]
    except (OSError, ValueError, KeyError, TypeError):
        raise OutputError(
            f"Output folder '{out_dir}' already holds files that no earlier compress run "
            "wrote (no readable report.json). Choose a new or empty -o DIR so nothing of "
            "yours is overwritten."
        ) from None
    owned = [out_dir / n for n in (*names, "report.json", "recipe.toml") if "/" not in n]
    return [p for p in owned if p.exists()]


def _existing_parent(path: Path) -> Path:
    path = path.absolute()
    while not path.exists():
        path = path.parent
    if not path.is_dir():
        raise OutputError(f"Cannot create '{path}': a file is in the way.")
    return path


@contextmanager
def staged_output(out_dir: Path) -> Iterator[Path]:
    """Yield a temp folder beside out_dir; on success its files replace an earlier run's."""
    check_writable(out_dir)
    stale = previous_outputs(out_dir)
    parent = _existing_parent(out_dir.parent if not out_dir.exists() else out_dir)
    try:
        stage = Path(tempfile.mkdtemp(prefix=".compress-stage-", dir=parent))
    except OSError as exc:
        raise OutputError(f"Cannot write to '{parent}': {exc}. Choose another -o DIR.") from exc
    try:
        yield stage
        out_dir.mkdir(parents=True, exist_ok=True)
        for old in stale:
            shutil.rmtree(old) if old.is_dir() else old.unlink()
        for item in sorted(stage.iterdir()):
            target = out_dir / item.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(item, target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


@contextmanager
def staged_file(path: Path) -> Iterator[BinaryIO]:
    """Yield a binary file beside path; it replaces path only when the block succeeds."""
    if path.is_dir():
        raise OutputError(f"Cannot write '{path}': it is a directory. Give a file path.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise OutputError(f"Cannot write '{path}': {exc}. Choose another path.") from exc
    try:
        with os.fdopen(handle, "wb") as out:
            yield out
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    """The process umask (reading it means setting it, so set it straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask
