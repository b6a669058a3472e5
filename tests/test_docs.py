"""The README and docs/: a short README that links every page, and links that lead somewhere."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import ROOT

README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def prose(text: str) -> str:
    """The text without fenced code blocks and inline code, where a link is no link."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(re.sub(r"`[^`]*`", "", line))
    return "\n".join(lines)


def anchors(path: Path) -> set[str]:
    """GitHub's anchors of the headings: the heading's text lower-cased, punctuation other than
    '-' and '_' dropped, spaces to '-'; a repeated anchor gets -1, -2, ..."""
    found: set[str] = set()
    fenced = False
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        match = None if fenced else re.match(r"#{1,6} +(.*?) *#* *$", line)
        if not match:
            continue
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", match.group(1))  # a link: its text
        anchor = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
        unique, n = anchor, 0
        while unique in found:
            n += 1
            unique = f"{anchor}-{n}"
        found.add(unique)
    return found


def links(path: Path) -> list[str]:
    return [target for target in LINK.findall(prose(path.read_text()))
            if not re.match(r"[a-z][a-z0-9+.-]*:", target)]  # http:, https:, mailto: left out


def test_the_readme_is_short():
    lines = len(README.read_text().splitlines())
    assert lines <= 320, f"README.md has {lines} lines: move the details to a page of docs/"


def test_the_readme_links_every_page_of_docs():
    linked = {(README.parent / target.split("#")[0]).resolve() for target in links(README)}
    assert PAGES and [page.name for page in PAGES if page.resolve() not in linked] == []


def test_every_page_opens_with_a_title_and_what_it_covers():
    for page in PAGES:
        title, blank, sentence = page.read_text().splitlines()[:3]
        assert title.startswith("# ") and blank == "" and sentence, page.name


def test_every_relative_link_points_at_a_file_and_a_heading_that_exist():
    broken = []
    for source in [README, *PAGES]:
        for target in links(source):
            path, _, anchor = target.partition("#")
            file = (source.parent / path).resolve() if path else source
            if not file.exists():
                broken.append(f"{source.relative_to(ROOT)}: {target}: no such file")
            elif anchor and file.suffix == ".md" and anchor not in anchors(file):
                broken.append(f"{source.relative_to(ROOT)}: {target}: no such heading")
    assert broken == []


def test_the_anchor_rule():
    page = ROOT / "docs" / "evaluation.md"
    assert {"calibration-of-scalesmall", "what-the-framework-can-detect"} <= anchors(page)
    assert "named-ablations-ablation" in anchors(ROOT / "docs" / "ablation_runner.md")
