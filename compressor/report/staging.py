"""Write outputs to a temporary folder and move them into place only when a run succeeds."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from compressor.report.run_record import RECIPE, REPORT, is_plain_name, read_run
from foundation.errors import OutputError

STAGE_PREFIX = ".compress-stage-"


def check_writable(out_dir: Path) -> None:
    """Fail early, before any work, when the output folder cannot be created or written."""
    if out_dir.is_symlink() and not out_dir.exists():
        raise OutputError(
            f"Output path '{out_dir}' is a symbolic link to nothing (dangling or a loop); "
            "remove it or choose another -o DIR."
        )
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
    (for example the input model itself). Names read from the report are untrusted: only plain,
    non-hidden file names directly inside out_dir are taken.
    """
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        return []
    names = read_run(out_dir).output_names()
    if names is None:
        raise OutputError(
            f"Output folder '{out_dir}' already holds files that no earlier compress run "
            "wrote (no readable report.json). Choose a new or empty -o DIR so nothing of "
            "yours is overwritten."
        )
    for name in names:
        if not is_plain_name(name):
            raise OutputError(
                f"'{out_dir / REPORT}' names the output file {name!r}, which is not a plain file "
                "name inside the output folder (the report was edited or is not from compress). "
                "Nothing was written or removed. Choose a new or empty -o DIR."
            )
    owned = [out_dir / n for n in (*names, REPORT, RECIPE)]
    return [p for p in owned if p.exists() or p.is_symlink()]


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
        stage = Path(tempfile.mkdtemp(prefix=STAGE_PREFIX, dir=parent))
    except OSError as exc:
        raise OutputError(f"Cannot write to '{parent}': {exc}. Choose another -o DIR.") from exc
    try:
        yield stage
        out_dir.mkdir(parents=True, exist_ok=True)
        replace_outputs(stage, out_dir, stale)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def replace_outputs(stage: Path, out_dir: Path, stale: list[Path]) -> None:
    """Swap the staged files in: old ones are set aside first and restored if any move fails."""
    items = sorted(p for p in stage.iterdir() if not p.name.startswith("."))
    trash = stage / ".replaced"
    trash.mkdir()
    moved: list[tuple[Path, Path]] = []  # (from, to) to undo in reverse
    try:
        targets = {out_dir / item.name for item in items}
        for old in sorted(set(stale) | {t for t in targets if t.exists() or t.is_symlink()}):
            os.replace(old, trash / old.name)
            moved.append((old, trash / old.name))
        for item in items:
            os.replace(item, out_dir / item.name)
            moved.append((item, out_dir / item.name))
    except OSError as exc:
        for src, dst in reversed(moved):
            with contextlib.suppress(OSError):
                os.replace(dst, src)
        raise OutputError(
            f"Could not move the new outputs into '{out_dir}' ({exc}); the earlier outputs "
            "were put back and nothing new was written."
        ) from None


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
