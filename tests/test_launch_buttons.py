"""Every launch button of the built site opens something that runs: a notebook (.ipynb) that
exists in the repository, the student version on exercise pages, and on the chapters their
generated notebook (book/colab/, never the .md, which Colab cannot open). Reads `_build/html` (`make test` builds it first); the hook that sets the
buttons is also tested alone, without a build."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"

pytestmark = pytest.mark.slow   # reads the built site: make test runs it, make check does not


def _hook():
    spec = importlib.util.spec_from_file_location("offline_site", ROOT / "book/_ext/offline_site.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _targets(html: str) -> list[str]:
    """Repository paths that the page's Colab and Binder buttons open."""
    paths = []
    for url in re.findall(r'href="(https://(?:colab\.research\.google\.com|mybinder\.org)[^"]+)"', html):
        url = url.replace("&amp;", "&")
        parsed = urlparse(url)
        if parsed.netloc.startswith("colab"):
            paths.append(unquote(parsed.path.split("/blob/", 1)[1].split("/", 1)[1]))
        else:
            paths.append(unquote(parse_qs(parsed.query)["urlpath"][0]).split("/", 1)[1])
    return paths


def test_hook_sends_exercises_to_the_student_version_and_chapters_to_their_notebooks(tmp_path):
    hook = _hook()
    student = tmp_path / "src" / hook.STUDENT / "ex09_x.ipynb"
    student.parent.mkdir(parents=True)
    student.write_text("{}")

    class App:
        srcdir, outdir = tmp_path / "src", tmp_path / "out"

    def context():
        return {"pathto": lambda *_: "../..", "header_buttons": [
            {"label": "launch-buttons", "buttons": [
                {"url": "https://colab.research.google.com/github/o/r/blob/main/"
                        "notebooks/exercises/ex09_x.ipynb"}]},
            {"label": "download-buttons", "buttons": [{"label": "download-source-button"}]}]}

    ctx = context()
    hook._launch_targets(App, "notebooks/exercises/ex09_x", "page.html", ctx, None)
    launch, download = ctx["header_buttons"]
    assert launch["buttons"][0]["url"].endswith("blob/main/notebooks/exercises/student/ex09_x.ipynb")
    assert download["buttons"][0]["label"] == "download-student-button"
    assert (App.outdir / "_sources" / hook.STUDENT / "ex09_x.ipynb").exists()
    ctx = context()
    hook._launch_targets(App, "book/gaussian", "page.html", ctx, None)
    assert [b["label"] for b in ctx["header_buttons"]] == ["download-buttons"]   # no notebook
    chapter_nb = tmp_path / "src" / hook.CHAPTER_NOTEBOOKS / "gaussian.ipynb"
    chapter_nb.parent.mkdir(parents=True)
    chapter_nb.write_text("{}")
    ctx = context()
    ctx["header_buttons"][0]["buttons"][0]["url"] = \
        "https://colab.research.google.com/github/o/r/blob/main/book/gaussian.md"
    hook._launch_targets(App, "book/gaussian", "page.html", ctx, None)
    assert ctx["header_buttons"][0]["buttons"][0]["url"].endswith("blob/main/book/colab/gaussian.ipynb")


@pytest.mark.skipif(not (SITE / "index.html").exists(), reason="the site is not built (make book)")
def test_every_launch_button_of_the_built_site_opens_a_notebook_that_exists():
    pages = sorted(p for p in SITE.rglob("*.html") if "_static" not in p.parts)
    seen = 0
    for page in pages:
        name = page.relative_to(SITE).as_posix()
        targets = _targets(page.read_text(encoding="utf-8"))
        if name.startswith("book/"):   # a chapter opens its generated notebook, never its .md
            assert all(t.startswith("book/colab/") for t in targets if t.startswith("book/")), \
                f"{name}: a chapter's launch buttons open {targets}"
        for target in targets:
            seen += 1
            assert target.endswith(".ipynb"), f"{name}: a launch button opens {target}"
            assert (ROOT / target).exists(), f"{name}: a launch button opens {target}, not in the repo"
            if name.startswith("notebooks/exercises/"):
                assert target.startswith("notebooks/exercises/student/"), \
                    f"{name}: the launch button opens {target}, not the student version"
        if name.startswith("notebooks/exercises/ex"):
            student = SITE / "_sources" / "notebooks" / "exercises" / "student" / \
                page.with_suffix(".ipynb").name
            assert student.exists(), f"{name}: no student .ipynb to download"
    assert seen >= 13 * 2, f"only {seen} launch buttons found: are the launch buttons configured?"


@pytest.mark.skipif(not (SITE / "index.html").exists(), reason="the site is not built (make book)")
def test_every_page_says_which_budget_its_live_cells_ran_at():
    banners = _hook().BANNER
    for page in sorted(p for p in SITE.rglob("*.html") if "_static" not in p.parts):
        html = page.read_text(encoding="utf-8")
        if "http-equiv=\"refresh\"" in html or page.name in ("search.html", "genindex.html") \
                or page.parts[len(SITE.parts)] not in ("book", "notebooks"):   # the course's pages
            continue
        assert any(b.replace('\\"', '"').split("<b>")[0] in html for b in banners.values()), \
            f"{page.relative_to(SITE)} does not say which budget its live cells ran at"
