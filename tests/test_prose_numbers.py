"""Numbers in the prose are measured, not typed: every number with a unit or a percentage in the
text of the chapters and notebooks comes from `glue`, from a citation on the same line, or from
the short allow-list below, each entry with its reason."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([*ROOT.glob("book/*.md"), *ROOT.glob("notebooks/*.md"),
                *ROOT.glob("notebooks/exercises/*.md")])
UNITS = (r"(?:%|\s?(?:ms|µs|s|seconds?|minutes?|min|hours?|MB|MiB|GB|GiB|KB|px|pixels?|points?|"
         r"epochs?)\b|\s?(?:x|times) (?:faster|slower|less|more|larger|smaller|as)\b)")
NUMBER = re.compile(r"(?<![\w.$`{/-])(\d[\d,]*(?:\.\d+)?)" + UNITS)

# (page, the number as written, why it is not measured here)
ALLOWED = {
    ("book/claims.md", "98.5%"): "quoted: a claim in circulation that the page checks",
    ("book/claims.md", "99.2%"): "quoted: a claim in circulation that the page checks",
    ("book/claims.md", "10 epochs"): "quoted: a claim in circulation that the page checks",
    ("book/claims.md", "12.3 ms"): "quoted: a claim in circulation that the page checks",
    ("book/claims.md", "18.9 ms"): "quoted: a claim in circulation that the page checks",
    ("book/claims.md", "75%"): "quoted claim; and 1 - 1/4, the arithmetic of 2x2 pooling",
    ("book/claims.md", "15 minutes"): "quoted: a claim in circulation that the page checks",
    ("book/claims.md", "300%"): "quoted: a claim in circulation that the page checks",
    ("book/claims.md", "99%"): "a threshold the verdict's assert checks (baseline > 0.99)",
    ("book/implementation.md", "75%"): "1 - 1/4: the arithmetic of 2x2 pooling, derived above",
    ("book/comparing.md", "10 epochs"): "the public demo's recipe, linked on the same line",
    ("notebooks/02_train_mnist.md", "10 epochs"): "the public demo's recipe (the full budget)",
    ("notebooks/04_compare_modes.md", "10 epochs"): "the public demo's recipe (the full budget)",
    ("notebooks/07_resnet_nonlocal.md", "10 epochs"): "the full budget's setting, not a result",
    ("book/complexity.md", "5%"): "a tolerance the tests use, not a measurement",
    ("book/complexity.md", "16 MiB"): "2^22 pairs x 4 bytes: the arithmetic of the threshold",
    ("book/efficient.md", "256 MiB"): "16,384 x 4,096 pairs x 4 bytes: arithmetic on the line",
    ("notebooks/01_block_anatomy.md", "8 pixels"): "how the lab's toy input is built",
    ("notebooks/04_compare_modes.md", "8 pixels"): "how lab 1's toy input is built",
    ("notebooks/02_train_mnist.md", "3 pixels"): "28 halved by three 2x2 max-pools (floor)",
    ("book/pitfalls.md", "100 times slower"): "the threshold the page's assert checks",
}
ESTIMATE = re.compile(r"\*\*Time:\*\* about \d+ minutes")   # the author's estimate of a reader's time


def prose(text: str):
    """(line number, line) of the text outside code cells and other fenced code."""
    fence = None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        opening = re.match(r"^(`{3,}|:{3,})(\{[\w-]+\})?", stripped)
        if fence is None and opening:
            directive = opening.group(2) or ""
            if directive in ("{code-cell}", "{literalinclude}", "{eval-rst}") or \
                    (opening.group(1)[0] == "`" and not directive):
                fence = opening.group(1)
            continue
        if fence is not None:
            if stripped == fence:
                fence = None
            continue
        yield number, line


def _cited_lines(lines) -> set[int]:
    """Line numbers of the paragraphs (runs of non-blank prose lines) that carry a citation."""
    cited, paragraph = set(), []
    for number, line in [*lines, (None, "")]:
        if line.strip():
            paragraph.append((number, line))
            continue
        if any("{cite" in text for _, text in paragraph):
            cited.update(n for n, _ in paragraph)
        paragraph = []
    return cited


def typed_numbers(path: Path):
    lines = list(prose(path.read_text()))
    cited = _cited_lines(lines)
    in_front_matter = False
    for number, line in lines:
        if number == 1 and line.strip() == "---":
            in_front_matter = True
            continue
        if in_front_matter:
            in_front_matter = line.strip() != "---"
            continue
        if number in cited or ESTIMATE.search(line):
            continue
        text = re.sub(r"\{glue:\w+\}`[^`]*`", "", line)
        text = re.sub(r"\$[^$]*\$", "", text)
        text = re.sub(r"`[^`]*`", "", text)
        for match in NUMBER.finditer(text):
            yield number, match.group(0).strip(), line.strip()


def test_the_scanner_finds_a_typed_number(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("Training took about 2 minutes and reached 99.1%.\n"
                    "It reached {glue:text}`acc:.1f`%.\n```{code-cell} ipython3\nx = '5 ms'\n```\n")
    assert [n for _, n, _ in typed_numbers(page)] == ["2 minutes", "99.1%"]


@pytest.mark.parametrize("path", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_typed_numbers(path):
    page = path.relative_to(ROOT).as_posix()
    typed = [f"line {n}: {number!r} in: {line}" for n, number, line in typed_numbers(path)
             if (page, number) not in ALLOWED]
    assert not typed, ("numbers typed into the prose; glue them from a computation or a committed "
                       "result, cite their source, or allow-list them with a reason:\n"
                       + "\n".join(typed))
