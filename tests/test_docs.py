"""Every Python example in README.md and docs/*.md runs as written.

Each fenced ```python block is one test, named after its file and position (``docs/cost.md#3``: the fourth block of
that page), executed in a fresh namespace with ``KEEL_STORE=memory://`` and a temporary working directory. A block
whose opening fence is preceded by an HTML comment ``<!-- skip: REASON -->`` (for example ``<!-- skip: needs an API
key -->``) is skipped with that reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

import keel.errors

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)$")
_SKIP = re.compile(r"^\s*<!--\s*skip:\s*(?P<reason>.*?)\s*-->\s*$")

NOT_MARKED_YET: dict[str, str] = {}
"""Blocks known not to run on their own but not (yet) preceded by a skip comment: a distinctive line → reason."""


@dataclass(frozen=True)
class Block:
    """One ```python block of a page."""

    page: str
    """The page, relative to the repository root."""
    index: int
    """Its position among the page's Python blocks, from 0."""
    line: int
    """The line of its first line of code, from 1."""
    code: str
    skip: str | None
    """Why it is not run, or None."""

    @property
    def id(self) -> str:
        return f"{self.page}#{self.index}"


def python_blocks(path: Path) -> list[Block]:
    """The ```python blocks of the Markdown file at `path`, in order, each with its skip reason if any."""
    lines = path.read_text(encoding="utf-8").splitlines()
    page = path.relative_to(ROOT).as_posix()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        end = i + 1
        while end < len(lines) and not _closes(lines[end], fence):
            end += 1
        if opening["info"].strip().split(" ")[0].lower() in ("python", "py"):
            code = "\n".join(line[indent:] for line in lines[i + 1 : end]) + "\n"
            marker = _SKIP.match(lines[i - 1]) if i > 0 else None
            skip = marker["reason"] if marker else next((r for s, r in NOT_MARKED_YET.items() if s in code), None)
            blocks.append(Block(page, len(blocks), i + 2, code, skip))
        i = end + 1
    return blocks


def _closes(line: str, fence: str) -> bool:
    """Whether `line` closes a block opened with `fence` (same character, at least as long, no info string)."""
    found = _FENCE.match(line)
    if found is None or found["info"].strip():
        return False
    return found["fence"][0] == fence[0] and len(found["fence"]) >= len(fence)


BLOCKS = [block for page in PAGES for block in python_blocks(page)]


def test_the_pages_have_examples() -> None:
    assert any(block.page.startswith("docs/") for block in BLOCKS)
    assert any(block.page == "README.md" for block in BLOCKS)


@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
def test_example_runs_as_written(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if block.skip is not None:
        pytest.skip(block.skip)
    monkeypatch.setenv("KEEL_STORE", "memory://")
    monkeypatch.chdir(tmp_path)
    # Line numbers in a traceback point into the page: the code is padded to start where it stands there.
    source = "\n" * (block.line - 1) + block.code
    exec(compile(source, str(ROOT / block.page), "exec"), {"__name__": "__main__"})


def test_every_error_class_has_its_troubleshooting_section() -> None:
    """Every error of `keel.errors` has its section: messages point at ``docs/troubleshooting.md#<class>``."""
    headings = {
        line.removeprefix("## ").strip()
        for line in (ROOT / "docs" / "troubleshooting.md").read_text(encoding="utf-8").splitlines()
        if line.startswith("## ")
    }
    errors = {
        name
        for name, value in vars(keel.errors).items()
        if isinstance(value, type) and issubclass(value, keel.errors.KeelError) and value.__module__ == "keel.errors"
    }
    assert errors - headings == set()
