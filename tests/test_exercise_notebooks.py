"""The exercise notebooks as files: solutions folded in the book, student versions generated from
them and committed up to date, and the generator's rules themselves."""

from __future__ import annotations

from pathlib import Path

import jupytext
import pytest

from nlcourse.exercises.student import generate, strip_source

ROOT = Path(__file__).resolve().parents[1]
EXERCISES = ROOT / "notebooks" / "exercises"
SOLUTIONS = sorted(EXERCISES.glob("ex*.md"))


def test_six_exercises():
    assert len(SOLUTIONS) >= 6


def test_student_versions_are_up_to_date(tmp_path):
    """Committed student notebooks are byte for byte what `make exercises` generates."""
    work = tmp_path / "exercises"
    work.mkdir()
    for md in SOLUTIONS:
        (work / md.name).write_bytes(md.read_bytes())
    generate(work)
    for made in sorted((work / "student").iterdir()):
        committed = EXERCISES / "student" / made.name
        assert committed.exists(), f"{committed} missing: run 'make exercises'"
        assert committed.read_bytes() == made.read_bytes(), (
            f"{committed.name} is stale: run 'make exercises' and commit the result")


@pytest.mark.parametrize("md", SOLUTIONS, ids=lambda p: p.stem)
def test_solution_notebook_structure(md):
    nb = jupytext.read(md)
    text = md.read_text()
    assert "**Learning goal:**" in text and "**Time:**" in text
    solutions = [c for c in nb.cells if c.cell_type == "code" and "### BEGIN SOLUTION" in c.source]
    assert solutions, "an exercise without a solution region"
    for cell in solutions:  # folded on the site, never open by default
        assert "hide-input" in cell.metadata.get("tags", []), cell.source[:60]
    for cell in nb.cells:  # written answers: hidden markers around a closed dropdown
        if cell.cell_type == "markdown" and "BEGIN SOLUTION" in cell.source:
            assert "<!-- ### BEGIN SOLUTION -->\n:::{dropdown}" in cell.source
    assert any("check_" in c.source for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize("md", SOLUTIONS, ids=lambda p: p.stem)
def test_student_version_has_no_solutions(md):
    student = (EXERCISES / "student" / md.name).read_text()
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS"):
        assert marker not in student
    assert "NotImplementedError" in student and "(student version)" in student


def test_generator_rules():
    code = "def f(x):\n    # Hint: add one\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION\n"
    assert strip_source(code, "code") == (
        'def f(x):\n    # Hint: add one\n    raise NotImplementedError("your code here: see the '
        'hint above")')
    folded = "A\n<!-- ### BEGIN SOLUTION -->\n:::{dropdown} Answer\nsecret\n:::\n<!-- ### END SOLUTION -->\nB"
    assert strip_source(folded, "markdown") == "A\nYOUR ANSWER HERE\nB"
    assert strip_source("x = 1\n### BEGIN HIDDEN TESTS\nassert x\n### END HIDDEN TESTS\n",
                        "code") == "x = 1"
