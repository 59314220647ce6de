"""Code that fits the page: every code cell a reader sees (chapters, labs, exercises, the student
versions included) has lines of at most 82 characters, what a desktop's column (1280 px wide,
code at 13 px: book/_ext/static/nlcourse.css) shows without scrolling sideways. Cells removed
from the page (the install cells, tagged remove-cell or remove-input) are not shown."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WIDTH = 82
PAGES = sorted([*ROOT.glob("book/*.md"), *ROOT.glob("notebooks/[0-9][0-9]_*.md"),
                *ROOT.glob("notebooks/exercises/ex*.md"),
                *ROOT.glob("notebooks/exercises/student/ex*.md")])
CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(?P<options>(?::[^\n]*\n)*)(?P<source>.*?)^```",
                  re.M | re.S)


def too_wide(text: str) -> list[str]:
    lines = []
    for cell in CELL.finditer(text):
        if re.search(r"remove-(cell|input)", cell["options"]):
            continue
        lines += [line for line in cell["source"].splitlines() if len(line) > WIDTH]
    return lines


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shown_code_line_fits_the_column(page):
    wide = too_wide(page.read_text())
    assert not wide, f"{len(wide)} lines over {WIDTH} characters, e.g. {wide[0]!r}"


def test_the_check_sees_a_wide_line_and_skips_removed_cells():
    shown = "```{code-cell} ipython3\n" + "x" * (WIDTH + 1) + "\n```\n"
    removed = "```{code-cell} ipython3\n:tags: [remove-cell]\n\n" + "x" * 200 + "\n```\n"
    assert too_wide(shown) == ["x" * (WIDTH + 1)] and too_wide(removed) == []
