"""Reading a user's or an earlier run's JSON/TOML file with bounds: size, nesting depth, file kind
and top-level type are checked before any code walks the data (each a UsageError naming the file).

Missing or unreadable files (OSError), bytes that are not text (UnicodeDecodeError) and bad syntax
(JSONDecodeError, TOMLDecodeError) are raised as the standard library raises them, so each caller
keeps its own wording for those.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tomllib
from collections.abc import Callable
from pathlib import Path

from foundation.errors import UsageError

# Recipes, sweep files, reports, manifests and state records are kilobytes; 16 MiB is far beyond
# any real one and parses in well under a second.
MAX_DOCUMENT_BYTES = 16 << 20
# The deepest real document (a report's per-layer tables) nests about 6 levels.
MAX_DEPTH = 64


def read_document(path: Path | str, what: str, limit: int = MAX_DOCUMENT_BYTES) -> str:
    """The text of a regular file of at most `limit` bytes; a FIFO, device or bigger file is
    refused before reading (a FIFO is opened non-blocking, so it cannot hang the run)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"{what} is not a regular file (a pipe or device?); pass a file.")
        if info.st_size > limit:
            raise UsageError(_too_big(what, f"{info.st_size:,} bytes", limit))
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:  # it grew while being read
        raise UsageError(_too_big(what, f"over {limit:,} bytes", limit))
    return data.decode()


def _too_big(what: str, size: str, limit: int) -> str:
    return (
        f"{what} is {size}, more than the {limit:,} any recipe, sweep file, report or manifest "
        "needs: it was not written by compress or is not the right file. Pass the right one."
    )


def parse_json(
    text: str | bytes, what: str, expect: type | None = dict, **kwargs: object
) -> object:
    """json.loads with the nesting bounded and, unless `expect` is None, the top-level type checked."""
    return _checked(lambda: json.loads(text, **kwargs), what, expect)


def parse_toml(text: str, what: str) -> dict:
    """tomllib.loads with the nesting bounded (deep arrays and deep [a.b.c…] headers alike)."""
    return _checked(lambda: tomllib.loads(text), what, dict)


def load_json(path: Path | str, what: str, expect: type | None = dict, **kwargs: object) -> object:
    """A bounded JSON file: read_document, then parse_json."""
    return parse_json(read_document(path, what), what, expect, **kwargs)


def load_toml(path: Path | str, what: str) -> dict:
    """A bounded TOML file: read_document, then parse_toml."""
    return parse_toml(read_document(path, what), what)


def _checked(parse: Callable[[], object], what: str, expect: type | None) -> object:
    try:
        data = parse()
    except RecursionError:
        data = None
        too_deep = True
    else:
        too_deep = depth_over(data, MAX_DEPTH)
    if too_deep:
        raise UsageError(
            f"{what} nests its values more than {MAX_DEPTH} levels deep; no file compress writes "
            "or reads does. It was edited or is not the right file: pass the right one."
        )
    if expect is not None and not isinstance(data, expect):
        raise UsageError(
            f"{what} holds {_NAMES.get(type(data), 'a value')} at the top, not "
            f"{_NAMES[expect]}; it was "
            "edited or is not the right file. Pass the right one."
        )
    return data


_NAMES = {
    dict: "a table (JSON object)",
    list: "a list",
    str: "text",
    int: "a number",
    float: "a number",
    bool: "true/false",
    type(None): "null",
}


def depth_over(value: object, limit: int) -> bool:
    """Whether lists/dicts nest deeper than `limit` (walked without recursion)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            if depth >= limit:
                return True
            stack.extend((child, depth + 1) for child in item)
    return False
