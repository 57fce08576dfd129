"""The user manual as the tests read it: the README (a landing page) and the docs site's pages
(docs/**/*.md), for the tests that check what it says wherever a text sits."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"


def pages() -> list[Path]:
    """Every page of the manual: the README, then the docs site's pages."""
    return [README, *sorted(DOCS.rglob("*.md"))]


def manual() -> str:
    """Every page's text, one after the other."""
    return "\n".join(page.read_text("utf-8") for page in pages())


def section(heading: str) -> str:
    """The text under ``heading`` (its words, at any level) on the page that has it, up to the
    next heading of its level or above."""
    for page in pages():
        text = page.read_text("utf-8")
        match = re.search(rf"^(#+) {re.escape(heading)}\n", text, re.MULTILINE)
        if match:
            level = len(match.group(1))
            rest = text[match.end() :]
            # Headings only: a "# comment" line inside a fenced block is no heading.
            end = _next_heading(rest, level)
            return rest[:end]
    raise AssertionError(f"no page of the manual has the heading {heading!r}")


def _next_heading(text: str, level: int) -> int:
    fence = False
    offset = 0
    for line in text.splitlines(keepends=True):
        if line.lstrip().startswith("```"):
            fence = not fence
        elif not fence:
            match = re.match(r"^(#+) ", line)
            if match and len(match.group(1)) <= level:
                return offset
        offset += len(line)
    return len(text)
