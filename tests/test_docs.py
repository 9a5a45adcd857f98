"""The README and docs/ pages: every relative link resolves, every `compress` flag they name exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from compressor.cli import main

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted(
    [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "targets").glob("*/README.md")]
)
LINK = re.compile(r"\]\(([^)\s]+)\)")
INLINE = re.compile(r"`(compress [^`]+)`")


def _split(page: Path) -> tuple[str, list[str]]:
    """A page's prose (fenced blocks removed) and its shell blocks (bash, sh, console or untagged)."""
    prose, blocks, block, lang = [], [], None, ""
    for line in page.read_text().splitlines():
        if line.lstrip().startswith("```"):
            if block is None:
                block, lang = [], line.strip()[3:]
            else:
                if lang in ("", "bash", "sh", "console"):
                    blocks.append("\n".join(block))
                block = None
        elif block is None:
            prose.append(line)
        else:
            block.append(line)
    return "\n".join(prose), blocks


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_\[\]()]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = _split(page)[0]
    return {_slug(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}


def _links(page: Path) -> list[str]:
    text = _split(page)[0]
    return [m for m in LINK.findall(text) if not re.match(r"[a-z]+://|mailto:", m)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for link in _links(page):
        target, _, anchor = link.partition("#")
        path = (page.parent / target).resolve() if target else page
        if not path.exists():
            broken.append(f"{link} (no such file)")
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(f"{link} (no heading with that anchor)")
    assert not broken, f"{page.relative_to(ROOT)}: {broken}"


def _command_lines(page: Path) -> list[str]:
    """`compress ...` command lines of a page: fenced shell blocks (continuations joined) and inline code."""
    prose, blocks = _split(page)
    lines = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if line.startswith("compress "):
                lines.append(line)
    lines += INLINE.findall(prose)
    return lines


def _flags_of(command: click.Command) -> set[str]:
    flags = {"--help", "-h"}
    for param in command.params:
        flags.update(param.opts)
        flags.update(param.secondary_opts)
    return flags


def _unknown_flags(line: str) -> list[str]:
    try:
        words = shlex.split(line.replace("[", " ").replace("]", " ").replace("|", " "))
    except ValueError:
        words = line.split()
    name = words[1] if len(words) > 1 and words[1] in main.commands else "run"
    command = main.commands[name]
    known = _flags_of(command) | _flags_of(main)
    flags = [w.split("=")[0] for w in words[1:] if re.fullmatch(r"--[a-z][a-z0-9-]*(=.*)?", w)]
    return [f"compress {name} {flag}" for flag in flags if flag not in known]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_documented_flag_exists(page: Path) -> None:
    unknown = [bad for line in _command_lines(page) for bad in _unknown_flags(line)]
    assert not unknown, f"{page.relative_to(ROOT)} names flags the CLI lacks: {unknown}"


def test_docs_are_reached_from_the_readme() -> None:
    linked = {(ROOT / link.partition("#")[0]).resolve() for link in _links(ROOT / "README.md")}
    orphans = [p.name for p in (ROOT / "docs").glob("*.md") if p.resolve() not in linked]
    assert not orphans, f"docs pages not linked from README.md: {orphans}"


def test_readme_is_a_front_page() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


def test_the_checker_catches_a_wrong_flag() -> None:
    assert _unknown_flags("compress bench out/model.onnx --no-such-flag 3") == [
        "compress bench --no-such-flag"
    ]
    assert _unknown_flags("compress model.pt2 --int8 --calib c.npz") == []
