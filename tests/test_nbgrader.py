"""The nbgrader round trip an instructor runs (book/instructors.md gives the same commands):
`nbgrader generate_assignment` on the solution notebooks as committed, then `nbgrader autograde`
on three submissions: the solutions, which get full marks; one whose function forgot its
`return`; and one with a constant-factor error (the 1/M forgotten). Each planted mistake must cost
exactly its own question's points, and nothing else.

Exercises 1-4 and 7-11 are autograded (pure tensor code, seconds each); exercises 5 and 6 train or
load a model, so they are generated here (which validates their metadata) but not executed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

nbgrader = pytest.importorskip("nbgrader", reason="nbgrader==0.9.6 is in requirements.txt")

pytestmark = pytest.mark.slow   # nbgrader in a course folder: make test runs it, make check does not

ROOT = Path(__file__).resolve().parents[1]
EXERCISES = ROOT / "notebooks" / "exercises"
GRADED = ["ex01_embedded_gaussian", "ex02_dot_product", "ex03_concatenation",
          "ex04_subsample_init", "ex07_softmax_backward", "ex08_block_cost", "ex09_multi_head",
          "ex10_topk", "ex11_path_length"]


def nbgrader_cli(course: Path, *args: str) -> str:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               OMP_NUM_THREADS="1", NLCOURSE_BUDGET="smoke")
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stderr


def cells_by_id(path: Path) -> dict:
    nb = json.loads(path.read_text())
    return {c["metadata"]["nbgrader"]["grade_id"]: c for c in nb["cells"]
            if "nbgrader" in c["metadata"]}


def submit(course: Path, student: str, edits: dict, names: list) -> None:
    """A student's submission of the notebooks ``names``: the released notebooks with every
    solution cell filled in from the solution notebook, then ``edits`` applied: {grade_id: (old,
    new)} string replacements."""
    folder = course / "submitted" / student / "ps1"
    folder.mkdir(parents=True)
    for name in names:
        nb = json.loads((course / "release" / "ps1" / f"{name}.ipynb").read_text())
        solutions = cells_by_id(course / "source" / "ps1" / f"{name}.ipynb")
        for cell in nb["cells"]:
            meta = cell["metadata"].get("nbgrader", {})
            if meta.get("solution") and cell["cell_type"] == "code":
                source = "".join(solutions[meta["grade_id"]]["source"])
                source = "\n".join(line for line in source.splitlines()
                                   if "### BEGIN SOLUTION" not in line
                                   and "### END SOLUTION" not in line)
                if meta["grade_id"] in edits:
                    old, new = edits[meta["grade_id"]]
                    assert old in source, (old, source)
                    source = source.replace(old, new)
                cell["source"] = source
        (folder / f"{name}.ipynb").write_text(json.dumps(nb, indent=1))


def grades(course: Path, student: str, names: list = GRADED) -> dict:
    """{grade_id: (autograded score, points)} of the autograder-test cells of ``names``."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        submission = gb.find_submission("ps1", student)
        return {g.name: (g.auto_score, g.max_score) for nb in submission.notebooks
                if nb.name in names for g in nb.grades if g.name.split("-")[1].startswith("test")}


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    course = tmp_path_factory.mktemp("course")
    (course / "nbgrader_config.py").write_text(
        'c = get_config()\nc.CourseDirectory.course_id = "nlcourse"\n')
    source = course / "source" / "ps1"
    source.mkdir(parents=True)
    for nb in sorted(EXERCISES.glob("ex*.ipynb")):
        shutil.copy(nb, source / nb.name)
    nbgrader_cli(course, "generate_assignment", "ps1", "--force")
    solutions = course / "submitted" / "solutions" / "ps1"
    solutions.mkdir(parents=True)
    for name in GRADED:
        shutil.copy(source / f"{name}.ipynb", solutions / f"{name}.ipynb")
    # each planted mistake hands in the notebook it breaks (and so runs in seconds)
    submit(course, "forgot_return", {"ex01_embedded_gaussian-solution1": (
        "    return attention @ g, attention", "    y = attention @ g")},
        ["ex01_embedded_gaussian"])
    submit(course, "constant_factor", {"ex02_dot_product-solution1": (
        "theta @ phi.transpose(1, 2) / phi.shape[1]", "theta @ phi.transpose(1, 2)")},
        ["ex02_dot_product"])
    nbgrader_cli(course, "autograde", "ps1", "--force", "--create")
    return course


def test_release_has_no_solutions_and_no_hidden_tests(course):
    released = sorted((course / "release" / "ps1").glob("*.ipynb"))
    assert [p.stem for p in released] == sorted(p.stem for p in EXERCISES.glob("ex*.ipynb"))
    for path in released:
        text = path.read_text()
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS", "nonlocal_op("):
            assert marker not in text, (path.name, marker)
        assert "NotImplementedError" in text or "YOUR CODE HERE" in text


def test_solutions_get_full_marks(course):
    got = grades(course, "solutions")
    assert len(got) == len(GRADED) + 2, got  # one test cell each, but two in ex02 and ex04
    for name, (score, most) in got.items():
        assert score == most, f"{name}: {score} of {most}"


def test_a_forgotten_return_loses_that_question(course):
    got = grades(course, "forgot_return", ["ex01_embedded_gaussian"])
    assert got == {"ex01_embedded_gaussian-test1": (0.0, 2.0)}, got


def test_a_constant_factor_loses_that_question(course):
    """Part 1 of exercise 2 lost its 1/M: its test scores 0, part 2's keeps its point."""
    got = grades(course, "constant_factor", ["ex02_dot_product"])
    assert got == {"ex02_dot_product-test1": (0.0, 2.0), "ex02_dot_product-test2": (1.0, 1.0)}, got


def test_metadata_is_what_make_exercises_writes(tmp_path):
    """The committed solution notebooks hold exactly the metadata the markers give."""
    from nlcourse.exercises.student import write_nbgrader_metadata

    for md in EXERCISES.glob("ex*.md"):
        shutil.copy(md, tmp_path / md.name)
        shutil.copy(md.with_suffix(".ipynb"), tmp_path / f"{md.stem}.ipynb")
    assert write_nbgrader_metadata(tmp_path) == [], "run 'make exercises' and commit the result"
