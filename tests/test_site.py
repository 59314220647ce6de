"""The built site in a real browser: headless Chromium, with every request off localhost blocked.

`make test` builds the site first (`make book`); this test opens every page of `_build/html`,
served from 127.0.0.1, and checks what a reader would see: math rendered by MathJax, every image
loaded, no JavaScript error, no request that leaves the machine, every internal link resolving.
It saves screenshots to `_build/screenshots/`. It skips, saying why, where Chromium or
Playwright is missing.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Pages whose screenshots are saved (light and dark) for a person to look at.
SCREENSHOT_PAGES = ("book/intro.html", "book/embedded_gaussian.html", "book/complexity.html")

pytestmark = pytest.mark.slow   # reads the built site: make test runs it, make check does not

playwright_api = pytest.importorskip("playwright.sync_api",
                                     reason="playwright is not installed (pip install playwright)")
if CHROMIUM is None:
    pytest.skip("no Chromium on this machine: install it (Debian: apt-get install chromium) to run "
                "the browser test", allow_module_level=True)


class _Anchors(HTMLParser):
    """Collect the ids and the hrefs of one HTML page, and its redirect target if it has one."""

    def __init__(self):
        super().__init__()
        self.ids, self.hrefs, self.redirect = set(), [], None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.hrefs.append(attrs["href"])
        if tag == "meta" and (attrs.get("http-equiv") or "").lower() == "refresh":
            self.redirect = (attrs.get("content") or "").split("url=")[-1].strip()
            self.hrefs.append(self.redirect)


@functools.lru_cache(maxsize=None)
def _parse(path: Path) -> _Anchors:
    parser = _Anchors()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def _pages() -> list[Path]:
    skip = {"genindex.html", "search.html", "py-modindex.html"}
    return sorted(p for p in SITE.rglob("*.html")
                  if "_static" not in p.parts and "_sources" not in p.parts
                  and "_modules" not in p.parts and p.name not in skip)


@pytest.fixture(scope="module")
def server():
    if not (SITE / "index.html").exists():
        pytest.fail(f"no built site at {SITE}: run 'make book' first ('make test' does)")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(SITE))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, chromium_sandbox=False,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--disable-quic"])
        yield browser
        browser.close()


def test_site_has_the_chapters():
    names = {p.name for p in _pages()}
    for chapter in ("intro.html", "nonlocal_operation.html", "gaussian.html",
                    "embedded_gaussian.html", "dot_product.html", "concatenation.html",
                    "comparing.html", "implementation.html", "complexity.html", "pitfalls.html",
                    "claims.html", "api.html", "bibliography.html"):
        assert chapter in names, f"{chapter} missing from {SITE}"


def test_internal_links_resolve():
    broken = []
    for page in _pages():
        for href in _parse(page).hrefs:
            parsed = urlparse(href)
            if parsed.scheme or href.startswith(("mailto:", "//")):
                continue  # external: the launch and repository buttons, checked offline below
            target = (page.parent / unquote(parsed.path)).resolve() if parsed.path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page.relative_to(SITE)}: {href} (no file)")
            elif parsed.fragment and target.suffix == ".html" \
                    and unquote(parsed.fragment) not in _parse(target).ids:
                broken.append(f"{page.relative_to(SITE)}: {href} (no id '{parsed.fragment}')")
    assert not broken, "broken internal links:\n" + "\n".join(broken)


def test_every_page_renders_offline(server, browser):
    SHOTS.mkdir(parents=True, exist_ok=True)
    problems = []
    for page_path in _pages():
        rel = page_path.relative_to(SITE).as_posix()
        if _parse(page_path).redirect:
            continue  # a redirect (index.html): its target is checked with the links
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        offsite, errors = [], []

        def route(request_route, _offsite=offsite):
            host = urlparse(request_route.request.url).hostname
            if request_route.request.url.startswith(("data:", "blob:")) or host == "127.0.0.1":
                request_route.continue_()
            else:
                _offsite.append(request_route.request.url)
                request_route.abort()

        context.route("**/*", route)
        page = context.new_page()
        page.on("console", lambda msg, _e=errors: _e.append(f"console: {msg.text}")
                if msg.type == "error" else None)
        page.on("pageerror", lambda exc, _e=errors: _e.append(f"page error: {exc}"))
        page.goto(urljoin(server, rel), wait_until="load")
        math = page.locator("div.math, span.math").count()
        if math:
            page.wait_for_function(
                "() => [...document.querySelectorAll('div.math, span.math')]"
                ".every(e => e.querySelector('mjx-container'))", timeout=20000)
        report = page.evaluate("""() => ({
            raw: [...document.querySelectorAll('div.math, span.math')]
                 .filter(e => !e.querySelector('mjx-container')).length,
            text: document.querySelector('main') ? document.querySelector('main').innerText : '',
            images: [...document.images].filter(i => !(i.complete && i.naturalWidth > 0))
                    .map(i => i.src),
        })""")
        if report["raw"]:
            problems.append(f"{rel}: {report['raw']} math element(s) not rendered")
        for marker in ("$$", "\\[", "\\begin{"):
            if marker in report["text"]:
                problems.append(f"{rel}: raw TeX '{marker}' visible in the page text")
        problems += [f"{rel}: image did not load: {src}" for src in report["images"]]
        problems += [f"{rel}: {e}" for e in errors]
        problems += [f"{rel}: request left localhost: {url}" for url in offsite]
        if rel in SCREENSHOT_PAGES:
            name = Path(rel).stem
            page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=False)
            page.evaluate("document.documentElement.dataset.theme = 'dark'")
            page.wait_for_timeout(300)
            page.screenshot(path=str(SHOTS / f"{name}-dark.png"), full_page=False)
        context.close()
    assert not problems, "\n".join(problems)
    assert (SHOTS / "intro.png").exists()
