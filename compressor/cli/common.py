"""What every command shares: the consoles, error handling and signals, and option parsers."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from functools import wraps
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from foundation.errors import CompressError, UsageError

CONSOLE = Console()
ERR = Console(stderr=True)
PATH = click.Path(path_type=Path)
INTERNAL_ERROR = 3
CLEANUP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)
# What each output option writes: an existing file is replaced only when its name ends like
# ours (and, for bundles, it starts with the gzip magic), so inputs and foreign files survive.
OUTPUT_KINDS: dict[str, tuple[tuple[str, ...], bytes]] = {
    "--junit": ((".xml",), b""),
    "--json": ((".json",), b""),
    "--html": ((".html", ".htm"), b""),
    "--output": ((".tar.gz", ".tgz"), b"\x1f\x8b"),
}


class Terminated(KeyboardInterrupt):
    """SIGTERM/SIGHUP raised as an interrupt, so staged outputs are cleaned up like on Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum: int, frame: object) -> None:
    for sig in CLEANUP_SIGNALS:  # a second signal must not cut the clean-up short
        signal.signal(sig, signal.SIG_IGN)
    raise Terminated(signum)


@contextlib.contextmanager
def _cleanup_on_signals() -> Iterator[None]:
    """Route termination signals through the interrupt path while a command runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _on_signal) for sig in CLEANUP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def handle_errors(func: Callable) -> Callable:
    """Print CompressErrors as one paragraph, no traceback, and exit with their code."""

    @wraps(func)
    def wrapper(*args: object, **kwargs: object) -> object:
        try:
            with _cleanup_on_signals():
                return func(*args, **kwargs)
        except CompressError as exc:
            ERR.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            sys.exit(exc.exit_code)
        except OSError as exc:
            if exc.filename is None or os.environ.get("COMPRESS_DEBUG"):
                raise
            _print_os_error(exc)
            sys.exit(2)
        except KeyboardInterrupt as exc:
            ERR.print("[red]interrupted[/]: nothing was written.")
            sys.exit(128 + exc.signum if isinstance(exc, Terminated) else 130)
        except Exception as exc:
            if os.environ.get("COMPRESS_DEBUG"):
                raise
            _print_internal_error(exc)
            sys.exit(INTERNAL_ERROR)

    return wrapper


def _print_os_error(exc: OSError) -> None:
    ERR.print(
        f"[bold red]error:[/] cannot use '{escape(str(exc.filename)[:200])}': "
        f"{escape(exc.strerror or str(exc))}. Check the path (its length, links and "
        "permissions) and try again.",
        highlight=False,
        soft_wrap=True,
    )


def _print_internal_error(exc: Exception) -> None:
    ERR.print(
        f"[bold red]internal error:[/] {escape(type(exc).__name__)}: "
        f"{escape(str(exc)[:500])}\nNothing was written. This is a bug in compress, not "
        "in your input: rerun with COMPRESS_DEBUG=1 for the traceback and report it.",
        highlight=False,
        soft_wrap=True,
    )


def parse_input_shapes(values: tuple[str, ...]) -> dict[str, list[int]]:
    """--input-shape NAME:1x3x224x224 values as {name: shape} ("input" when NAME is left out)."""
    shapes = {}
    for value in values:
        name, sep, dims = value.rpartition(":")
        try:
            shape = [int(d) for d in dims.lower().split("x")]
        except ValueError:
            shape = []
        if len(shape) < 2 or min(shape) < 1:
            raise UsageError(
                f"--input-shape '{value}' must look like NAME:1x3x224x224 (batch first, "
                "positive sizes; NAME may be left out for a single-input model)."
            )
        shapes[name or "input"] = shape
    return shapes


def parse_batch_axes(values: tuple[str, ...]) -> dict[str, int]:
    """--batch-axis NAME:AXIS values as {name: axis}."""
    axes = {}
    for value in values:
        name, _, axis = value.rpartition(":")
        if not name or not axis.isdigit():
            raise UsageError(f"--batch-axis '{value}' must look like NAME:AXIS, e.g. state:1.")
        axes[name] = int(axis)
    return axes


def parse_key_values(values: tuple[str, ...]) -> dict[str, str]:
    """--target-option KEY=VALUE values as {key: value} (text; the target parses it)."""
    pairs = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise UsageError(f"--target-option '{value}' must look like KEY=VALUE.")
        pairs[key.strip()] = val.strip()
    return pairs


def check_output(path: Path | None, option: str, inputs: list[Path]) -> None:
    """Refuse, before any work, an output that is an input, a folder or a foreign file."""
    if path is None:
        return
    suffixes, magic = OUTPUT_KINDS[option]
    if path.is_symlink() or (path.exists() and not (path.is_file() or path.is_dir())):
        kind = "a symbolic link" if path.is_symlink() else "not a regular file (a pipe or device)"
        raise UsageError(
            f"{option} '{path}' is {kind}; compress writes only regular files and never "
            "through a link. Remove it or choose another path."
        )
    resolved = path.resolve()
    for src in inputs:
        if src.exists() and src.resolve() == resolved:
            raise UsageError(
                f"{option} '{path}' is also an input of this command ({src}); writing there "
                "would destroy it. Choose another path."
            )
    if path.is_dir():
        raise UsageError(
            f"{option} '{path}' is a directory; give a file path (e.g. {path / ('out' + suffixes[0])})."
        )
    if path.exists() and not (path.name.lower().endswith(suffixes) and _starts_with(path, magic)):
        raise UsageError(
            f"{option} '{path}' already exists and is not a {'/'.join(suffixes)} file this command "
            f"writes; only such files are replaced. Choose a new path ending in {suffixes[0]}."
        )


def check_distinct(outputs: dict[str, Path]) -> None:
    """Two output flags must not name one file: the second write would replace the first."""
    seen: dict[Path, str] = {}
    for option, path in outputs.items():
        key = path.absolute().parent.resolve() / path.name
        if key in seen:
            raise UsageError(
                f"{seen[key]} and {option} both name '{path}'; give each its own file."
            )
        seen[key] = option


def _starts_with(path: Path, magic: bytes) -> bool:
    with path.open("rb") as handle:
        return handle.read(len(magic)) == magic
