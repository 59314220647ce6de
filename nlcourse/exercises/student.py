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

For instructors who do use nbgrader (0.9.6), :func:`write_nbgrader_metadata` writes nbgrader's
cell metadata into the solution notebooks' ``.ipynb`` themselves, derived from the same markers
(the ``.md`` sources filter it out with jupytext's ``cell_metadata_filter: -nbgrader``, so it
lives in one place and survives ``jupytext --sync``):

* a code cell with a solution region: an "autograded answer" (``solution``);
* a code cell with hidden tests: "autograder tests" (``grade``, ``locked``), worth the points
  written in its marker, ``### BEGIN HIDDEN TESTS (2 points)``, and 1 point without;
* a markdown cell with a folded answer: a "manually graded answer" (``grade``, ``solution``),
  1 point unless its marker says otherwise, ``<!-- ### BEGIN SOLUTION (2 points) -->``;
* every other code cell: "read-only" (``locked``), so that nbgrader restores the checks and the
  set-up cells if a student edits them.

Usage: ``python -m nlcourse.exercises.student notebooks/exercises`` (``make exercises``): writes
the metadata, then the student versions.
"""

from __future__ import annotations

import copy
import hashlib
import json
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
NO_VERSION_STAMP = "-jupytext.text_representation.jupytext_version"


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


POINTS = re.compile(r"### BEGIN (?:SOLUTION|HIDDEN TESTS)[^\n]*?\((\d+(?:\.\d+)?) points?\)")


def _points(source: str) -> float:
    found = POINTS.search(source)
    value = float(found.group(1)) if found else 1.0
    return int(value) if value == int(value) else value


def nbgrader_metadata(cells, stem: str) -> list:
    """nbgrader's metadata for each cell of a solution notebook (None: no metadata), from its
    markers. ``grade_id``s are unique and stable: ``<stem>-<kind><k>``, counted per kind."""
    counts = {}
    out = []
    for cell in cells:
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        solution = "### BEGIN SOLUTION" in source
        hidden = "### BEGIN HIDDEN TESTS" in source
        if cell["cell_type"] == "markdown":
            if not solution:
                out.append(None)
                continue
            kind, meta = "answer", dict(grade=True, solution=True, locked=False,
                                        points=_points(source))
        elif cell["cell_type"] != "code":
            out.append(None)
            continue
        elif solution and hidden:
            raise ValueError(f"{stem}: a cell holds both a solution and hidden tests; nbgrader "
                             f"needs them in separate cells")
        elif solution:
            kind, meta = "solution", dict(grade=False, solution=True, locked=False)
        elif hidden:
            kind, meta = "test", dict(grade=True, solution=False, locked=True,
                                      points=_points(source))
        else:
            kind, meta = "cell", dict(grade=False, solution=False, locked=True)
        counts[kind] = counts.get(kind, 0) + 1
        meta["grade_id"] = f"{stem}-{kind}{counts[kind]}"
        meta["schema_version"] = 3
        out.append(dict(sorted(meta.items())))
    return out


def write_nbgrader_metadata(folder: Path) -> list[Path]:
    """Write nbgrader's cell metadata into ``folder/<name>.ipynb`` for every ``folder/<name>.md``
    (the paired solution notebook, synced first by ``make exercises``). Rewrites a file only when
    its metadata changes. Returns the files written."""
    written = []
    for md in sorted(folder.glob("*.md")):
        path = md.with_suffix(".ipynb")
        if not path.exists():
            raise FileNotFoundError(f"{path} missing: pair it first (jupytext --sync {md})")
        text = path.read_text()
        nb = json.loads(text)
        for cell, meta in zip(nb["cells"], nbgrader_metadata(nb["cells"], md.stem)):
            if meta is None:
                cell["metadata"].pop("nbgrader", None)
            else:
                cell["metadata"]["nbgrader"] = meta
        new = json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n"
        if new != text:
            path.write_text(new)
            written.append(path)
    return written


def generate(folder: Path) -> list[Path]:
    """Write ``folder/student/<name>.md`` and ``.ipynb`` for every ``folder/<name>.md``."""
    import jupytext  # a tool for authors: not a dependency of the package

    from jupytext.config import JupytextConfiguration  # (as above)

    # No version stamp in the headers (as jupytext.toml says for the paired files): a newer
    # jupytext then regenerates the same bytes.
    config = JupytextConfiguration(notebook_metadata_filter=NO_VERSION_STAMP)
    written = []
    out = folder / "student"
    out.mkdir(exist_ok=True)
    for md in sorted(folder.glob("*.md")):
        nb = student_notebook(jupytext.read(md))
        nb.metadata.get("jupytext", {}).pop("formats", None)
        for i, cell in enumerate(nb.cells):  # stable ids, so that regenerating changes nothing
            cell["id"] = hashlib.sha1(f"{md.stem}:{i}".encode()).hexdigest()[:8]
        # The .md last: writing it with the config adds the filter to the notebook's metadata.
        for suffix, fmt in ((".ipynb", "ipynb"), (".md", "md:myst")):
            path = out / f"{md.stem}{suffix}"
            jupytext.write(nb, path, fmt=fmt, config=config if suffix == ".md" else None)
            written.append(path)
    return written


if __name__ == "__main__":
    where = Path(sys.argv[1] if len(sys.argv) > 1 else "notebooks/exercises")
    for path in write_nbgrader_metadata(where) + generate(where):
        print(f"wrote {path}")
