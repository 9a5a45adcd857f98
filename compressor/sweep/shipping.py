"""Carry a job's model and data files to a cluster node and its output folder back, as tar
bytes through Ray's object store (no shared filesystem needed)."""

from __future__ import annotations

import io
import shutil
import tarfile
import tempfile
from dataclasses import replace
from pathlib import Path

from compressor.recipe import Recipe
from compressor.report.run_record import first_link
from compressor.trust.external_data import external_data_files
from foundation.errors import UsageError

INPUT_FIELDS = ("model", "calib", "eval", "train")
# One input travels as one object; Ray keeps it in the head node's object store (30% of its
# memory by default), and the Ray client (ray://) sends it in chunks. 2 GiB keeps both safe.
MAX_INPUT_BYTES = 2 * 1024**3


def input_files(recipe: Recipe) -> dict[str, list[Path]]:
    """The files each input field of the recipe reads (entry points read none): a folder's
    files, or a file plus the external-data files an ONNX model names."""
    found = {}
    for name in INPUT_FIELDS:
        value = getattr(recipe, name)
        path = Path(value) if value else None
        if path is None or not path.exists():
            continue
        if path.is_dir():
            found[name] = _folder_files(path, name)
        else:
            found[name] = [path, *_onnx_external_files(path)]
    return found


def _folder_files(folder: Path, field: str) -> list[Path]:
    """A folder input's files; a link in it could lead anywhere, so it is refused."""
    link = first_link(folder)
    if link is not None:
        raise UsageError(
            f"{field} folder '{folder}' holds the symbolic link '{link}'; a sweep reads, hashes "
            "and ships only real files inside an input folder. Copy the file in instead."
        )
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _onnx_external_files(path: Path) -> list[Path]:
    """The external data files of an ONNX model, through the loader's own check (nothing
    outside the model's folder is hashed or shipped)."""
    if path.suffix.lower() != ".onnx":
        return []
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # not loadable: the job reports why; ship the file as it is
        return []
    return external_data_files(model, path)


def pack_input(recipe: Recipe, field: str) -> tuple[str, bytes]:
    """The input's files as tar bytes named relative to the input's folder, and the name the
    recipe then points at inside it ("" for a folder input)."""
    value = Path(getattr(recipe, field))
    root = value if value.is_dir() else value.parent
    files = input_files(recipe)[field]
    size = sum(p.stat().st_size for p in files)
    if size > MAX_INPUT_BYTES:
        raise UsageError(
            f"'{value}' is {size / 1024**3:.1f} GiB; a cluster job carries at most "
            f"{MAX_INPUT_BYTES / 1024**3:.0f} GiB per input through Ray's object store. Put it "
            "on storage every node mounts and run the sweep from there."
        )
    return ("" if value.is_dir() else value.name), _tar(root, files)


def _tar(root: Path, files: list[Path]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in files:
            tar.add(path, arcname=str(path.relative_to(root)), recursive=False)
    return buffer.getvalue()


def unpack_inputs(recipe: Recipe, packed: dict[str, tuple[str, bytes]], folder: Path) -> Recipe:
    """Extract shipped inputs under folder; the recipe pointing at those copies."""
    updates = {}
    for field, (name, data) in packed.items():
        dest = folder / field
        _untar(data, dest)
        updates[field] = str(dest / name if name else dest)
    return replace(recipe, **updates)


def _untar(data: bytes, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        tar.extractall(dest, filter="data")  # refuses absolute paths, '..' and device files


def pack_folder(folder: Path) -> bytes:
    """A finished job's output folder as tar bytes (empty when the job wrote nothing)."""
    if not folder.is_dir():
        return b""
    return _tar(folder, sorted(p for p in folder.rglob("*") if p.is_file()))


def unpack_folder(data: bytes, dest: Path) -> None:
    """Replace dest with the shipped output folder, via a temporary folder beside it."""
    if not data:
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        _untar(data, stage)
        if dest.exists():
            shutil.rmtree(dest)
        stage.rename(dest)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
