"""Inspect a torch.export `.pt2` archive before torch unpickles anything in it.

`torch.export.load` (torch 2.13) runs `torch.load(weights_only=False)` on weights and constants
whose config says `use_pickle`, `pickle.loads` on opaque constants, falls back to
`weights_only=False` for sample inputs that fail a safe load, and loads AOTInductor shared
libraries: each is code execution from the file. This scan allows only the members a plain
`torch.export.save` writes, each in a form that loads without running code; torch has no such
check of its own, hence this module.
"""

from __future__ import annotations

import io
import json
import zipfile

import torch

from foundation.errors import ModelLoadError

# Members (below the archive's root folder) that hold no pickle: text, JSON, raw tensor bytes.
_PLAIN_MEMBERS = ("archive_format", "archive_version", "byteorder", ".data/version")
_PLAIN_PREFIXES = (".data/serialization_id", "models/", "extra/")
_CONFIGS = {"data/weights/": "weight_", "data/constants/": "tensor_"}
_SAMPLE_INPUTS = "data/sample_inputs/"
_MAX_SAMPLE_BYTES = 256 << 20
_TRUST_HINT = "If you trust the file, pass --trust-pickle (it lets the file run code)."


def read_safe_archive(path: str, data: bytes) -> io.BytesIO:
    """Check the archive bytes member by member; return them for torch to load.

    The caller loads exactly the bytes that were checked, so the file cannot change in between.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = archive.namelist()
    except (zipfile.BadZipFile, ValueError) as exc:
        raise ModelLoadError(f"'{path}' is not a readable zip archive ({exc}).") from None
    root = _common_root(path, names)
    for name in names:
        _check_member(path, archive, name, name[len(root) :])
    return io.BytesIO(data)


def _common_root(path: str, names: list[str]) -> str:
    roots = {n.split("/", 1)[0] for n in names}
    if len(roots) != 1 or any("/" not in n for n in names):
        raise ModelLoadError(
            f"'{path}' is not a torch.export archive: its members do not share one root "
            "folder. Re-save it with torch.export.save."
        )
    return roots.pop() + "/"


def _check_member(path: str, archive: zipfile.ZipFile, name: str, rel: str) -> None:
    if ".." in rel.split("/") or rel.startswith("/") or "\\" in rel:
        raise _refuse(path, name, "its name leaves the archive folder")
    if rel.endswith("/") or rel in _PLAIN_MEMBERS or rel.startswith(_PLAIN_PREFIXES):
        return
    for folder, prefix in _CONFIGS.items():
        if rel.startswith(folder):
            return _check_payload(path, archive, name, rel[len(folder) :], prefix)
    if rel.startswith(_SAMPLE_INPUTS) and rel.endswith(".pt"):
        if archive.getinfo(name).file_size > _MAX_SAMPLE_BYTES:
            raise _refuse(path, name, "its sample inputs are larger than 256 MiB")
        return _check_weights_only(path, name, archive.read(name))
    raise _refuse(
        path,
        name,
        "torch.export.save never writes it, and torch may execute it (AOTInductor "
        "libraries, pickled objects, legacy weight files)",
    )


def _check_payload(path: str, archive: zipfile.ZipFile, name: str, file: str, prefix: str) -> None:
    """A weights/constants config must list only raw tensors; raw tensor files are bytes."""
    if file.startswith(prefix) and "/" not in file:
        return
    if not file.endswith("_config.json") or "/" in file:
        raise _refuse(path, name, "it is not a raw tensor or a payload config")
    try:
        entries = json.loads(archive.read(name))["config"]
        items = list(entries.items())
    except (ValueError, KeyError, TypeError, AttributeError):
        raise _refuse(path, name, "it is not a valid payload config") from None
    for fqn, meta in items:
        if not isinstance(meta, dict) or meta.get("use_pickle") is not False:
            raise _refuse(path, name, f"entry '{fqn}' is stored as a pickle")
        if not str(meta.get("path_name", "")).startswith(prefix):
            raise _refuse(path, name, f"entry '{fqn}' is not a plain tensor")


def _check_weights_only(path: str, name: str, payload: bytes) -> None:
    """Sample inputs must load with torch's safe unpickler (torch falls back to the unsafe one)."""
    try:
        torch.load(io.BytesIO(payload), weights_only=True, map_location="cpu")
    except Exception as exc:
        lines = [line for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
        reason = next((line for line in lines if "GLOBAL" in line), lines[0])
        raise _refuse(path, name, f"torch's safe loader refuses it: {reason[:200]}") from None


def _refuse(path: str, member: str, why: str) -> ModelLoadError:
    return ModelLoadError(
        f"Refusing to load '{path}': archive member '{member}' is unsafe ({why}). Loading it "
        f"could run code from the file. Re-save the model with torch.export.save. {_TRUST_HINT}"
    )
