"""The chapters' Colab notebooks (book/colab/, written by tools/chapter_notebooks.py) are those of
the current chapters and install the package the one setting names, with the extras the chapter
uses. (Running one in a Colab-like environment is tests/test_colab.py's job.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_chapter_notebooks_are_current():
    run = subprocess.run([sys.executable, "tools/chapter_notebooks.py", "--check"], cwd=ROOT,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_every_chapter_notebook_fetches_the_course_at_its_setting():
    setting = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    notebooks = sorted((ROOT / "book" / "colab").glob("*.ipynb"))
    assert len(notebooks) >= 15, [p.name for p in notebooks]
    for path in notebooks:
        cells = json.loads(path.read_text())["cells"]
        setup = "".join(next(c for c in cells if c["cell_type"] == "code")["source"])
        source = (ROOT / "book" / f"{path.stem}.md").read_text()
        extras = "labs,export" if path.stem == "implementation" else "labs"
        assert f'"nlcourse[{extras}] @ git+{setting["url"]}@{setting["branch"]}"' in setup, \
            path.name                       # the results come with the package: no clone
        assert "clone" not in setup and "torch" not in setup.split("pip")[0], path.name
        assert all(not c.get("outputs") for c in cells if c["cell_type"] == "code"), path.name
        first_code = next(c for c in cells[2:] if c["cell_type"] == "code")
        assert "".join(first_code["source"]).strip() in source, f"{path.name}: not its chapter's"
