"""The notebooks as files: each .md is paired with an .ipynb that matches it, committed without
outputs, and every lab has the Colab install cell, a parameters cell and a place in the book.
(Running them is nbval's job: `pytest` collects every notebooks/*.ipynb.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jupytext
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
PAIRED = sorted(p for p in NOTEBOOKS.rglob("*.md")
                if "results" not in p.parts and "runs" not in p.parts)
LABS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.md"))


def _cells(nb):
    return [(c.cell_type, c.source.strip(), sorted(c.metadata.get("tags", []))) for c in nb.cells]


def test_there_are_labs():
    assert [p.stem for p in LABS] == ["01_block_anatomy", "02_train_mnist", "03_attention_maps",
                                      "04_compare_modes", "05_long_range", "06_spacetime",
                                      "07_resnet_nonlocal", "08_partners"]


@pytest.mark.parametrize("md", PAIRED, ids=lambda p: str(p.relative_to(NOTEBOOKS)))
def test_pair_in_sync(md):
    ipynb = md.with_suffix(".ipynb")
    assert ipynb.exists(), f"{ipynb.name} missing: run 'make sync' (jupytext --sync {md.name})"
    assert _cells(jupytext.read(md)) == _cells(jupytext.read(ipynb)), (
        f"{md.name} and {ipynb.name} differ: edit the .md, then run 'make sync'")


@pytest.mark.parametrize("md", PAIRED, ids=lambda p: str(p.relative_to(NOTEBOOKS)))
def test_committed_without_outputs(md):
    nb = json.loads(md.with_suffix(".ipynb").read_text())
    dirty = [i for i, c in enumerate(nb["cells"])
             if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))]
    assert not dirty, f"{md.with_suffix('.ipynb').name}: cells {dirty} carry outputs; strip them"


def _repository_url():
    return yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]


@pytest.mark.parametrize("md", LABS, ids=lambda p: p.stem)
def test_lab_structure(md):
    nb = jupytext.read(md)
    code = [c for c in nb.cells if c.cell_type == "code"]
    install = code[0]
    assert "remove-cell" in install.metadata.get("tags", []), "install cell must be hidden in the book"
    assert f"nlcourse[labs] @ git+{_repository_url()}" in install.source
    assert "find_spec(\"nlcourse\") is None" in install.source   # never reinstalls over a local copy
    assert "torch" not in install.source.split("nlcourse[labs]")[0]  # Colab keeps its own torch
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and "BUDGET" in params[0].source
    # every lab reaches its experiment through a module of nlcourse.labs, starting with setup()
    assert any(re.search(r"^from nlcourse\.labs import", c.source, re.M) for c in code)
    assert any(re.search(r"^budget, device = runner\.setup\(\w+\.LAB, BUDGET", c.source, re.M)
               for c in code), "labs start with runner.setup(<lab>.LAB, BUDGET, ...)"


def test_labs_are_book_pages():
    toc = (ROOT / "_toc.yml").read_text()
    for md in LABS:
        assert f"notebooks/{md.stem}.ipynb" in toc, f"{md.stem} is not in _toc.yml"
