"""The bad-input suite: run the real CLI on hostile input, check the exit code, that no traceback
was printed, and that nothing outside the allowed folder changed."""

from __future__ import annotations

import hashlib
from pathlib import Path

from click.testing import Result

from tests.cli_runner import invoke_cli


def run_cli(*args: object) -> Result:
    """Invoke `compress ARGS` in-process; unexpected exceptions surface as test errors."""
    return invoke_cli(args)


def snapshot(root: Path, skip: Path | None = None) -> dict[str, str]:
    """Every path below root (links unfollowed) with a hash of its content, minus `skip`."""
    state = {}
    for path in sorted(root.rglob("*")):
        if skip is not None and (path == skip or skip in path.parents):
            continue
        rel = str(path.relative_to(root))
        if path.is_symlink():
            state[rel] = "link:" + str(path.readlink())
        elif path.is_file():
            state[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            state[rel] = "dir"
    return state


def assert_clean_refusal(result: Result, code: int = 2, *needles: str) -> None:
    """Exit `code`, a message, no traceback, no 'internal error'."""
    text = result.output
    assert result.exit_code == code, text
    assert "Traceback" not in text and "internal error" not in text, text
    for needle in needles:
        assert needle in text, text
