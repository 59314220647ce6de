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

import ast
import builtins
import copy
import hashlib
import json
import re
import symtable
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


# --- Otter-Grader: the same markers, written as Otter Assign source notebooks ----------------

OTTER = "otter"                  # notebooks/exercises/otter/: the Otter Assign source notebooks
INSTALL = re.compile(r"nlcourse\[labs\] @ git\+[^\s\"']+")
MD_SOLUTION = re.compile(r"^<!--[ \t]*### BEGIN SOLUTION[^\n]*-->\n(.*?)^<!--[ \t]*### END "
                         r"SOLUTION[^\n]*-->\n?", re.M | re.S)
CHECK_CALL = re.compile(r"^\w+ = (check_\w+\(.*\))\s*$", re.M)


def _defined(source: str) -> set:
    """Names a cell defines at its top level (functions, classes, assignments)."""
    names = set()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
    return names


def _free(body: str) -> list:
    """The names ``body`` reads from the notebook (not its own, not builtins), in the order they
    first appear (a stable order: a set's would change with Python's hash seed)."""
    code = "def _test():\n" + "".join(f"    {line}\n" for line in body.splitlines())
    tables, seen = [symtable.symtable(code, "<test>", "exec").get_children()[0]], set()
    while tables:   # the function and its comprehensions, lambdas and inner functions
        table = tables.pop()
        seen |= {name for name in table.get_globals() if not hasattr(builtins, name)}
        tables += table.get_children()
    def first(name):   # where the name first appears as a whole word (SmallCNN is not
        return re.search(rf"\b{name}\b", body).start(), name   # inside SmallCNNWithBlock)
    return sorted(seen, key=first)


def _test_cell(name: str, body: str, points, hidden: bool) -> str:
    """An Otter exception-based test: a function of the notebook's names (Otter passes each
    parameter from the graded notebook's globals), with its points."""
    config = f'""" # BEGIN TEST CONFIG\npoints: {points}\nhidden: {str(hidden).lower()}\n' \
             f'""" # END TEST CONFIG\n'
    indented = "".join(f"    {line}\n" if line.strip() else "\n" for line in body.splitlines())
    return f"{config}def {name}({', '.join(_free(body))}):\n{indented}".rstrip("\n")


def _raw(text: str) -> dict:
    return {"cell_type": "raw", "metadata": {}, "source": text}


def _md(text: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def _code(text: str, tags=()) -> dict:
    meta = {"tags": list(tags)} if tags else {}
    return {"cell_type": "code", "metadata": meta, "source": text, "outputs": [],
            "execution_count": None}


def otter_config(stem: str) -> str:
    """The ASSIGNMENT CONFIG of one exercise: a notebook that runs on Colab (so tests live in
    files), exception-based tests, no PDFs (the written answers are graded from the notebook),
    the Gradescope autograder's requirements from requirements.txt beside the notebooks."""
    return "\n".join([
        "# ASSIGNMENT CONFIG", f"name: {stem}", "runs_on: colab", "requirements: requirements.txt",
        "python_version: 3.11", "tests:", "  files: true", "  ok_format: false",
        "export_cell:", "  pdf: false", "generate:", "  pdf: false", "  show_stdout: true"])


def otter_notebook(cells: list, stem: str) -> dict:
    """The Otter Assign source notebook of one exercise, from its solution notebook's cells
    (dicts with ``cell_type``, ``source`` and ``metadata``). Each code cell with a solution
    region becomes an autograded question: its solution (Otter's ``# BEGIN SOLUTION``), a public
    test that runs the exercise's self-check, and as hidden tests the hidden-test cells that use
    a name it defines, worth their points. Each folded written answer becomes a manually graded
    question. A hidden-test cell that reads what a later cell computes (exercise 6's report)
    becomes a question of its own where it stands: Otter grades a question at its check, so its
    names must exist by then. Every other cell stays as it is, the self-checks included."""
    sources = [c["source"] if isinstance(c["source"], str) else "".join(c["source"])
               for c in cells]
    solutions = [i for i, (c, src) in enumerate(zip(cells, sources))
                 if c["cell_type"] == "code" and "### BEGIN SOLUTION" in src]
    hidden = [i for i, (c, src) in enumerate(zip(cells, sources))
              if c["cell_type"] == "code" and "### BEGIN HIDDEN TESTS" in src]
    owner, alone = {}, []
    for i in hidden:
        used = set(_free(HIDDEN_BODY.search(sources[i]).group(1)))
        users = [j for j in solutions if j < i and _defined(_marked(sources[j])) & used]
        later = set().union(*(_defined(sources[k]) for k in range(users[-1] + 1, i)
                              if cells[k]["cell_type"] == "code")) if users else set()
        if users and not used & later:
            owner.setdefault(users[-1], []).append(i)
        else:   # it reads what later cells compute (a report, say): graded where it stands
            alone.append(i)
    out = [_raw(otter_config(stem))]
    number = 0
    for i, (cell, src) in enumerate(zip(cells, sources)):
        tags = [t for t in cell.get("metadata", {}).get("tags", []) if t != "hide-input"]
        if i in alone:
            number += 1
            body = HIDDEN_BODY.search(src).group(1)
            out += [_raw(f"# BEGIN QUESTION\nname: q{number}\npoints: {_points(src)}"),
                    _raw("# BEGIN TESTS"),
                    _code(_test_cell("test_hidden_1", body, _points(src), True)),
                    _raw("# END TESTS"), _raw("# END QUESTION")]
            continue
        if i in hidden:
            continue
        if i in solutions:
            number += 1
            tests = owner.get(i, [])
            points = sum(_points(sources[j]) for j in tests)
            check = next((CHECK_CALL.search(sources[j]) for j in range(i + 1, len(cells))
                          if cells[j]["cell_type"] == "code" and CHECK_CALL.search(sources[j])),
                         None)
            out += [_raw(f"# BEGIN QUESTION\nname: q{number}\npoints: {points}"),
                    _raw("# BEGIN SOLUTION"), _code(_marked(src), tags), _raw("# END SOLUTION"),
                    _raw("# BEGIN TESTS")]
            if check is not None:
                call = check.group(1)
                out.append(_code(_test_cell("test_self_check", f"assert {call}, (\n"
                                            f"    'the self-check has not passed: read its "
                                            f"feedback above')", 0, False)))
            for k, j in enumerate(tests, 1):
                body = HIDDEN_BODY.search(sources[j]).group(1)
                out.append(_code(_test_cell(f"test_hidden_{k}", body, _points(sources[j]), True)))
            out += [_raw("# END TESTS"), _raw("# END QUESTION")]
        elif cell["cell_type"] == "markdown" and MD_SOLUTION.search(src):
            number += 1
            found = MD_SOLUTION.search(src)
            prompt, answer = src[:found.start()].rstrip(), found.group(1).strip()
            out += [_raw(f"# BEGIN QUESTION\nname: q{number}\nmanual: true\n"
                         f"points: {_points(found.group(0))}"),
                    _md(prompt), _raw("# BEGIN SOLUTION"), _md(answer), _raw("# END SOLUTION"),
                    _raw("# END QUESTION")]
            rest = src[found.end():].strip()
            if rest:
                out.append(_md(rest))
        elif cell["cell_type"] == "markdown":
            out.append(_md(src))
        else:
            out.append(_code(src, tags))
    for k, cell in enumerate(out):   # stable ids, so that regenerating changes nothing
        cell["id"] = hashlib.sha1(f"{stem}:otter:{k}".encode()).hexdigest()[:8]
    return {"cells": out, "metadata": {"kernelspec": {"display_name": "Python 3",
                                                      "language": "python", "name": "python3"},
                                       "language_info": {"name": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


HIDDEN_BODY = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS[^\n]*\n(.*?)^[ \t]*### END HIDDEN TESTS",
                         re.M | re.S)


def _marked(source: str) -> str:
    """A solution cell with Otter's markers (``# BEGIN SOLUTION``) for nbgrader's (``###``)."""
    return re.sub(r"^([ \t]*)### (BEGIN|END) SOLUTION[^\n]*$", r"\1# \2 SOLUTION", source,
                  flags=re.M)


def write_otter(folder: Path) -> list[Path]:
    """Write ``folder/otter/<name>.ipynb`` (Otter Assign source notebooks) for every
    ``folder/<name>.md``, and ``folder/otter/requirements.txt`` (what the autograder installs:
    the course package at the version the notebooks' install cells name). Rewrites a file only
    when it changes. Returns the files written."""
    import jupytext  # a tool for authors: not a dependency of the package

    out = folder / OTTER
    out.mkdir(exist_ok=True)
    written, specs = [], set()
    for md in sorted(folder.glob("*.md")):
        nb = jupytext.read(md)
        cells = [dict(cell_type=c.cell_type, source=c.source, metadata=dict(c.metadata))
                 for c in nb.cells]
        specs |= set(INSTALL.findall(md.read_text()))
        text = json.dumps(otter_notebook(cells, md.stem), indent=1, ensure_ascii=False,
                          sort_keys=True) + "\n"
        written += _write_if_changed(out / f"{md.stem}.ipynb", text)
    if len(specs) != 1:
        raise ValueError(f"the exercises' install cells name {len(specs)} versions of nlcourse: "
                         f"{sorted(specs)}; run 'make sync'")
    requirements = ("# What Otter's autograder installs (written by `make exercises` from the "
                    "notebooks' install cells)\n" + specs.pop() + "\n")
    written += _write_if_changed(out / "requirements.txt", requirements)
    return written


def _write_if_changed(path: Path, text: str) -> list[Path]:
    if path.exists() and path.read_text() == text:
        return []
    path.write_text(text)
    return [path]


if __name__ == "__main__":
    where = Path(sys.argv[1] if len(sys.argv) > 1 else "notebooks/exercises")
    for path in write_nbgrader_metadata(where) + generate(where) + write_otter(where):
        print(f"wrote {path}")
