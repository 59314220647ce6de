#!/usr/bin/env python3
"""The site's icons, drawn for this course: writes ``book/_ext/static/nlcourse-icons.css``.

The theme draws its buttons' icons with an icon font's script, 1.5 MB that every page loads.
``book/_ext/offline_site.py`` drops that script; these simple stroked shapes, one per icon the
theme uses, take its place as CSS masks (data URIs, so they also work from ``file://``).

    python tools/icons.py --write    # after changing a shape
    python tools/icons.py --check    # exit 1 if the CSS is out of date (tests/test_site_reader.py)
"""

import sys
from pathlib import Path
from urllib.parse import quote

CSS = Path(__file__).resolve().parents[1] / "book" / "_ext" / "static" / "nlcourse-icons.css"
S = 'fill="none" stroke="black" stroke-width="1.6" stroke-linecap="round" stroke-linejoin="round"'
ICONS = {
    "bars": f'<path {S} d="M2 4h12M2 8h12M2 12h12"/>',
    "magnifying-glass": f'<circle {S} cx="6.8" cy="6.8" r="4.6"/><path {S} d="M10.3 10.3L14 14"/>',
    "angle-left": f'<path {S} d="M10 3L5 8l5 5"/>',
    "angle-right": f'<path {S} d="M6 3l5 5-5 5"/>',
    "arrow-up": f'<path {S} d="M8 14V2.5M3.5 7L8 2.5 12.5 7"/>',
    "chevron-down": f'<path {S} d="M3 5.5l5 5 5-5"/>',
    "xmark": f'<path {S} d="M3.5 3.5l9 9M12.5 3.5l-9 9"/>',
    "circle-half-stroke": f'<circle {S} cx="8" cy="8" r="6"/><path d="M8 2a6 6 0 0 0 0 12z"/>',
    "sun": f'<circle {S} cx="8" cy="8" r="2.8"/><path {S} d="M8 1v1.8M8 13.2V15M1 8h1.8M13.2 8H15'
           f'M3 3l1.3 1.3M11.7 11.7L13 13M3 13l1.3-1.3M11.7 4.3L13 3"/>',
    "moon": f'<path {S} d="M12.5 10.2A5.6 5.6 0 0 1 5.8 3.5 5.6 5.6 0 1 0 12.5 10.2z"/>',
    "list": f'<path {S} d="M6 4h8M6 8h8M6 12h8"/><circle cx="2.8" cy="4" r="1.1"/>'
            f'<circle cx="2.8" cy="8" r="1.1"/><circle cx="2.8" cy="12" r="1.1"/>',
    "outdent": f'<path {S} d="M2 3h12M8 6.5h6M8 9.5h6M2 13h12M5 5.8L2.5 8 5 10.2"/>',
    # the repository: a branching history (not a company's logo)
    "github": f'<circle {S} cx="4.5" cy="3.5" r="1.6"/><circle {S} cx="4.5" cy="12.5" r="1.6"/>'
              f'<circle {S} cx="11.5" cy="5" r="1.6"/><path {S} d="M4.5 5.1v5.8M11.5 6.6'
              f'c0 3-7 2.5-7 4.3"/>',
    "code": f'<path {S} d="M5 4L1.5 8 5 12M11 4l3.5 4-3.5 4"/>',
    "download": f'<path {S} d="M8 2v8.5M4.5 7L8 10.5 11.5 7M2.5 13.8h11"/>',
    "expand": f'<path {S} d="M2 6V2h4M10 2h4v4M14 10v4h-4M6 14H2v-4"/>',
    "file": f'<path {S} d="M4 1.5h5l3.5 3.5v9.5H4zM9 1.5V5h3.5"/>',
    "file-pdf": f'<path {S} d="M4 1.5h5l3.5 3.5v9.5H4zM9 1.5V5h3.5M6 8.5h4M6 11h4"/>',
    "lightbulb": f'<path {S} d="M5.6 10.6a4.6 4.6 0 1 1 4.8 0V12H5.6zM6.2 14.5h3.6"/>',
    "rocket": f'<path {S} d="M8 1.5c3 2.5 3.4 6.2 2.5 9.5h-5C4.6 7.7 5 4 8 1.5zM5.5 11L3.5 14'
              f'M10.5 11l2 3M8 11v3.5"/><circle {S} cx="8" cy="6" r="1.3"/>',
}


def css() -> str:
    rules = []
    for name, body in ICONS.items():
        svg = f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">{body}</svg>'
        rules.append(f'.fa-{name} {{ --nl-icon: url("data:image/svg+xml,{quote(svg, safe=" =/:.,-")}"); }}')
    return HEAD + "\n".join(rules) + "\n"


HEAD = """/* The theme's icons, drawn for this course (tools/icons.py writes this file): stroked 16 x 16
   shapes used as masks, so each takes the colour of its text in light and dark mode. They replace
   the icon font's script (1.5 MB on every page), which book/_ext/offline_site.py drops. */
.fa, .fas, .fab, .far, .fa-solid, .fa-brands, .fa-regular {
  display: inline-block;
  width: 1em;
  height: 1em;
  vertical-align: -0.125em;
  background-color: currentColor;
  -webkit-mask: var(--nl-icon) center / contain no-repeat;
  mask: var(--nl-icon) center / contain no-repeat;
}
/* The theme's stylesheet still draws each icon as a glyph of the icon font; not here (and so the
   font's files, 270 KB, are never fetched). */
.fa::before, .fas::before, .fab::before, .far::before, .fa-solid::before, .fa-brands::before,
.fa-regular::before {
  content: none !important;
}
"""


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        CSS.write_text(css())
    elif sys.argv[1:] == ["--check"]:
        if not CSS.exists() or CSS.read_text() != css():
            sys.exit(f"{CSS.name} is out of date: run python tools/icons.py --write")
    else:
        sys.exit("usage: python tools/icons.py --write | --check")
