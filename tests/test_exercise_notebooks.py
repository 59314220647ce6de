"""The exercise notebooks as files: solutions folded in the book, student versions generated from
them and committed up to date, and the generator's rules themselves."""

from __future__ import annotations

import re
from pathlib import Path

import jupytext
import pytest

from nlcourse.exercises.student import generate, strip_source

ROOT = Path(__file__).resolve().parents[1]
EXERCISES = ROOT / "notebooks" / "exercises"
SOLUTIONS = sorted(EXERCISES.glob("ex*.md"))


def test_eleven_exercises():
    assert len(SOLUTIONS) >= 11


def test_every_exercise_is_in_the_toc():
    toc = (ROOT / "_toc.yml").read_text()
    for md in SOLUTIONS:
        assert f"notebooks/exercises/{md.stem}.ipynb" in toc, md.name


def test_every_exercise_has_a_graded_hidden_test():
    from nlcourse.exercises.student import nbgrader_metadata

    for md in SOLUTIONS:
        cells = [dict(c, source=c.source) for c in jupytext.read(md).cells]
        kinds = [m["grade_id"].split("-")[1] for m in nbgrader_metadata(cells, md.stem) if m]
        assert any(k.startswith("test") for k in kinds), md.name


def _seen(path: Path) -> dict:
    """What a student or a grader sees of a notebook: each cell's type, source and metadata (its
    tags, nbgrader's fields), and the kernel. Not the bytes: a newer jupytext may lay the same
    notebook out differently (the lock keeps `make exercises` byte for byte)."""
    nb = jupytext.read(path)
    return {"kernel": nb.metadata.get("kernelspec"),
            "cells": [(c.cell_type, c.source, dict(c.metadata)) for c in nb.cells]}


def test_student_versions_are_up_to_date(tmp_path):
    """Committed student notebooks hold what `make exercises` generates."""
    work = tmp_path / "exercises"
    work.mkdir()
    for md in SOLUTIONS:
        (work / md.name).write_bytes(md.read_bytes())
    generate(work)
    made = sorted((work / "student").iterdir())
    assert {p.name for p in made} == {p.name for p in (EXERCISES / "student").iterdir()}, (
        "the student folder holds other files than `make exercises` writes")
    for path in made:
        committed = EXERCISES / "student" / path.name
        assert _seen(committed) == _seen(path), (
            f"{committed.name} is stale: run 'make exercises' and commit the result")


def test_the_comparison_sees_a_changed_cell(tmp_path):
    student = EXERCISES / "student" / SOLUTIONS[0].name
    changed = tmp_path / student.name
    changed.write_text(student.read_text().replace("**Learning goal:**", "**Goal:**", 1))
    assert _seen(changed) != _seen(student)


def test_no_notebook_records_the_jupytext_version():
    """A version stamp would make every file stale on each jupytext release (jupytext.toml and
    the student generator both leave it out)."""
    stamped = [p.relative_to(ROOT) for p in (ROOT / "notebooks").rglob("*.md")
               if "jupytext_version" in p.read_text()]
    assert not stamped, f"{stamped}: run 'make sync' and 'make exercises'"


@pytest.mark.parametrize("md", SOLUTIONS, ids=lambda p: p.stem)
def test_solution_notebook_structure(md):
    nb = jupytext.read(md)
    text = md.read_text()
    assert "**Learning goal:**" in text and "**Time:**" in text
    solutions = [c for c in nb.cells if c.cell_type == "code" and "### BEGIN SOLUTION" in c.source]
    assert solutions, "an exercise without a solution region"
    for cell in solutions:  # folded on the site, never open by default
        assert "hide-input" in cell.metadata.get("tags", []), cell.source[:60]
    for cell in nb.cells:  # written answers: hidden markers (with points, maybe) around a dropdown
        if cell.cell_type == "markdown" and "BEGIN SOLUTION" in cell.source:
            assert re.search(r"<!-- ### BEGIN SOLUTION( \(\d+ points?\))? -->\n:::\{dropdown\}",
                             cell.source), cell.source[:80]
    assert any("check_" in c.source for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize("md", SOLUTIONS, ids=lambda p: p.stem)
def test_student_version_has_no_solutions(md):
    student = (EXERCISES / "student" / md.name).read_text()
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS"):
        assert marker not in student
    assert "NotImplementedError" in student and "(student version)" in student


def test_points_are_read_from_the_markers():
    from nlcourse.exercises.student import nbgrader_metadata

    cells = [dict(cell_type="code", source="x = 1\n### BEGIN HIDDEN TESTS (3 points)\nassert x\n"
                  "### END HIDDEN TESTS"),
             dict(cell_type="markdown", source="Q\n<!-- ### BEGIN SOLUTION (2 points) -->\n"
                  ":::{dropdown} A\nB\n:::\n<!-- ### END SOLUTION -->"),
             dict(cell_type="code", source="### BEGIN HIDDEN TESTS\nassert 1\n### END HIDDEN TESTS")]
    test, answer, default = nbgrader_metadata(cells, "exNN")
    assert (test["points"], test["grade_id"], test["locked"]) == (3, "exNN-test1", True)
    assert (answer["points"], answer["grade"], answer["solution"]) == (2, True, True)
    assert default["points"] == 1 and default["grade_id"] == "exNN-test2"


def test_generator_rules():
    code = "def f(x):\n    # Hint: add one\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION\n"
    assert strip_source(code, "code") == (
        'def f(x):\n    # Hint: add one\n    raise NotImplementedError("your code here: see the '
        'hint above")')
    folded = "A\n<!-- ### BEGIN SOLUTION -->\n:::{dropdown} Answer\nsecret\n:::\n<!-- ### END SOLUTION -->\nB"
    assert strip_source(folded, "markdown") == "A\nYOUR ANSWER HERE\nB"
    assert strip_source("x = 1\n### BEGIN HIDDEN TESTS\nassert x\n### END HIDDEN TESTS\n",
                        "code") == "x = 1"


# --- the Otter Assign source notebooks ---------------------------------------------------------

OTTER = EXERCISES / "otter"


def test_otter_notebooks_are_up_to_date(tmp_path):
    """The committed Otter notebooks (and their requirements.txt) are what `make exercises`
    writes from the solution notebooks."""
    from nlcourse.exercises.student import write_otter

    for md in SOLUTIONS:
        (tmp_path / md.name).write_bytes(md.read_bytes())
    write_otter(tmp_path)
    made = sorted(p.name for p in (tmp_path / "otter").iterdir())
    committed = sorted(p.name for p in OTTER.iterdir() if p.suffix in (".ipynb", ".txt"))
    assert made == committed, (
        "the otter folder holds other files than `make exercises` writes")
    for name in made:
        assert (OTTER / name).read_text() == (tmp_path / "otter" / name).read_text(), (
            f"otter/{name} is stale: run 'make exercises' and commit the result")


@pytest.mark.parametrize("md", SOLUTIONS, ids=lambda p: p.stem)
def test_otter_questions_carry_the_same_points_as_nbgrader(md):
    """Each code answer is one Otter question worth its hidden tests' points; each written
    answer a manual question; no hidden test is lost on the way."""
    import json

    from nlcourse.exercises.student import nbgrader_metadata

    cells = [dict(cell_type=c.cell_type, source=c.source) for c in jupytext.read(md).cells]
    nbgrader = [m for m in nbgrader_metadata(cells, md.stem) if m]
    tests = sum(m["points"] for m in nbgrader if m["grade_id"].split("-")[1].startswith("test"))
    answers = sum(m["points"] for m in nbgrader
                  if m["grade_id"].split("-")[1].startswith("answer"))
    otter = json.loads((OTTER / f"{md.stem}.ipynb").read_text())["cells"]
    auto = manual = 0
    hidden = 0
    for cell in otter:
        source = cell["source"]
        if cell["cell_type"] == "raw" and source.startswith("# BEGIN QUESTION"):
            points = float(re.search(r"points: ([\d.]+)", source).group(1))
            if "manual: true" in source:
                manual += points
            else:
                auto += points
        if cell["cell_type"] == "code" and "hidden: true" in source:
            hidden += 1
    assert auto == tests and manual == answers, (auto, tests, manual, answers)
    assert hidden == sum(1 for m in nbgrader if m["grade_id"].split("-")[1].startswith("test"))
    assert otter[0]["source"].startswith("# ASSIGNMENT CONFIG") and "runs_on: colab" in \
        otter[0]["source"]


# --- a student version fails once, at its stub ------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("md", SOLUTIONS, ids=lambda p: p.stem)
def test_a_student_version_fails_once(md, tmp_path):
    """Run as handed out, with nothing filled in: the stub raises (or the check reports it), and
    every later cell that needs the answer stops with one line of NotReady, never a NameError
    or a second traceback."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(EXERCISES / "student" / f"{md.stem}.ipynb", as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [(out["ename"], out["traceback"]) for cell in nb.cells if cell.cell_type == "code"
              for out in cell.get("outputs", []) if out.get("output_type") == "error"]
    names = [name for name, _ in errors]
    assert "NameError" not in names, errors
    assert names.count("NotImplementedError") <= 1, names
    assert all(name in ("NotImplementedError", "NotReady") for name in names), errors
    for name, traceback in errors:
        if name == "NotReady":
            assert len(traceback) == 1, traceback
