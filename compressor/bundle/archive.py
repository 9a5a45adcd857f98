"""The edge bundle: model files + report + manifest.json in a byte-reproducible .tar.gz."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

from compressor.bundle.manifest import build_manifest
from compressor.report import strict_json
from compressor.report.run_record import read_run
from compressor.report.staging import staged_file
from compressor.trust.strict_read import MAX_DOCUMENT_BYTES, parse_json
from foundation.errors import UsageError
from targets import registry

MANIFEST = "manifest.json"
# Torch model files; every other model-like file or folder is one a target declares.
TORCH_MODEL_SUFFIXES = (".pt2", ".pt", ".ts")
CHUNK = 1 << 20


@dataclass(frozen=True)
class BundleCheck:
    """What `package --check` found: the manifest and every mismatch in plain words."""

    manifest: dict
    problems: list[str]
    files_checked: int

    @property
    def ok(self) -> bool:
        return not self.problems


def source_date_epoch() -> int:
    """The fixed mtime of every member: SOURCE_DATE_EPOCH when set (reproducible builds), else 0."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "0")
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"SOURCE_DATE_EPOCH='{value}' is not an integer.") from None


def collect_files(folder: Path) -> list[str]:
    """Relative POSIX paths of every regular, non-hidden file in folder, sorted.

    Symbolic links are refused, not followed: a link could pull any file of the machine
    (e.g. /etc/passwd) into a bundle meant for a device team.
    """
    found = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.is_symlink():
            raise UsageError(
                f"'{path}' is a symbolic link; bundles hold the folder's own files only. "
                "Replace the link with the file itself (or remove it) and package again."
            )
        if path.is_file() and rel.as_posix() != MANIFEST:
            found.append(rel.as_posix())
    return sorted(found)


def find_model_file(folder: Path, files: list[str]) -> str:
    """The artifact named by report.json, else the one model-like file in the folder."""
    name = read_run(folder).artifact_name  # None without a usable report
    if isinstance(name, str) and (name in files or any(f.startswith(f"{name}/") for f in files)):
        return name
    models = model_entries(files)
    if len(models) != 1:
        raise UsageError(
            f"'{folder}' holds {len(models)} model files {models} and no report.json naming the "
            "artifact; package a compress output folder (compress ... -o DIR)."
        )
    return models[0]


def model_entries(files: list[str]) -> list[str]:
    """The model files among files, and the folders holding a folder-shaped artifact."""
    file_suffixes = {*registry.artifact_suffixes(folder=False), *TORCH_MODEL_SUFFIXES}
    folder_suffixes = registry.artifact_suffixes(folder=True)
    found = set()
    for rel in files:
        top = Path(rel).parts[0]
        if top != rel and Path(top).suffix.lower() in folder_suffixes:
            found.add(top)  # a file inside a folder artifact is part of it, not a model
        elif Path(rel).suffix.lower() in file_suffixes:
            found.add(rel)
    return sorted(found)


def file_digest(path: Path) -> dict:
    """sha256 and size of one file, streamed."""
    with path.open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    return {"sha256": digest, "size": path.stat().st_size}


def write_bundle(folder: Path, out: Path, preprocessing: dict | None = None) -> dict:
    """Write out (a .tar.gz) from folder; the same folder always gives the same bytes."""
    if not folder.is_dir():
        raise UsageError(
            f"'{folder}' is not a directory; pass the output folder of a compress run."
        )
    home, where = folder.resolve(), out.absolute().parent.resolve()
    if where == home or home in where.parents:
        raise UsageError(
            f"The bundle '{out}' would be written inside the folder it packages ('{folder}'); "
            f"write it elsewhere, e.g. -o {home.with_name(home.name + '.tar.gz')}."
        )
    files = collect_files(folder)
    model = find_model_file(folder, files)
    hashes = {rel: file_digest(folder / rel) for rel in files}
    manifest = build_manifest(folder, model, hashes, preprocessing or {})
    body = (strict_json.dumps(manifest, indent=2) + "\n").encode()
    mtime = source_date_epoch()
    with staged_file(out) as raw:
        _write_tar(raw, folder, files, body, mtime)
    return manifest


def _write_tar(
    raw: io.BufferedIOBase, folder: Path, files: list[str], manifest: bytes, mtime: int
) -> None:
    # gzip header: mtime 0 and no file name, so the bytes do not depend on when or where.
    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            tar.addfile(_member(MANIFEST, len(manifest), mtime), io.BytesIO(manifest))
            for rel in files:
                path = folder / rel
                with path.open("rb") as handle:
                    tar.addfile(_member(rel, path.stat().st_size, mtime), handle)


def _member(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, mtime, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


# `compress package` writes model files, which gzip shrinks by a few percent (a pruned, sparse
# one a few times): members declaring more than 100x the bundle's bytes are a bomb.
MAX_INFLATION = 100
INFLATION_FLOOR = 64 << 20
MAX_MANIFEST_BYTES = MAX_DOCUMENT_BYTES


def check_member(member: tarfile.TarInfo, path: Path) -> None:
    """A member `compress package` could have written: a regular file with a plain relative
    name (no '..', absolute path, drive or backslash, which a Windows extractor splits on), and
    a manifest within its bound. Anything else is refused before it is read."""
    name = member.name
    parts = name.split("/")
    if not member.isfile():
        why = "is not a regular file (a link, device or folder); bundles hold files only"
    elif "\\" in name or ":" in parts[0] or name.startswith("/") or {"", ".", ".."} & set(parts):
        why = "has an unsafe path that an extractor could place outside the bundle's folder"
    elif any(ord(c) < 32 for c in name):
        why = "has control characters in its name"
    elif name == MANIFEST and member.size > MAX_MANIFEST_BYTES:
        why = f"is {member.size:,} bytes, more than the {MAX_MANIFEST_BYTES:,} a manifest may be"
    else:
        return
    raise UsageError(
        f"Bundle '{path}': member {name!r} {why}. It was not written by `compress package`; "
        "nothing was extracted. Do not unpack it."
    )


def read_manifest(content: bytes, path: Path) -> dict:
    """manifest.json of a bundle, its `files` table checked: name → {sha256: text, size: int}."""
    where = f"manifest.json in '{path}'"
    try:
        manifest = parse_json(content, where)
    except ValueError as exc:  # bad JSON or not text
        raise UsageError(f"{where} is not valid JSON ({exc}); the bundle is damaged.") from None
    files = manifest.get("files")
    entries = files.values() if isinstance(files, dict) else [None]
    if not all(
        isinstance(e, dict)
        and isinstance(e.get("sha256"), str)
        and isinstance(e.get("size"), int)
        and not isinstance(e.get("size"), bool)
        for e in entries
    ):
        raise UsageError(
            f"{where}: 'files' must map each file name to {{sha256: text, size: bytes}}; it is "
            f"{_short(files)}. The manifest was edited or damaged: re-create the bundle with "
            "`compress package`."
        )
    return manifest


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_bundle(path: Path) -> BundleCheck:
    """Re-hash every member against manifest.json; unreadable bundles are reported, not raised."""
    if path.is_dir():
        raise UsageError(
            f"'{path}' is a folder; --check takes a bundle file (.tar.gz) made by "
            f"`compress package`. To bundle the folder, run: compress package {path}"
        )
    if not path.is_file():
        raise UsageError(f"Bundle '{path}' does not exist.")
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            digests, problems = _hash_members(tar, path)
    except (tarfile.TarError, OSError, EOFError) as exc:
        return BundleCheck({}, [f"'{path}' is not a readable .tar.gz bundle: {exc}"], 0)
    content = digests.pop(MANIFEST, {}).get("content")
    if content is None:
        return BundleCheck({}, [f"'{path}' has no manifest.json listing its files."], 0)
    manifest = read_manifest(content, path)
    listed = manifest["files"]
    problems += _compare(listed, digests)
    return BundleCheck(manifest, problems, len(set(listed) & set(digests)))


def _compare(listed: dict[str, dict], digests: dict[str, dict]) -> list[str]:
    """Every file missing, unlisted or changed, in plain words."""
    problems = []
    for name in sorted(set(listed) - set(digests)):
        problems.append(f"{name}: listed in manifest.json but missing from the bundle")
    for name in sorted(set(digests) - set(listed)):
        problems.append(f"{name}: in the bundle but not listed in manifest.json")
    for name in sorted(set(listed) & set(digests)):
        want, got = listed[name], digests[name]
        if want.get("sha256") != got["sha256"] or want.get("size") != got["size"]:
            problems.append(
                f"{name}: sha256 {got['sha256'][:16]}… ({got['size']} bytes) does not match the "
                f"manifest's {str(want.get('sha256'))[:16]}… ({want.get('size')} bytes): "
                "the file was changed or corrupted"
            )
    return problems


def _hash_members(tar: tarfile.TarFile, path: Path) -> tuple[dict[str, dict], list[str]]:
    """sha256 and size of every member, each checked from its header before it is read."""
    digests, problems = {}, []
    budget = max(INFLATION_FLOOR, MAX_INFLATION * path.stat().st_size)
    for member in tar:
        check_member(member, path)
        budget -= member.size
        if budget < 0:
            raise UsageError(
                f"Bundle '{path}': its members up to {member.name!r} unpack to more than "
                f"{MAX_INFLATION}x the bundle's {path.stat().st_size:,} bytes: a gzip bomb or a "
                "forged header, not a bundle `compress package` wrote. Nothing was extracted."
            )
        if member.name in digests:
            problems.append(f"{member.name}: appears twice in the bundle (an extractor keeps one)")
            continue
        handle = tar.extractfile(member)
        hasher = hashlib.sha256()
        content = b""
        while chunk := handle.read(CHUNK):
            hasher.update(chunk)
            if member.name == MANIFEST:
                content += chunk
        digests[member.name] = {"sha256": hasher.hexdigest(), "size": member.size}
        if member.name == MANIFEST:
            digests[member.name]["content"] = content
    return digests, problems
