"""The built site as files (no browser needed): no page carries a path of the machine that built
it (the build folder, a home folder), which autodoc's rendering of a default argument or a
printed path would put there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"
# Any home or work folder of a machine: /root/..., /home/<user>/..., /Users/<user>/..., /tmp/...
MACHINE_PATH = re.compile(r"(?<![\w.])(/root/|/home/\w+/|/Users/\w+/|/tmp/\w)")

pytestmark = pytest.mark.slow   # reads the built site: make test runs it, make check does not


def _built_files() -> list[Path]:
    if not (SITE / "index.html").exists():
        pytest.fail(f"no built site at {SITE}: run 'make book' first ('make test' does)")
    return sorted(p for p in SITE.rglob("*") if p.suffix in (".html", ".txt", ".ipynb", ".md")
                  and "_static" not in p.parts)


def test_no_page_shows_the_build_folder():
    here = str(ROOT)
    found = [p.relative_to(SITE) for p in _built_files() if here in p.read_text(errors="replace")]
    assert not found, f"pages that show the build folder {here}: {found[:10]}"


def test_no_page_shows_a_home_or_scratch_folder():
    found = {}
    for path in _built_files():
        match = MACHINE_PATH.search(path.read_text(errors="replace"))
        if match:
            found[str(path.relative_to(SITE))] = match.group(0)
    assert not found, f"machine paths in the built site: {dict(list(found.items())[:10])}"


def test_the_scan_finds_a_planted_path(tmp_path):
    page = tmp_path / "page.html"
    page.write_text(f"<p>out=PosixPath('{ROOT}/nlcourse/weights')</p>")
    assert str(ROOT) in page.read_text()
    assert MACHINE_PATH.search("see /home/alice/nlcourse") and not MACHINE_PATH.search("a/tmp/x")
