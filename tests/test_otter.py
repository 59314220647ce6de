"""The Otter-Grader route an instructor runs (book/instructors.md gives the same commands):
`otter assign` on the committed Otter source notebooks (notebooks/exercises/otter/, written by
`make exercises` from the same markers as nbgrader's metadata), then `otter run` (no Docker) on
submissions: the solutions, which get full marks, and for three exercises a student notebook
filled in with one typical mistake, which loses that question's points and nothing else.

`make test` grades three exercises; `make otter` (NLCOURSE_OTTER=all) grades all eleven."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("otter", reason="otter-grader==7.0.0 is in requirements.txt")

pytestmark = pytest.mark.slow   # Otter in a course folder: make test runs it, make check does not

ROOT = Path(__file__).resolve().parents[1]
OTTER = ROOT / "notebooks" / "exercises" / "otter"
ALL = sorted(p.stem for p in OTTER.glob("ex*.ipynb"))

# One typical mistake per exercise graded in CI: (question, old, new) in that question's answer.
MISTAKES = {
    "ex02_dot_product": ("q1", "theta @ phi.transpose(1, 2) / phi.shape[1]",
                         "theta @ phi.transpose(1, 2)"),            # the 1/M forgotten
    "ex04_subsample_init": ("q2", "torch.nn.init.zeros_(block.W[1].weight)",
                            "torch.nn.init.zeros_(block.W[0].weight)"),  # conv zeroed, gamma 1
    "ex11_path_length": ("q1", "enumerate(layers, 1)", "enumerate(layers)"),   # counted from 0
}
GRADED = ALL if os.environ.get("NLCOURSE_OTTER") == "all" else sorted(MISTAKES)


def otter(folder: Path, *args: str) -> str:
    env = dict(os.environ, OMP_NUM_THREADS="1", NLCOURSE_BUDGET="smoke",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run([sys.executable, "-m", "otter", *args], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


_GRADED = {}


def scores(folder: Path, zip_file: Path, submission: Path) -> dict:
    """{question: (score, max_score)} of the graded questions, from `otter run`'s results (each
    submission graded once)."""
    if submission in _GRADED:
        return _GRADED[submission]
    out = folder / f"out-{submission.stem}"
    out.mkdir()
    otter(folder, "run", "-a", str(zip_file), "-o", str(out), "--no-logo", str(submission))
    results = json.loads((out / "results.json").read_text())
    _GRADED[submission] = {t["name"]: (t["score"], t["max_score"]) for t in results["tests"]
                           if "max_score" in t and t["name"] != "Public Tests"}
    return _GRADED[submission]


@pytest.fixture(scope="module", params=GRADED)
def assigned(request, tmp_path_factory):
    """One exercise through `otter assign`: (folder, its autograder zip, the autograder and the
    student notebooks)."""
    name = request.param
    folder = tmp_path_factory.mktemp(name)
    for path in (OTTER / f"{name}.ipynb", OTTER / "requirements.txt"):
        shutil.copy(path, folder / path.name)
    otter(folder, "assign", "--no-run-tests", f"{name}.ipynb", "dist")
    zips = sorted((folder / "dist" / "autograder").glob("*.zip"))
    assert len(zips) == 1, zips
    return (name, folder, zips[0], folder / "dist" / "autograder" / f"{name}.ipynb",
            folder / "dist" / "student" / f"{name}.ipynb")


def test_the_student_notebook_hides_solutions_and_hidden_tests(assigned):
    name, folder, _, _, student = assigned
    text = student.read_text()
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS", "ASSIGNMENT CONFIG"):
        assert marker not in text, marker
    public = "".join(p.read_text() for p in (folder / "dist" / "student" / "tests").glob("*.py"))
    assert "hidden=True" not in public and "test_self_check" in public
    cells = json.loads(text)["cells"]
    assert any("grader.check(" in "".join(c["source"]) for c in cells)
    assert "%pip install" in "".join(cells[0]["source"])          # runs_on: colab


def test_solutions_get_full_marks(assigned):
    name, folder, zip_file, solutions, _ = assigned
    got = scores(folder, zip_file, solutions)
    assert got, "no autograded question"
    for question, (score, most) in got.items():
        assert score == most and most > 0, f"{name} {question}: {score} of {most}"


def test_a_typical_mistake_loses_its_question_only(assigned):
    name, folder, zip_file, solutions, student = assigned
    if name not in MISTAKES:
        pytest.skip("a planted mistake is graded for three exercises")
    question, old, new = MISTAKES[name]
    answers = json.loads(solutions.read_text())["cells"]
    nb = json.loads(student.read_text())
    planted = 0
    for cell, answer in zip(nb["cells"], answers):   # the student fills in every answer cell
        if cell["cell_type"] == "code" and cell["source"] != answer["source"]:
            source = "".join(answer["source"])
            planted += old in source
            cell["source"] = source.replace(old, new)
    assert planted == 1, f"{old!r} found {planted} times"
    submission = folder / "submission.ipynb"
    submission.write_text(json.dumps(nb))
    full = scores(folder, zip_file, solutions)
    got = scores(folder, zip_file, submission)
    assert got[question][0] < full[question][0], (question, got)
    assert {q: s for q, s in got.items() if q != question} == \
        {q: s for q, s in full.items() if q != question}, got
