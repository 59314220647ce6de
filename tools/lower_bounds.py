"""The lower bounds of requirements.txt as pins: the oldest release the index has that each
requirement allows, so that a job installing them (``.github/workflows/drift.yml``) shows whether
the bounds the course states are true.

    python tools/lower_bounds.py requirements.txt > lower-bounds.txt
    pip install -r requirements.txt -c lower-bounds.txt

A requirement without a lower bound is left to the resolver. The versions the index has are read
with ``pip index versions`` (one call per requirement); ``--offline`` prints the bounds as written,
without asking the index.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import InvalidVersion, Version


def requirements(path: Path) -> list[Requirement]:
    """The requirements of a requirements file (comments, options and blank lines skipped)."""
    found = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            found.append(Requirement(line))
    return found


def lower_bound(req: Requirement) -> Version | None:
    """The version a ``>=`` or ``==`` specifier names, or None."""
    bounds = [Version(s.version) for s in req.specifier if s.operator in (">=", "==", "~=")]
    return max(bounds) if bounds else None


def index_versions(name: str) -> list[Version]:
    """Every release of ``name`` the configured index has, as ``pip index versions`` lists them."""
    run = subprocess.run([sys.executable, "-m", "pip", "index", "versions", name],
                         capture_output=True, text=True)
    match = re.search(r"Available versions:\s*(.+)", run.stdout)
    versions = []
    for text in (match.group(1).split(",") if match else []):
        try:
            versions.append(Version(text.strip()))
        except InvalidVersion:
            continue
    return versions


def oldest_allowed(req: Requirement, available: list[Version]) -> Version | None:
    """The oldest final release in ``available`` that ``req`` allows."""
    allowed = [v for v in available if not v.is_prerelease and v in req.specifier]
    return min(allowed) if allowed else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("requirements", type=Path)
    parser.add_argument("--offline", action="store_true",
                        help="print the bounds as written, without asking the index")
    args = parser.parse_args(argv)
    for req in requirements(args.requirements):
        bound = lower_bound(req)
        if bound is None:
            continue
        pin = bound if args.offline else oldest_allowed(req, index_versions(req.name))
        if pin is None:
            print(f"lower_bounds.py: the index has no release of {req.name} that {req} allows",
                  file=sys.stderr)
            return 1
        print(f"{req.name}=={pin}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
