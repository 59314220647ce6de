"""The chapters' Colab notebooks (book/colab/, written by tools/chapter_notebooks.py) are those of
the current chapters and fetch the repository the one setting names. (Running one in a Colab-like
environment is tests/test_colab.py's job.)"""

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
        assert f'"git", "clone", "-q", "{setting["url"]}"' in setup, path.name
        assert f'"checkout", "-q", "{setting["branch"]}"' in setup, path.name
        assert "NLCOURSE_RESULTS" in setup and "torch" not in setup.split("pip")[0], path.name
        source = (ROOT / "book" / f"{path.stem}.md").read_text()
        assert all(not c.get("outputs") for c in cells if c["cell_type"] == "code"), path.name
        first_code = next(c for c in cells[2:] if c["cell_type"] == "code")
        assert "".join(first_code["source"]).strip() in source, f"{path.name}: not its chapter's"
