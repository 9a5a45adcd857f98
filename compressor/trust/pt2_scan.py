"""Inspect a torch.export `.pt2` archive before torch reads anything in it.

`torch.export.load` (torch 2.13) loads every `models/*.json` as a program, unpickles legacy
`data/weights|constants/<name>.pt` files and config entries flagged `use_pickle`, falls back to
`weights_only=False` for sample inputs that fail a safe load, loads AOTInductor libraries, and
evaluates strings in the program JSON (pt2_schema.py). The scan accepts exactly the members a
plain `torch.export.save` of one model writes, each checked in the form torch will read it;
any other member is refused, whatever its name. torch has no such check, hence this module.
"""

from __future__ import annotations

import io
import re
import zipfile

import torch

from compressor.trust.pt2_schema import SchemaRefusal, check_payload_config, check_program
from foundation.errors import ModelLoadError, UnsafeModelError

# Members (below the archive's root folder) that torch reads as text, or not at all.
_PLAIN_MEMBERS = ("archive_format", "archive_version", "byteorder", ".data/version")
_PLAIN_MEMBERS += (".data/serialization_id",)
_PROGRAM = "models/model.json"
_SAMPLE_INPUTS = "data/sample_inputs/model.pt"
# Payload configs and the raw tensor files their entries may name.
_CONFIGS = {
    "data/weights/model_weights_config.json": re.compile(r"weight_[0-9]{1,9}"),
    "data/constants/model_constants_config.json": re.compile(r"tensor_[0-9]{1,9}"),
}
_MAX_MEMBER_BYTES = 256 << 20
# Members torch reads whole as text (graph JSON, configs, extra files): a real graph of a large
# model is a few MiB; raw tensor files are bounded by the file itself.
_MAX_TEXT_BYTES = 64 << 20
_RAW_FOLDERS = ("data/weights/", "data/constants/")
# What torch.export.load would do with a member outside the plain set: for the message only,
# the decision is the plain set above.
_ROUTES = (
    ("models/", "torch loads every models/*.json as one more program"),
    ("data/aotinductor/", "torch loads it as a compiled AOTInductor library"),
    ("data/weights/", "torch reads it as weights; a <name>.pt is unpickled as legacy weights"),
    ("data/constants/", "torch reads it as constants; a <name>.pt or object is unpickled"),
    ("data/sample_inputs/", "torch loads it as sample inputs of another program"),
    ("", "torch.export.save never writes it, so what torch does with it is not known"),
)
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
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise _refuse(
            path, dup, "it appears twice; torch and this check could read different copies"
        )
    root = _common_root(path, names)
    _check_sizes(path, archive, root, len(data))
    members = {name[len(root) :]: name for name in names}
    for rel, name in members.items():
        if ".." in rel.split("/") or rel.startswith("/") or "\\" in rel:
            raise _refuse(path, name, "its name leaves the archive folder")
        if archive.getinfo(name).file_size > _MAX_MEMBER_BYTES:
            raise _refuse(path, name, "it is larger than 256 MiB")
    allowed = {*_PLAIN_MEMBERS, _PROGRAM, _SAMPLE_INPUTS, *_CONFIGS}
    allowed |= _check_json_members(path, archive, members)
    if _SAMPLE_INPUTS in members:
        _check_weights_only(path, members[_SAMPLE_INPUTS], archive.read(members[_SAMPLE_INPUTS]))
    for rel, name in members.items():
        if not (rel in allowed or rel.endswith("/") or rel.startswith("extra/")):
            raise _refuse(path, name, next(why for lead, why in _ROUTES if rel.startswith(lead)))
    return io.BytesIO(data)


def _check_sizes(path: str, archive: zipfile.ZipFile, root: str, file_bytes: int) -> None:
    """Every member's declared size, before any is read: text members (graph JSON, configs,
    extra files) within _MAX_TEXT_BYTES, and all members together no larger than the file
    (torch writes them uncompressed, so more is a deflate bomb)."""
    total = 0
    for info in archive.infolist():
        rel = info.filename[len(root) :]
        raw = rel == _SAMPLE_INPUTS or (rel.startswith(_RAW_FOLDERS) and not rel.endswith(".json"))
        if not raw and info.file_size > _MAX_TEXT_BYTES:
            raise _refuse_size(path, info.filename, f"{info.file_size:,} bytes of text or JSON")
        total += info.file_size
    if total > max(file_bytes, _MAX_TEXT_BYTES):
        raise _refuse_size(
            path, "(all)", f"{total:,} bytes unpacked from a {file_bytes:,}-byte file"
        )


def _refuse_size(path: str, member: str, what: str) -> ModelLoadError:
    return ModelLoadError(
        f"Refusing to load '{path}': archive member {member} declares {what}, more than "
        "torch.export.save writes (a padded or bomb archive). Re-save the model with "
        "torch.export.save."
    )


def _check_json_members(path: str, archive: zipfile.ZipFile, members: dict[str, str]) -> set[str]:
    """The program JSON and the payload configs; returns the raw tensor files they name."""
    payloads = set()
    try:
        if _PROGRAM in members:
            check_program(archive.read(members[_PROGRAM]))
    except SchemaRefusal as exc:
        raise _refuse(path, members[_PROGRAM], str(exc)) from None
    for config, pattern in _CONFIGS.items():
        if config in members:
            folder = config.rsplit("/", 1)[0]
            names = _check_config(path, members[config], archive.read(members[config]), pattern)
            payloads |= {f"{folder}/{n}" for n in names}
    return payloads


def _check_config(path: str, member: str, data: bytes, pattern: re.Pattern) -> set[str]:
    """Every entry a raw tensor (no pickle, no custom object); returns the files they name."""
    try:
        entries = check_payload_config(data)
    except SchemaRefusal as exc:
        raise _refuse(path, member, f"it is not a valid payload config: {exc}") from None
    for fqn, meta in entries.items():
        if meta.get("use_pickle") is not False:
            raise _refuse(path, member, f"entry '{fqn}' is stored as a pickle")
        if not pattern.fullmatch(str(meta.get("path_name"))) or meta.get("tensor_meta") is None:
            raise _refuse(path, member, f"entry '{fqn}' is not a plain tensor")
    return {meta["path_name"] for meta in entries.values()}


def _common_root(path: str, names: list[str]) -> str:
    roots = {n.split("/", 1)[0] for n in names}
    if len(roots) != 1 or any("/" not in n for n in names):
        raise ModelLoadError(
            f"'{path}' is not a torch.export archive: its members do not share one root "
            "folder. Re-save it with torch.export.save."
        )
    return roots.pop() + "/"


def _check_weights_only(path: str, name: str, payload: bytes) -> None:
    """Sample inputs must load with torch's safe unpickler (torch falls back to the unsafe one)."""
    try:
        torch.load(io.BytesIO(payload), weights_only=True, map_location="cpu")
    except Exception as exc:
        lines = [line for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
        reason = next((line for line in lines if "GLOBAL" in line), lines[0])
        raise _refuse(path, name, f"torch's safe loader refuses it: {reason[:200]}") from None


def _refuse(path: str, member: str, why: str) -> ModelLoadError:
    return UnsafeModelError(
        f"Refusing to load '{path}': archive member '{member}' is unsafe ({why}). Loading it "
        f"could run code from the file. Re-save the model with torch.export.save. {_TRUST_HINT}"
    )
