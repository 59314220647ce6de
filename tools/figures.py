#!/usr/bin/env python3
"""Every figure of some pages, as a phone and a desktop will show it: its natural width, the
smallest text it draws (which ``nlcourse.viz.use_style`` writes into each PNG), the size that
text shows at in the site's column on a 390 px phone and a 1280 px desktop, and its alt text.

    python tools/figures.py book/gaussian.md notebooks/02_train_mnist.md   # executes them
    python tools/figures.py _build/jupyter_execute/book/gaussian.ipynb     # already executed

A page is executed as the site's build does (from its folder, NLCOURSE_SOURCE=auto, the budget of
``$NLCOURSE_BUDGET``, smoke if unset). Exit 1 if any figure's text would show under 9 CSS px or
has no description: the same limits as ``tests/test_site_reader.py``, which measures the built
site in a browser; this is the quick loop for drawing a figure.
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLUMN = {"phone": 358, "desktop": 684}   # the article's width in CSS px at 390 and 1280 px
MIN_TEXT_PX = 9.0
MIN_FONT_KEY = "nlcourse:min-font-px"


def executed(page: Path, workdir: Path) -> Path:
    if page.suffix == ".ipynb":
        return page
    notebook = workdir / f"{page.stem}.ipynb"
    subprocess.run([sys.executable, "-m", "jupytext", "--to", "ipynb", "-o", str(notebook),
                    str(page)], check=True, capture_output=True)
    env = {**os.environ, "NLCOURSE_SOURCE": "auto",
           "NLCOURSE_BUDGET": os.environ.get("NLCOURSE_BUDGET", "smoke")}
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                    "--inplace", "--ExecutePreprocessor.timeout=1200", str(notebook)],
                   check=True, cwd=page.parent, env=env, capture_output=True)
    return notebook


def figures(notebook: Path):
    import nbformat
    from PIL import Image

    nb = nbformat.read(notebook, as_version=4)
    for k, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/png" not in data:
                continue
            with Image.open(io.BytesIO(base64.b64decode(data["image/png"]))) as png:
                text = getattr(png, "text", {}) or {}
                width = png.size[0]
            font = float(text[MIN_FONT_KEY]) if MIN_FONT_KEY in text else None
            yield k, width, font, text.get("Description")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="+", type=Path)
    args = parser.parse_args(argv)
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        for page in args.pages:
            notebook = executed(page.resolve(), Path(tmp))
            print(f"{page}")
            for cell, width, font, alt in figures(notebook):
                shown = {where: (None if not font else round(font * min(1, col / width), 1))
                         for where, col in COLUMN.items()}
                small = any(s is not None and s < MIN_TEXT_PX for s in shown.values())
                wordless = not alt or font is None
                bad += small or wordless
                mark = "SMALL" if small else ("NO WORDS" if wordless else "ok")
                print(f"  cell {cell:>3}: {width:>5} px wide, smallest text {font} px; shows at "
                      f"{shown['phone']} px on a phone, {shown['desktop']} px on a desktop "
                      f"[{mark}]\n             alt: {alt!r}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
