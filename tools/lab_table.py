"""Write the README's table of labs from the labs' own declarations (nlcourse.labs.LABS): each
lab's name, what it trains, its models and the pages that run it. `make sync` runs it;
``--check`` says whether the README holds the table the declarations give (tests run that).

    python tools/lab_table.py --write | --check
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BEGIN = "<!-- labs:begin (written by tools/lab_table.py from nlcourse.labs.LABS) -->"
END = "<!-- labs:end -->"


def table() -> str:
    sys.path.insert(0, str(ROOT))
    try:
        from nlcourse.labs import LABS
    finally:
        sys.path.pop(0)
    rows = ["| lab | what it trains | models | pages |", "|---|---|---|---|"]
    for name, lab in LABS.items():
        pages = ", ".join(f"[{Path(p).name}]({p}.{'ipynb' if p.startswith('notebooks') else 'md'})"
                          for p in lab.pages)
        models = ", ".join(f"`{m}`" for m in lab.models)
        rows.append(f"| `{name}` | {lab.title} | {models} | {pages} |")
    return "\n".join([BEGIN, *rows, END])


def written(text: str) -> str:
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{README.name} has no {BEGIN!r} ... {END!r} block")
    head, rest = text.split(BEGIN, 1)
    return head + table() + rest.split(END, 1)[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true")
    mode.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    text = README.read_text()
    if args.write:
        README.write_text(written(text))
        return 0
    if written(text) != text:
        print(f"{README.name}'s table of labs differs from nlcourse.labs.LABS: run 'python "
              f"tools/lab_table.py --write' (make sync does)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
