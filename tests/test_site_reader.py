"""Every page as its readers meet it, measured in headless Chromium at 1280 px (a desktop) and at
390 px (a phone):

- figures: the smallest text of every figure a page draws, as shown (its size in the PNG, which
  ``nlcourse.viz.use_style`` writes into it, times the width the page gives the image over its
  natural width), is at least 9 CSS px at both widths;
- words: every image has alt text that says something, not a file name;
- output boxes: none scrolls sideways on the desktop (a student must not scroll to read a
  self-check's feedback); on a phone, only boxes of code or aligned columns may;
- mathematics: no inline formula is clipped (wider than its line, with nothing to scroll);
- the page itself never scrolls sideways;
- weight: a page's own files (its HTML, images and data, not the shared files a browser caches
  once) at most 1.5 MB, the median under 0.5 MB; the shared files every page loads at most 2 MB.

It writes what it measured to ``_build/reader-report.json`` and fails, naming page and width,
on anything past these limits.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import pytest

from tests import test_site
from tests.test_site import SITE, _pages, _parse

server, browser = test_site.server, test_site.browser   # the same fixtures: a local server, Chromium

pytestmark = pytest.mark.slow

WIDTHS = (1280, 390)
MIN_TEXT_PX = 9.0
OWN_MAX, OWN_MEDIAN, SHARED_MAX = 1.5e6, 0.5e6, 2.0e6
MIN_FONT_KEY = "nlcourse:min-font-px"
REPORT = SITE.parent / "reader-report.json"

MEASURE = """() => {
  // a reader opens the dropdowns: what is in them is measured as they would see it
  document.querySelectorAll('article details').forEach(d => { d.open = true; });
  const art = document.querySelector('article') || document.querySelector('main') || document.body;
  const frame = art.getBoundingClientRect();
  const scrolls = e => { const o = getComputedStyle(e).overflowX;
                         return (o === 'auto' || o === 'scroll') && e.scrollWidth > e.clientWidth + 1; };
  // a table is a table wherever it sits (a page's table of exercises is a cell's output)
  const kind = e => (e.matches('table, .table-wrapper, .pst-scrollable-table-container') || e.querySelector('table')) ? 'table'
                  : e.closest('.cell_output, .output') ? 'output'
                  : e.closest('.cell_input, div.highlight') ? 'code'
                  : (e.closest('div.math, mjx-container') || e.querySelector('mjx-container')) ? 'math' : 'other';
  const boxes = [];
  for (const e of art.querySelectorAll('*')) {
    if (!scrolls(e) || boxes.some(b => b.el.contains(e))) continue;   // outermost boxes only
    const pre = e.matches('pre') ? e : e.querySelector('pre');
    boxes.push({el: e, kind: kind(e), over: e.scrollWidth - e.clientWidth,
                columns: !!(pre && pre.classList.contains('nl-columns')),
                text: (e.innerText || '').trim().slice(0, 70)});
  }
  const clipped = [];
  for (const m of art.querySelectorAll('mjx-container:not([display="true"])')) {
    const r = m.getBoundingClientRect();
    let box = m.parentElement, free = false;
    while (box && box !== art) { if (scrolls(box)) { free = true; break; } box = box.parentElement; }
    if (!free && r.width > 0 && (r.right > frame.right + 1 || r.left < frame.left - 1))
      clipped.push({over: Math.round(Math.max(r.right - frame.right, frame.left - r.left)),
                    text: (m.getAttribute('aria-label') || m.textContent || '').slice(0, 50)});
  }
  return {
    images: [...art.querySelectorAll('img')].map(i => ({src: i.currentSrc || i.src,
             alt: i.getAttribute('alt'), natural: i.naturalWidth,
             shown: i.getBoundingClientRect().width})),
    boxes: boxes.map(({el, ...rest}) => rest),
    clipped,
    page_overflow: document.documentElement.scrollWidth - window.innerWidth,
  };
}"""


def _file(url: str) -> Path | None:
    path = SITE / unquote(urlparse(url).path).lstrip("/")
    return path if path.is_file() else None


def _min_font_px(url: str) -> float | None:
    from PIL import Image

    path = _file(url)
    if path is None or path.suffix != ".png":
        return None
    with Image.open(path) as png:
        value = (getattr(png, "text", None) or {}).get(MIN_FONT_KEY)
    return float(value) if value is not None else None


def _says_something(alt: str | None) -> bool:
    alt = (alt or "").strip()
    return len(alt) >= 8 and "_images/" not in alt and not alt.lower().endswith(
        (".png", ".jpg", ".jpeg", ".svg", ".gif"))


@pytest.fixture(scope="module")
def report(server, browser):
    pages, loaded = {}, {}
    for page_path in _pages():
        rel = page_path.relative_to(SITE).as_posix()
        if _parse(page_path).redirect:
            continue
        pages[rel] = {}
        for width in WIDTHS:
            context = browser.new_context(viewport={"width": width, "height": 900})
            urls = set()
            context.route("**/*", lambda route: route.continue_()
                          if urlparse(route.request.url).hostname in ("127.0.0.1", None)
                          else route.abort())
            page = context.new_page()
            page.on("request", lambda request, _u=urls: _u.add(request.url))
            page.goto(urljoin(server, rel), wait_until="load")
            if page.locator("div.math, span.math").count():
                page.wait_for_function(
                    "() => [...document.querySelectorAll('div.math, span.math')]"
                    ".every(e => e.querySelector('mjx-container'))", timeout=30000)
            page.wait_for_timeout(200)
            measured = page.evaluate(MEASURE)
            for image in measured["images"]:
                font = _min_font_px(image["src"])
                image["min_font_px"] = font
                image["shown_font_px"] = (round(font * image["shown"] / image["natural"], 2)
                                          if font and image["natural"] else None)
                image["src"] = unquote(urlparse(image["src"]).path).lstrip("/")
            pages[rel][str(width)] = measured
            loaded.setdefault(rel, set()).update(u for u in urls if _file(u))
            context.close()
    shared = set.intersection(*({u for u in us if "/_static/" in u} for us in loaded.values()))
    shared_bytes = sum(_file(u).stat().st_size for u in {urlparse(u).path for u in shared}
                       if _file(u))
    for rel, urls in loaded.items():
        own = {urlparse(u).path for u in urls if "/_static/" not in u}
        pages[rel]["own_bytes"] = sum(_file(u).stat().st_size for u in own)
        pages[rel]["static_bytes"] = sum(_file(u).stat().st_size for u in
                                         {urlparse(u).path for u in urls if "/_static/" in u})
    result = {"pages": pages, "shared_bytes": shared_bytes,
              "shared_files": sorted({urlparse(u).path for u in shared})}
    REPORT.write_text(json.dumps(result, indent=1))
    return result


def test_every_figure_is_readable_at_both_widths(report):
    small = [f"{rel} at {width} px: {image['src']} shows its smallest text at "
             f"{image['shown_font_px']} px ({image['shown']:.0f} of {image['natural']} px wide)"
             for rel, page in report["pages"].items() for width in map(str, WIDTHS)
             for image in page[width]["images"]
             if image["shown_font_px"] is not None and image["shown_font_px"] < MIN_TEXT_PX]
    assert not small, f"{len(small)} figures with text under {MIN_TEXT_PX} px:\n" + "\n".join(small)


def test_every_drawn_figure_says_how_small_its_text_is(report):
    """A figure a cell drew carries its smallest text size (else the test above could not see it)."""
    unknown = sorted({f"{rel}: {image['src']}" for rel, page in report["pages"].items()
                      for image in page["390"]["images"]
                      if image["src"].startswith("_images/") and image["min_font_px"] is None})
    assert not unknown, "figures without their text size (drawn without viz.use_style?):\n" \
        + "\n".join(unknown)


def test_every_image_has_words(report):
    bare = sorted({f"{rel}: {image['src']} (alt {image['alt']!r})"
                   for rel, page in report["pages"].items() for image in page["1280"]["images"]
                   if not _says_something(image["alt"])})
    assert not bare, "images without alt text that says what they show:\n" + "\n".join(bare)


def test_no_output_scrolls_sideways_on_the_desktop(report):
    boxes = [f"{rel}: {box['kind']} box {box['over']} px too wide: {box['text']!r}"
             for rel, page in report["pages"].items() for box in page["1280"]["boxes"]
             if box["kind"] in ("output", "other", "table", "math")]
    assert not boxes, "\n".join(boxes)


def test_on_a_phone_only_code_and_columns_scroll(report):
    """Text that can wrap does; a box of code or of aligned columns may scroll, and a table or a
    display equation may scroll in its own box."""
    boxes = [f"{rel}: {box['kind']} box {box['over']} px too wide: {box['text']!r}"
             for rel, page in report["pages"].items() for box in page["390"]["boxes"]
             if box["kind"] == "other" or (box["kind"] == "output" and not box["columns"])]
    assert not boxes, "\n".join(boxes)


def test_no_inline_formula_is_clipped_and_no_page_scrolls_sideways(report):
    problems = [f"{rel} at {width} px: inline formula {m['over']} px past the column: {m['text']!r}"
                for rel, page in report["pages"].items() for width in map(str, WIDTHS)
                for m in page[width]["clipped"]]
    problems += [f"{rel} at {width} px: the page scrolls sideways by {page[width]['page_overflow']} px"
                 for rel, page in report["pages"].items() for width in map(str, WIDTHS)
                 if page[width]["page_overflow"] > 1]
    assert not problems, "\n".join(problems)


def test_pages_are_light(report):
    own = {rel: page["own_bytes"] for rel, page in report["pages"].items()}
    heavy = [f"{rel}: {size / 1e6:.2f} MB of its own" for rel, size in own.items()
             if size > OWN_MAX]
    assert not heavy, "\n".join(heavy)
    assert statistics.median(own.values()) < OWN_MEDIAN, statistics.median(own.values())
    assert report["shared_bytes"] <= SHARED_MAX, (report["shared_bytes"], report["shared_files"])
    assert not any("fontawesome" in f for f in report["shared_files"])


def test_the_icons_are_current():
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    run = subprocess.run([sys.executable, str(root / "tools" / "icons.py"), "--check"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
