#!/usr/bin/env python3
"""A release, said in three places that must agree: ``pyproject.toml``'s version, ``CITATION.cff``
(``version`` and ``date-released``) and a dated section of ``CHANGELOG.md``.

The release workflow (``.github/workflows/release.yml``) runs ``check`` on the tag it was pushed
with before it builds anything, and ``notes`` for the release's text:

    python tools/release.py check v0.2.0     # exit 1, a line per disagreement
    python tools/release.py notes 0.2.0      # print that version's CHANGELOG section

To release: move the changelog's ``Unreleased`` entries under ``## [X.Y.Z] - YYYY-MM-DD``, set the
same version in ``pyproject.toml`` and ``CITATION.cff`` (with ``date-released``), commit, then
``git tag vX.Y.Z && git push --tags``. Needs only PyYAML and the standard library.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SECTION = re.compile(r"^## \[(?P<version>[^\]]+)\](?: - (?P<date>\S+))?[ \t]*$", re.M)
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def version(root: Path = ROOT) -> str:
    return tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]


def sections(root: Path = ROOT) -> dict[str, tuple[str | None, str]]:
    """CHANGELOG.md's sections: version -> (date or None, text)."""
    text = (root / "CHANGELOG.md").read_text()
    heads = list(SECTION.finditer(text))
    ends = [h.start() for h in heads[1:]] + [len(text)]
    return {h["version"]: (h["date"], text[h.end():end].strip()) for h, end in zip(heads, ends)}


def check(tag: str, root: Path = ROOT) -> list[str]:
    """What stops ``tag`` from being released, one line each (empty: it can be)."""
    wanted = version(root)
    problems = []
    if tag != f"v{wanted}":
        problems.append(f"the tag is {tag!r}, but pyproject.toml's version is {wanted}: "
                        f"tag v{wanted}, or change the version")
    cff = yaml.safe_load((root / "CITATION.cff").read_text())
    if str(cff.get("version")) != wanted:
        problems.append(f"CITATION.cff: version is {cff.get('version')!r}, expected {wanted!r}")
    released = str(cff.get("date-released", ""))
    if not DATE.fullmatch(released):
        problems.append(f"CITATION.cff: date-released must be the release's date, YYYY-MM-DD; "
                        f"got {released or 'nothing'!r}")
    entry = sections(root).get(wanted)
    if entry is None:
        problems.append(f"CHANGELOG.md: no section '## [{wanted}] - YYYY-MM-DD'")
    elif not (entry[0] and DATE.fullmatch(entry[0])):
        problems.append(f"CHANGELOG.md: the section for {wanted} has no date "
                        f"('## [{wanted}] - YYYY-MM-DD')")
    elif released and entry[0] != released:
        problems.append(f"CHANGELOG.md dates {wanted} {entry[0]}, CITATION.cff {released}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="can this tag be released?").add_argument("tag")
    sub.add_parser("notes", help="a version's changelog section").add_argument("version")
    args = parser.parse_args(argv)
    if args.command == "check":
        problems = check(args.tag)
        for line in problems:
            print(line, file=sys.stderr)
        return 1 if problems else 0
    entry = sections().get(args.version)
    if entry is None:
        print(f"CHANGELOG.md has no section for {args.version}", file=sys.stderr)
        return 1
    print(entry[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
