r"""The notation table of the introduction holds on every page: in the prose mathematics of the
chapters, labs and exercises, W alone is a width (the output projection is W_z), g is the value
embedding (never a grid size), N counts positions (a normal distribution is \mathcal N), C'
counts channels (never set from a spatial size) and M counts key positions (never channels, never
a matrix with entries M_ij).
Code keeps its own names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([*ROOT.glob("book/*.md"), *ROOT.glob("notebooks/[0-9][0-9]_*.md"),
                *ROOT.glob("notebooks/exercises/ex*.md")])
MATH = re.compile(r"\$\$(.+?)\$\$|\$([^$\n]+?)\$", re.S)
CODE = re.compile(r"```\{code-cell\}.*?```|```\{literalinclude\}.*?```|`[^`\n]*`", re.S)

# (what is wrong, a pattern that finds it in one span of mathematics)
MISUSES = [
    ("W alone outside a height-and-width context: the output projection is W_z",
     re.compile(r"^(?!.*[HT]).*(?<![\\A-Za-z])W(?![_A-Za-z])", re.S)),
    ("g as a grid size", re.compile(r"(?<![\\A-Za-z])g\s*(\\times|\^2)\s*g?|(?<![\\A-Za-z])g\s*=\s*\d")),
    ("N as a normal distribution: write \\mathcal N", re.compile(r"(?<![\\A-Za-z])N\s*\(\s*0")),
    ("C' set from a spatial size: C' counts channels",
     re.compile(r"C'\s*=\s*[^,;=]*?(?<![\\A-Za-z])[HNMT](?![A-Za-z])")),
    ("M set from channels: M counts key positions",
     re.compile(r"(?<![\\A-Za-z])M\s*=\s*[^,;=]*?(?<![\\A-Za-z])C(?![A-Za-z])")),
    ("M as a matrix with entries: M counts key positions",
     re.compile(r"(?<![\\A-Za-z])M_\{?[ij]")),
]


def _spans(text: str):
    text = CODE.sub("", text)
    for match in MATH.finditer(text):
        yield match.group(1) or match.group(2)


def test_the_table_names_each_symbol():
    intro = (ROOT / "book" / "intro.md").read_text()
    table = intro[intro.index("## Notation"):intro.index("## The code this course reads")]
    for symbol in ("$W_z$", "H \\times W$", "$g$", "$C'$", "$N$", "$M$"):
        assert symbol in table, symbol


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_symbol_keeps_one_meaning(page):
    wrong = [(why, span.strip()[:80]) for span in _spans(page.read_text())
             for why, pattern in MISUSES if pattern.search(span)]
    assert not wrong, wrong


def test_the_check_finds_each_misuse():
    for span in ("z = W y + x", "g \\times g", "N(0, 0.01)", "C' = H W / 4", "M = C/2",
                 "M_{ij} = 1"):
        assert any(p.search(span) for _, p in MISUSES), span
    assert not any(p.search("H \\times W") for _, p in MISUSES)
    for span in ("y_i = \\frac{1}{M} \\sum_j f\\, g(x_j)", "C' = C/2", "M = N/4",
                 "C'^2 (N + M)", "M = \\lfloor H/2 \\rfloor"):
        assert not any(p.search(span) for _, p in MISUSES), span
