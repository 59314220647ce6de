"""The shape of the course a student meets: three parts walked in order, labs beside the chapters
they practise; every page opens with the pages it builds on (all earlier in the table of
contents), every chapter with what the reader will be able to do, and closes with a three-line
summary and a link to its exercise."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
TEACHING = [part for part in TOC["parts"] if part["caption"].startswith("Part ")]
ENTRIES = [Path(entry["file"]).with_suffix("").as_posix()
           for part in TEACHING for entry in part["chapters"]]
CHAPTERS = [e for e in ENTRIES if e.startswith("book/")]
LABS = [e for e in ENTRIES if e.startswith("notebooks/")]


def test_every_lab_sits_among_the_chapters_in_order():
    assert sorted(LABS) == sorted(f"notebooks/{p.stem}" for p in ROOT.glob("notebooks/0*.md"))
    assert LABS == sorted(LABS), "labs keep their numbers in reading order"
    assert all(part["caption"] != "Labs" for part in TOC["parts"]), "no part of labs alone"
    for part in TEACHING:
        first = part["chapters"][0]["file"]
        assert first.startswith("book/"), f"{part['caption']} opens with a lab, not a chapter"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_opens_with_its_aims_and_closes_with_summary_and_exercise(chapter):
    text = (ROOT / f"{chapter}.md").read_text()
    assert ":::{admonition} In this chapter" in text, f"{chapter}: no opening aims"
    opening = text.index(":::{admonition} In this chapter")
    assert opening < text.index("\n## "), f"{chapter}: the aims must come before the first section"
    summary = re.search(r"^## Summary\n\n((?:- .*\n(?:  .*\n)*)+)", text, flags=re.M)
    assert summary, f"{chapter}: no '## Summary' with bullets"
    bullets = re.findall(r"^- ", summary.group(1), flags=re.M)
    assert len(bullets) == 3, f"{chapter}: the summary has {len(bullets)} lines, not three"
    practice = text[summary.end():]
    links = re.findall(r"\]\((\.\./notebooks/exercises/ex\d\d_\w+)\.ipynb\)", practice)
    assert links, f"{chapter}: no link to an exercise after the summary"
    for link in links:
        assert (ROOT / "book" / f"{link}.md").resolve().exists(), f"{chapter}: {link} missing"


ORDER = [Path(TOC["root"]).as_posix()] + ENTRIES


def _builds_on(page: str) -> list[str]:
    """The pages the page's "**Builds on:**" line links, as table-of-contents entries."""
    source = ROOT / f"{page}.md"
    text = source.read_text()
    found = re.search(r"^\*\*Builds on:\*\*(.*?)(?:\n\n|\Z)", text, flags=re.M | re.S)
    assert found, f"{page}: no '**Builds on:**' line"
    links = re.findall(r"\]\(([^)#]+?)\.(?:md|ipynb)(?:#[^)]*)?\)", found.group(1))
    assert links, f"{page}: its Builds on line links no page"
    return [(source.parent / link).resolve().relative_to(ROOT).as_posix() for link in links]


def test_the_course_has_three_parts_in_order():
    assert [part["caption"] for part in TEACHING] == [
        "Part 1: The operation", "Part 2: Building with blocks", "Part 3: Engineering"]


@pytest.mark.parametrize("page", ENTRIES)
def test_every_page_builds_only_on_earlier_pages(page):
    for earlier in _builds_on(page):
        assert earlier in ORDER, f"{page} builds on {earlier}, which is not in the book"
        assert ORDER.index(earlier) < ORDER.index(page), (
            f"{page} builds on {earlier}, which comes after it in _toc.yml")


def test_the_order_check_can_fail(tmp_path, monkeypatch):
    page = tmp_path / "book" / "early.md"
    page.parent.mkdir()
    page.write_text("# Early\n\n**Builds on:** [claims](claims.md).\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (later,) = _builds_on("book/early")
    assert later == "book/claims"
