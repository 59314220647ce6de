"""The shape of the course a student meets: labs sit beside the chapters they
practise, and every chapter opens with what the reader will be able to do, closes with a
three-line summary and links its exercise."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
TEACHING = [part for part in TOC["parts"] if part["caption"] in
            ("The operation", "Building and using blocks")]
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
