"""Sphinx extension: pages that load without errors and without the network.

- sphinx-thebe (live code through a Binder server, so online only) is loaded by Jupyter Book 1.x
  whether used or not, and its configuration script is added twice, which is a JavaScript error
  ("THEBE_JS_URL has already been declared") on every page. This course offers Colab and Binder
  launch buttons instead, so the thebe scripts are dropped.
- The theme's light/dark switch logs an error when no default mode is set; it is set to "auto".
- ``static/nlcourse.css``: what the theme leaves to the course (long inline code on phones,
  outputs that wrap to their box, tables that scroll with a cue on phones); with
  ``static/nlcourse-fit.js``, which tells aligned columns (kept) from text (wrapped) and sets a
  display equation wider than a phone's column smaller (down to 70%).

Words for every figure: a figure a page draws carries its description in its PNG
(``nlcourse.viz.use_style`` has the notebook write it there), and that becomes the image's alt
text, instead of its file name.

Light pages (what a reader downloads):

- The theme's icon-font script (``fontawesome.js``, 1.5 MB on every page) is dropped from every
  page and from ``_static``; ``static/nlcourse-icons.css`` draws the few icons the theme uses
  (``tools/icons.py``), so the icon font's files are never fetched either.
- The search index and its scripts load on the search page only (the theme loads them on every
  page for a search-as-you-type box that is off).
- A page with a plotly figure carries plotly.js inline (``nlcourse.viz.offline_html``, so that a
  notebook works offline on its own); on the site it is loaded once from ``_static`` instead.

Launch buttons that open something that runs:

- An exercise page shows the solution notebook, but its Colab and Binder buttons open the
  student version (``notebooks/exercises/student/``), and its download menu offers the student
  ``.ipynb`` first.
- A chapter (a MyST ``.md`` page in ``book/``) cannot be opened by Colab as it is, and reads the
  repository's committed results. Its buttons open ``book/colab/<chapter>.ipynb`` instead, the
  notebook ``tools/chapter_notebooks.py`` generates from it, whose first cell fetches the
  repository at the book's version; a chapter without one (no code) gets no launch buttons.
  Its download menu's ``.ipynb`` is that same notebook (MyST-NB's own ``.ipynb`` of a chapter
  imports ``myst_nb`` and has no install cell, so it does not run outside the build).
"""

import os
import re
import shutil
from pathlib import Path

# What each budget means for a reader of the built site, shown in one line on every page.
BANNER = {
    "smoke": "This build ran its live cells at the <b>smoke</b> budget (a test build: seconds of "
             "training, for checking that every page runs, not for reading: its accuracies can "
             "sit at or below chance). The text rests on committed runs and shipped weights; the "
             "live \"your run\" outputs do not.",
    "quick": "Live cells on these pages ran at the <b>quick</b> budget (minutes of training on a "
             "CPU); the text rests on the committed runs and the shipped weights they show.",
    "full": "Live cells on these pages ran at the <b>full</b> budget (the public demo's recipe, "
            "on a GPU); the text rests on the committed runs and the shipped weights they show.",
}

EXERCISES = "notebooks/exercises/"
STUDENT = "notebooks/exercises/student/"
CHAPTER_NOTEBOOKS = "book/colab/"


def _name(asset) -> str:
    """An asset's file name (Sphinx's _JavaScript and _CascadingStyleSheets, or a plain str)."""
    return str(getattr(asset, "filename", None) or asset or "")


def _is_thebe(script) -> bool:
    body = getattr(script, "attributes", {}).get("body", "") or ""
    return "THEBE_JS_URL" in body or _name(script).endswith(("sphinx-thebe.js",
                                                             "thebe/lib/index.js"))


def _page_context(app, pagename, templatename, context, doctree):
    context.setdefault("default_mode", "auto")
    if "script_files" in context:
        context["script_files"] = [s for s in context["script_files"] if not _is_thebe(s)]
    if "css_files" in context:
        context["css_files"] = [c for c in context["css_files"]
                                if not _name(c).endswith("sphinx-thebe.css")]


def _student_copy(app, pagename: str) -> str | None:
    """Copy the student version of an exercise next to the page's sources; its URL or None."""
    name = pagename[len(EXERCISES):] + ".ipynb"
    student = Path(app.srcdir) / STUDENT / name
    if not student.exists():
        return None
    target = Path(app.outdir) / "_sources" / STUDENT / name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(student, target)
    return STUDENT + name


def _chapter_copy(app, stem: str) -> str | None:
    """Copy a chapter's runnable notebook next to the page's sources; its path there, or None."""
    notebook = Path(app.srcdir) / CHAPTER_NOTEBOOKS / f"{stem}.ipynb"
    if not notebook.exists():
        return None
    target = Path(app.outdir) / "_sources" / CHAPTER_NOTEBOOKS / f"{stem}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(notebook, target)
    return f"{CHAPTER_NOTEBOOKS}{stem}.ipynb"


def _launch_targets(app, pagename, templatename, context, doctree):
    buttons = context.get("header_buttons")
    if not buttons:
        return
    exercise = pagename.startswith(EXERCISES) and "/student/" not in pagename
    chapter = pagename.startswith("book/")
    kept = []
    for button in buttons:
        label = button.get("label")
        if label == "launch-buttons" and chapter:
            stem = pagename[len("book/"):]
            if not (Path(app.srcdir) / CHAPTER_NOTEBOOKS / f"{stem}.ipynb").exists():
                continue
            source = re.compile(rf"book/{re.escape(stem)}\.(?:md|ipynb)")
            for link in button.get("buttons", []):
                link["url"] = source.sub(f"{CHAPTER_NOTEBOOKS}{stem}.ipynb", link["url"])
        if label == "launch-buttons" and exercise:
            for link in button.get("buttons", []):
                link["url"] = link["url"].replace(EXERCISES, STUDENT, 1)
        if label == "download-buttons" and chapter:
            copied = _chapter_copy(app, pagename[len("book/"):])
            links = [b for b in button["buttons"] if b.get("label") != "download-notebook-button"]
            if copied:
                links.insert(0, {
                    "type": "link", "url": f"{context['pathto']('_sources', 1)}/{copied}",
                    "text": ".ipynb", "icon": "fas fa-code",
                    "tooltip": "Download the chapter as a notebook that installs the course and runs",
                    "label": "download-notebook-button"})
            button["buttons"] = links
        if label == "download-buttons" and exercise:
            copied = _student_copy(app, pagename)
            if copied:
                button["buttons"].insert(0, {
                    "type": "link", "url": f"{context['pathto']('_sources', 1)}/{copied}",
                    "text": "student .ipynb", "icon": "fas fa-code",
                    "tooltip": "Download the exercise to solve (the student version)",
                    "label": "download-student-button"})
        kept.append(button)
    context["header_buttons"] = kept


FONTAWESOME = re.compile(r'\s*<script defer src="[^"]*_static/scripts/fontawesome\.js[^"]*"></script>')
# The theme loads the search index (165 KB) and its scripts on every page, for a search-as-you-type
# box this site does not switch on: the search box sends the reader to search.html, which loads
# them itself.
SEARCH_SCRIPTS = re.compile(r'\s*<script src="[^"]*(?:_static/searchtools\.js|_static/language_data'
                            r'\.js|searchindex\.js)"></script>')


def _plotly_js() -> str | None:
    try:
        from plotly.offline import get_plotlyjs
    except ImportError:
        return None
    return get_plotlyjs()


def _lighten(app, exception):
    """After an HTML build: drop the icon font's script, and serve plotly.js from _static."""
    if exception is not None or app.builder.format != "html":
        return
    out = Path(app.outdir)
    for leftover in (out / "_static" / "scripts").glob("fontawesome.js*"):
        leftover.unlink()
    plotly_js = _plotly_js()
    inline = f"<script>{plotly_js}</script>" if plotly_js else None
    for page in out.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        lighter = FONTAWESOME.sub("", html)
        if page.name != "search.html":
            lighter = SEARCH_SCRIPTS.sub("", lighter)
        if inline and inline in lighter:
            shared = out / "_static" / "plotly.min.js"
            if not shared.exists():
                shared.write_text(plotly_js, encoding="utf-8")
            src = Path(os.path.relpath(shared, page.parent)).as_posix()
            lighter = lighter.replace(inline, f'<script src="{src}"></script>')
        if lighter != html:
            page.write_text(lighter, encoding="utf-8")


def _figure_words(app, doctree, docname):
    """Alt text for each image a cell drew: the description its PNG carries."""
    from docutils import nodes
    from PIL import Image

    for image in doctree.findall(nodes.image):
        if image.get("alt") or not str(image.get("uri", "")).endswith(".png"):
            continue
        path = Path(app.srcdir) / image["uri"].lstrip("/")
        if not path.exists():
            continue
        with Image.open(path) as png:
            description = (getattr(png, "text", None) or {}).get("Description")
        if description:
            image["alt"] = description


def _static_files(app, config):
    config.html_static_path.append(str(Path(__file__).parent / "static"))


def _budget_banner(app, config):
    """One line on every page: the budget the live cells ran at (read where the build runs)."""
    from nlcourse.budget import resolve_name  # the course's own rule: $NLCOURSE_BUDGET, else hardware

    options = config.html_theme_options
    if not options.get("announcement"):
        options["announcement"] = BANNER[resolve_name(None)]


def setup(app):
    app.connect("config-inited", _budget_banner)
    app.connect("config-inited", _static_files)
    app.add_css_file("nlcourse.css")
    app.add_css_file("nlcourse-icons.css")
    app.add_js_file("nlcourse-fit.js")
    app.connect("build-finished", _lighten)
    app.connect("doctree-resolved", _figure_words)
    app.connect("html-page-context", _page_context, priority=900)
    # after sphinx-book-theme has added its buttons (default priority 500)
    app.connect("html-page-context", _launch_targets, priority=950)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
