"""Check an .npz archive from its headers before numpy allocates anything.

numpy trusts a member's header: a forged shape (5e8 samples in a 3 KB file) makes `np.load`
allocate the declared size first. Reading headers costs a few bytes per member.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np

from foundation.errors import DataError
from foundation.resources import memory_budget_bytes

# Members that inflate past both bounds are zip bombs: real arrays (even mostly-zero masks) stay
# far under 200x with numpy.savez_compressed, and 64 MiB is loaded in well under a second.
MAX_INFLATION = 200
INFLATION_FLOOR = 64 << 20

_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


def check_npz_headers(path: Path) -> None:
    """Every member is a numeric array whose declared size fits in the bytes the file holds."""
    try:
        with zipfile.ZipFile(path) as archive:
            _check_sizes(path, archive.infolist())
            for info in archive.infolist():
                if info.filename.endswith(".npy"):
                    with archive.open(info) as member:
                        _check_member(path, info, member)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DataError(
            f"Data file '{path}' could not be read as .npz ({exc}). Re-create it with numpy.savez."
        ) from None


def _check_sizes(path: Path, infos: list[zipfile.ZipInfo]) -> None:
    """The members' declared sizes, before anything is inflated: a total that fits in memory,
    and no member that inflates like a zip bomb."""
    total = sum(info.file_size for info in infos)
    if total > memory_budget_bytes():
        raise DataError(
            f"Data file '{path}' unpacks to {total:,} bytes, more than the "
            f"{memory_budget_bytes():,} allowed on this machine. Use fewer samples."
        )
    for info in infos:
        if info.file_size > max(INFLATION_FLOOR, MAX_INFLATION * info.compress_size):
            raise DataError(
                f"Data file '{path}': member '{info.filename}' inflates from "
                f"{info.compress_size:,} to {info.file_size:,} bytes, more than {MAX_INFLATION}x: "
                "a zip bomb or a forged header. Re-create it with numpy.savez (uncompressed)."
            )


def _check_member(path: Path, info: zipfile.ZipInfo, member: object) -> None:
    key = info.filename[: -len(".npy")]
    try:
        version = np.lib.format.read_magic(member)
        shape, _, dtype = _READERS[version](member)
    except (ValueError, KeyError):
        raise DataError(f"Data file '{path}': array '{key}' has no valid .npy header.") from None
    if dtype.hasobject:
        raise DataError(
            f"Data file '{path}': array '{key}' holds Python objects (dtype=object), which only "
            "unpickling can read, and unpickling runs code. Store numeric arrays only."
        )
    declared = math.prod(shape) * dtype.itemsize
    if declared > info.file_size:
        raise DataError(
            f"Data file '{path}': array '{key}' declares shape {list(shape)} ({declared:,} "
            f"bytes) but the file holds {info.file_size:,} bytes for it: it is truncated or "
            "forged. Re-create it with numpy.savez."
        )
