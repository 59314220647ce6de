"""Generate the student versions of the exercise notebooks from the solution notebooks.

Authors write only solutions, marked with nbgrader's conventions, so instructors who use nbgrader
can take the notebooks as they are:

* ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` in a code cell becomes
  ``raise NotImplementedError(...)`` at the same indentation (comment lines written just above
  the marker stay, as the hint); in a markdown cell, where the markers are HTML comments around
  a folded answer, it becomes "YOUR ANSWER HERE".
* ``### BEGIN HIDDEN TESTS`` ... ``### END HIDDEN TESTS`` is removed.
* Cells folded in the book (``hide-input``, so the site shows solutions closed) are unfolded.

nbgrader itself would bring a Jupyter server and a database for four string rules, so this
module implements the rules in a few lines; ``tests/test_exercise_notebooks.py`` holds the
committed student versions equal to what it generates.

Usage: ``python -m nlcourse.exercises.student notebooks/exercises`` (``make exercises``).
"""

from __future__ import annotations

import copy
import hashlib
import re
import sys
from pathlib import Path

# In markdown the markers sit in HTML comments (<!-- ### BEGIN SOLUTION -->), so that the site
# does not render them as headings; nbgrader finds them there too (it matches within the line).
SOLUTION = re.compile(r"^([ \t]*)(?:<!--[ \t]*)?### BEGIN SOLUTION[^\n]*\n.*?"
                      r"^[ \t]*(?:<!--[ \t]*)?### END SOLUTION[^\n]*(\n|$)", re.M | re.S)
HIDDEN = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS[^\n]*\n.*?^[ \t]*### END HIDDEN TESTS[^\n]*(\n|$)",
                    re.M | re.S)
STUB = 'raise NotImplementedError("your code here: see the hint above")'


def strip_source(source: str, cell_type: str) -> str:
    """Apply the rules to one cell's source."""
    if cell_type == "code":
        source = SOLUTION.sub(lambda m: f"{m.group(1)}{STUB}{m.group(2)}", source)
    else:
        source = SOLUTION.sub(lambda m: f"YOUR ANSWER HERE{m.group(2)}", source)
    source = HIDDEN.sub("", source)
    return source.rstrip("\n")


def student_notebook(nb):
    """The student version of a solution notebook (a jupytext/nbformat notebook)."""
    nb = copy.deepcopy(nb)
    cells = []
    for cell in nb.cells:
        had_solution = "### BEGIN SOLUTION" in cell.source
        cell.source = strip_source(cell.source, cell.cell_type)
        if not cell.source.strip():
            continue  # a cell that held only hidden tests
        tags = [t for t in cell.metadata.get("tags", []) if not (had_solution and t == "hide-input")]
        if tags:
            cell.metadata["tags"] = tags
        else:
            cell.metadata.pop("tags", None)
        cells.append(cell)
    nb.cells = cells
    first = nb.cells[0]
    if first.cell_type == "markdown" and first.source.startswith("# "):
        title, _, rest = first.source.partition("\n")
        first.source = f"{title} (student version)\n{rest}" if rest else f"{title} (student version)"
    return nb


def generate(folder: Path) -> list[Path]:
    """Write ``folder/student/<name>.md`` and ``.ipynb`` for every ``folder/<name>.md``."""
    import jupytext  # a tool for authors: not a dependency of the package

    written = []
    out = folder / "student"
    out.mkdir(exist_ok=True)
    for md in sorted(folder.glob("*.md")):
        nb = student_notebook(jupytext.read(md))
        nb.metadata.get("jupytext", {}).pop("formats", None)
        for i, cell in enumerate(nb.cells):  # stable ids, so that regenerating changes nothing
            cell["id"] = hashlib.sha1(f"{md.stem}:{i}".encode()).hexdigest()[:8]
        for suffix, fmt in ((".md", "md:myst"), (".ipynb", "ipynb")):
            path = out / f"{md.stem}{suffix}"
            jupytext.write(nb, path, fmt=fmt)
            written.append(path)
    return written


if __name__ == "__main__":
    for path in generate(Path(sys.argv[1] if len(sys.argv) > 1 else "notebooks/exercises")):
        print(f"wrote {path}")
