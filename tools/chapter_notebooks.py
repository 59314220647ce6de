#!/usr/bin/env python3
"""The chapters as notebooks that run in Colab: ``book/colab/<chapter>.ipynb``, one per page of
``book/`` in the table of contents, generated from its MyST source (commit the result).

A chapter reads the course's committed results, which the package installs with itself (as
``nlcourse/results``). So the notebook's first cell, in Colab (no ``nlcourse`` importable),
installs the package at the book's own ref with the extras that chapter uses (keeping Colab's
torch), and nothing else: no clone. In a checkout it only moves to ``book/``, as the site's build
runs. ``myst_nb.glue``, the build's way of handing a number to the text, becomes a no-op outside
the build (the numbers are printed by the cells, and filled into the text on the site).

    python tools/chapter_notebooks.py --write   # (re)write book/colab/*.ipynb
    python tools/chapter_notebooks.py --check   # exit 1 naming each notebook out of date

The chapter pages' Colab buttons open these notebooks (book/_ext/offline_site.py), and
``tests/test_chapter_notebooks.py`` checks they are current and runs one in a Colab-like setting.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import jupytext
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from course_setting import read_setting  # noqa: E402  (the one setting of the course)

OUT = ROOT / "book" / "colab"

SETUP = '''\
# Colab: install the course package at this book's own version, with the committed results the
# chapter reads (they come with the package). In a checkout of the repository it runs as it is.
import importlib.util, os, pathlib, subprocess, sys, types
if importlib.util.find_spec("nlcourse") is None:
    # pip keeps Colab's torch and torchvision: nlcourse asks only for torch>=2.5, torchvision>=0.20
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "nlcourse[{extras}] @ git+{url}@{ref}"], check=True)
elif pathlib.Path.cwd().name == "colab":
    os.chdir("..")      # a checkout: run from book/, as the site's build does
if importlib.util.find_spec("myst_nb") is None:
    # On the site, glue() hands a number to the text; here the cells print what matters.
    sys.modules["myst_nb"] = types.SimpleNamespace(glue=lambda name, value, display=True: None)'''


def extras(source: str) -> str:
    """The package's extras a chapter needs: ``labs`` always, ``export`` where it runs ONNX."""
    return "labs,export" if re.search(r"^\s*import onnx", source, re.M) else "labs"


def chapters(root: Path = ROOT) -> list[Path]:
    """The pages of book/ in the table of contents, in reading order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files = [toc["root"]] + [entry["file"] for part in toc["parts"]
                             for entry in part["chapters"]]
    return [root / f"{Path(f).with_suffix('').as_posix()}.md" for f in files
            if f.startswith("book/") and "code-cell" in (root / f"{Path(f).with_suffix('')}.md")
            .read_text()]


def notebook(md: Path, ref: str | None = None, root: Path = ROOT) -> str:
    """The notebook of one chapter, as the JSON text that is committed."""
    setting = read_setting(root)
    nb = jupytext.reads(md.read_text(), fmt="md:myst")
    nb.metadata.pop("jupytext", None)
    nb.metadata["colab"] = {"provenance": []}
    page = f"{setting.pages_url}{md.relative_to(root).with_suffix('.html').as_posix()}"
    intro = jupytext.reads(
        f"This notebook is generated from the chapter's source, `{md.relative_to(root).as_posix()}`"
        f" (`tools/chapter_notebooks.py`). Read the chapter on the [course site]({page}), where "
        "the numbers the cells compute are written into the text, the references resolved and "
        "the figures explained; run it here to change the code and see what follows.\n",
        fmt="md:myst").cells[0]
    code = SETUP.format(extras=extras(md.read_text()), url=setting.url, ref=ref or setting.branch)
    setup = jupytext.reads(f"```{{code-cell}} ipython3\n{code}\n```\n", fmt="md:myst").cells[0]
    setup.metadata["tags"] = ["remove-cell"]
    nb.cells = [intro, setup, *nb.cells]
    for k, cell in enumerate(nb.cells):
        cell["id"] = f"{md.stem[:40]}-{k}"     # stable ids: the committed file is reproducible
        cell.metadata.pop("jupyter", None)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    text = jupytext.writes(nb, fmt="ipynb")
    return json.dumps(json.loads(text), indent=1, ensure_ascii=False) + "\n"


def target(md: Path, root: Path = ROOT) -> Path:
    return root / "book" / "colab" / f"{md.stem}.ipynb"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="write book/colab/*.ipynb")
    mode.add_argument("--check", action="store_true", help="exit 1 if any is out of date")
    parser.add_argument("--ref", help="the ref the notebooks check out (default: the branch)")
    args = parser.parse_args(argv)
    wanted = {target(md): notebook(md, args.ref) for md in chapters()}
    stale = [p for p, text in wanted.items() if not p.exists() or p.read_text() != text]
    extra = [p for p in OUT.glob("*.ipynb") if p not in wanted] if OUT.exists() else []
    if args.check:
        for p in stale:
            print(f"{p.relative_to(ROOT)} is out of date: run make sync", file=sys.stderr)
        for p in extra:
            print(f"{p.relative_to(ROOT)} has no chapter: run make sync", file=sys.stderr)
        return 1 if stale or extra else 0
    OUT.mkdir(exist_ok=True)
    for p in stale:
        p.write_text(wanted[p])
        print(f"wrote {p.relative_to(ROOT)}")
    for p in extra:
        p.unlink()
        print(f"removed {p.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
