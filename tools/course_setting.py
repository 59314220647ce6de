#!/usr/bin/env python3
"""Where the course lives, said once: ``_config.yml``'s ``repository`` section (``url``, ``branch``).

Everything else that names the repository is derived from that setting and written by this tool:

- the install cell (the first code cell, tagged ``remove-cell``) of every notebook source,
  ``notebooks/*.md``, ``notebooks/exercises/*.md`` and the generated
  ``notebooks/exercises/student/*.md``, and of its paired ``.ipynb``: it pip-installs
  ``nlcourse[labs] @ git+URL@REF``, where REF is the setting's branch in the committed sources
  and the exact commit being published in the publish workflow (``--ref``);
- the links block of ``README.md`` (between the ``course-setting`` markers);
- ``[project.urls]`` of ``pyproject.toml``;
- ``repository-code`` and ``url`` of ``CITATION.cff``;
- ``html.baseurl`` of ``_config.yml`` (the GitHub Pages address);
- the branch whose pushes ``.github/workflows/publish.yml`` publishes.

Jupyter Book derives the launch buttons (Colab, Binder) and the repository button from the same
``repository`` section by itself. A fork changes the one ``url`` line and runs ``make sync``.

    python tools/course_setting.py --write            # rewrite everything from the setting
    python tools/course_setting.py --check            # exit 1, naming each file that disagrees
    python tools/course_setting.py --write --ref SHA  # pin the install cells to one commit
    python tools/course_setting.py --get branch       # print one value (for the workflows)

``--ref`` changes only the install cells (the README's badges and the package's links keep
following the branch). ``tests/test_course_setting.py`` runs ``--check`` on the checkout.
Needs only PyYAML (a requirement of the book) and the standard library.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib   # Python 3.11+, as in CI and the course's environment
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_GLOBS = ("notebooks/*.md", "notebooks/exercises/*.md", "notebooks/exercises/student/*.md")
README_BEGIN = "<!-- course-setting:begin (written by tools/course_setting.py from _config.yml) -->"
README_END = "<!-- course-setting:end -->"
COLAB = "https://colab.research.google.com"
FIRST_LAB = "notebooks/01_block_anatomy.ipynb"

# The install cell. Only the ``{spec}`` line varies. The word torch appears only after the pip
# line (tests/test_notebooks.py checks that nothing before it names torch).
INSTALL_CELL = '''\
# Colab: install the course package at this book's own version. Locally, `make` has done this.
import importlib.util, subprocess, sys
if importlib.util.find_spec("nlcourse") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "{spec}"], check=True)
# pip installs only what is missing: without --upgrade it keeps every installed package that meets
# a requirement, and nlcourse asks for torch>=2.5 and torchvision>=0.20, so Colab's own CUDA builds
# of both stay as they are. The URL and version come from _config.yml (tools/course_setting.py).'''

GIT_SPEC = re.compile(r"nlcourse\[labs\] @ git\+(?P<url>[^\s\"'@]+)(?:@(?P<ref>[^\s\"']+))?")


@dataclass(frozen=True)
class Setting:
    """The repository setting and every address derived from it."""

    url: str      # https://github.com/OWNER/NAME
    branch: str

    @property
    def owner(self) -> str:
        return self.url.rstrip("/").split("/")[-2]

    @property
    def name(self) -> str:
        return self.url.rstrip("/").split("/")[-1]

    @property
    def pages_url(self) -> str:
        """GitHub Pages' address of a project site (a user site for a repo named OWNER.github.io)."""
        host = f"https://{self.owner.lower()}.github.io"
        return f"{host}/" if self.name.lower() == f"{self.owner.lower()}.github.io" else \
            f"{host}/{self.name}/"

    def install_spec(self, ref: str | None = None) -> str:
        return f"nlcourse[labs] @ git+{self.url}@{ref or self.branch}"

    def install_cell(self, ref: str | None = None) -> str:
        return INSTALL_CELL.format(spec=self.install_spec(ref))

    def workflow_badge(self, workflow: str, label: str) -> str:
        runs = f"{self.url}/actions/workflows/{workflow}"
        return f"[![{label}]({runs}/badge.svg?branch={self.branch})]({runs}?query=branch%3A{self.branch})"

    def colab(self, path: str) -> str:
        return f"{COLAB}/github/{self.owner}/{self.name}/blob/{self.branch}/{path}"

    def project_urls(self) -> dict[str, str]:
        return {"Homepage": self.pages_url, "Documentation": self.pages_url,
                "Repository": self.url, "Issues": f"{self.url}/issues"}

    def readme_block(self) -> str:
        return "\n".join([
            README_BEGIN,
            self.workflow_badge("ci.yml", "CI") + "\n" + self.workflow_badge("publish.yml", "site")
            + "\n" + self.workflow_badge("drift.yml", "drift")
            + f"\n[![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
              f"({self.colab(FIRST_LAB)})",
            "",
            f"Read the course at <{self.pages_url}>; its sources are at <{self.url}>.",
            README_END])


class SettingError(ValueError):
    pass


def read_setting(root: Path = ROOT) -> Setting:
    config = yaml.safe_load((root / "_config.yml").read_text())
    repo = (config or {}).get("repository") or {}
    url, branch = str(repo.get("url", "")).strip(), str(repo.get("branch", "")).strip()
    url = url[:-4] if url.endswith(".git") else url.rstrip("/")
    if not re.fullmatch(r"https://github\.com/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", url):
        raise SettingError(f"_config.yml: repository.url must be https://github.com/OWNER/NAME "
                           f"(Colab's launch button opens notebooks from GitHub); got {url!r}")
    if not branch or re.search(r"\s", branch):
        raise SettingError(f"_config.yml: repository.branch must name a branch; got {branch!r}")
    return Setting(url, branch)


# --- the notebooks' install cells ---------------------------------------------------------------

# A MyST code cell: its fence line, its option lines (":tags: [...]"), a blank line, the source.
MD_CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(?P<options>(?::[^\n]*\n)*)(?P<blank>\n?)"
                     r"(?P<source>.*?)\n?^```[ \t]*$", re.M | re.S)


def notebook_sources(root: Path = ROOT) -> list[Path]:
    return sorted({p for pattern in NOTEBOOK_GLOBS for p in root.glob(pattern)})


def _md_install(text: str):
    """(match, source) of a MyST notebook's first code cell, or None when it has none."""
    match = MD_CELL.search(text)
    return (match, match["source"]) if match else None


def _ipynb_install(nb: dict):
    cells = [c for c in nb.get("cells", []) if c.get("cell_type") == "code"]
    return cells[0] if cells else None


def _cell_problems(where: str, source: str, tags: list, setting: Setting, ref: str | None):
    problems = []
    if "remove-cell" not in tags:
        problems.append(f"{where}: the first code cell is not tagged remove-cell (is it the "
                        f"install cell?)")
    specs = list(GIT_SPEC.finditer(source))
    if not specs:
        return problems + [f"{where}: the first code cell does not pip-install "
                           f"'nlcourse[labs] @ git+URL@REF'"]
    for spec in specs:
        if spec["url"] != setting.url or spec["ref"] != (ref or setting.branch):
            problems.append(f"{where}: installs '{spec[0]}', but the setting says "
                            f"'{setting.install_spec(ref)}'")
    if not problems and source.strip() != setting.install_cell(ref):
        problems.append(f"{where}: the install cell differs from the tool's template")
    return problems


def check_notebook(md: Path, setting: Setting, ref: str | None = None, root: Path = ROOT):
    """Problems of one notebook source and of its paired .ipynb (a list of messages)."""
    rel = md.relative_to(root)
    found = _md_install(md.read_text())
    if found is None:
        return [f"{rel}: no code cell"]
    match, source = found
    tags = re.search(r"^:tags:(.*)$", match["options"], re.M)
    tags = re.findall(r"[\w-]+", tags[1]) if tags else []
    problems = _cell_problems(str(rel), source, tags, setting, ref)
    ipynb = md.with_suffix(".ipynb")
    if ipynb.exists():
        cell = _ipynb_install(json.loads(ipynb.read_text()))
        if cell is None:
            problems.append(f"{rel.with_suffix('.ipynb')}: no code cell")
        else:
            problems += _cell_problems(str(rel.with_suffix(".ipynb")), "".join(cell["source"]),
                                       cell.get("metadata", {}).get("tags", []), setting, ref)
    return problems


def write_notebook(md: Path, setting: Setting, ref: str | None = None) -> list[Path]:
    """Rewrite the install cell of ``md`` and of its paired .ipynb; the files that changed.

    Only that cell's source changes. The .ipynb is written first, so the .md stays the newer of
    the pair and a following ``jupytext --sync`` takes the .md (with any edits of its other
    cells) as the source. A first code cell that is not an install cell is left alone (and
    reported by ``--check``)."""
    cell = setting.install_cell(ref)
    changed = []
    ipynb = md.with_suffix(".ipynb")
    if ipynb.exists():
        nb = json.loads(ipynb.read_text())
        code = _ipynb_install(nb)
        if code is not None and GIT_SPEC.search("".join(code["source"])) \
                and "".join(code["source"]) != cell:
            code["source"] = cell.splitlines(keepends=True)
            # nbformat's own layout (what jupytext writes): the file's other bytes stay as they are
            ipynb.write_text(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
            changed.append(ipynb)
    text = md.read_text()
    found = _md_install(text)
    if found is not None and GIT_SPEC.search(found[1]) and found[1].strip() != cell:
        match = found[0]
        md.write_text(text[:match.end("blank")] + cell + text[match.end("source"):])
        changed.append(md)
    return changed


# --- README, pyproject.toml, _config.yml ---------------------------------------------------------

# Addresses that name a repository or its site, wherever they appear in the README.
REPO_LINK = re.compile(r"https://github\.com/([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+)"
                       r"|https://([A-Za-z0-9-]+)\.github\.io(?:/([A-Za-z0-9_.-]+))?"
                       r"|https://colab\.research\.google\.com/github/([A-Za-z0-9_.-]+)/"
                       r"([A-Za-z0-9_.-]+)/blob/([A-Za-z0-9_./-]+?)/")


def _foreign_links(text: str, setting: Setting) -> list[str]:
    """Every address of the course in ``text`` (its repository, its site, its notebooks in
    Colab) that is not the setting's. An address is the course's when its owner or repository
    name is the setting's, or is ``nlcourse`` (the package's name, and the upstream's): a stale
    link left by a fork is caught, a link to another project is not."""
    ours = {setting.owner.lower(), setting.name.lower(), "nlcourse"}
    wrong = []
    for m in REPO_LINK.finditer(text):
        if m[1] is not None:
            about = {m[1].lower(), m[2].lower()}
            ok = (m[1], m[2]) == (setting.owner, setting.name)
        elif m[3] is not None:
            about = {m[3].lower(), (m[4] or "").lower()}
            ok = (m[0].lower() + "/").startswith(setting.pages_url.lower())
        else:
            about = {m[5].lower(), m[6].lower()}
            ok = (m[5], m[6], m[7]) == (setting.owner, setting.name, setting.branch)
        if about & ours and not ok:
            wrong.append(m[0])
    return wrong


def check_readme(setting: Setting, root: Path = ROOT) -> list[str]:
    text = (root / "README.md").read_text()
    problems = []
    if README_BEGIN not in text or README_END not in text:
        problems.append(f"README.md: no links block (the lines {README_BEGIN!r} ... {README_END!r})")
    elif text[text.index(README_BEGIN):text.index(README_END) + len(README_END)] \
            != setting.readme_block():
        problems.append("README.md: the links block differs from the setting")
    problems += [f"README.md: links to {link}, which is not the setting's repository, "
                 f"branch or site" for link in _foreign_links(text, setting)]
    return problems


def write_readme(setting: Setting, root: Path = ROOT) -> bool:
    path = root / "README.md"
    text = path.read_text()
    if README_BEGIN in text and README_END in text:
        start, end = text.index(README_BEGIN), text.index(README_END) + len(README_END)
        new = text[:start] + setting.readme_block() + text[end:]
    else:   # under the title
        title, _, rest = text.partition("\n")
        new = f"{title}\n\n{setting.readme_block()}\n{rest}"
    if new != text:
        path.write_text(new)
    return new != text


PROJECT_URLS = re.compile(r"^\[project\.urls\]\n(?:(?!\[)[^\n]*\n)*", re.M)


def _urls_table(setting: Setting) -> str:
    lines = [f'{key} = "{value}"' for key, value in setting.project_urls().items()]
    return "[project.urls]\n# written by tools/course_setting.py from _config.yml's repository\n" \
        + "\n".join(lines) + "\n\n"


def check_pyproject(setting: Setting, root: Path = ROOT) -> list[str]:
    project = tomllib.loads((root / "pyproject.toml").read_text()).get("project", {})
    urls = project.get("urls")
    if urls != setting.project_urls():
        return [f"pyproject.toml: [project.urls] is {urls}, but the setting gives "
                f"{setting.project_urls()}"]
    return []


def write_pyproject(setting: Setting, root: Path = ROOT) -> bool:
    path = root / "pyproject.toml"
    text = path.read_text()
    table = _urls_table(setting)
    if PROJECT_URLS.search(text):
        new = PROJECT_URLS.sub(lambda _: table, text, count=1)
    else:   # after the [project] table and its sub-tables that precede the scripts
        anchor = re.search(r"^\[project\.scripts\]", text, re.M) or \
            re.search(r"^\[(?!project)", text, re.M)
        at = anchor.start() if anchor else len(text)
        new = text[:at] + table + text[at:]
    if new != text:
        path.write_text(new)
    return new != text


def check_config(setting: Setting, root: Path = ROOT) -> list[str]:
    config = yaml.safe_load((root / "_config.yml").read_text())
    problems = []
    html = config.get("html") or {}
    if html.get("baseurl") != setting.pages_url:
        problems.append(f"_config.yml: html.baseurl is {html.get('baseurl')!r}, but the site "
                        f"lives at {setting.pages_url!r}")
    launch = config.get("launch_buttons") or {}
    if launch.get("colab_url", COLAB).rstrip("/") != COLAB:
        problems.append(f"_config.yml: launch_buttons.colab_url is {launch.get('colab_url')!r}, "
                        f"not Colab's {COLAB!r}")
    if (config.get("repository") or {}).get("path_to_book") not in (None, "", "."):
        problems.append("_config.yml: repository.path_to_book is set, but the book is the "
                        "repository's root (the launch buttons would point elsewhere)")
    return problems


def write_config(setting: Setting, root: Path = ROOT) -> bool:
    """Write html.baseurl, line by line, so the file's comments and layout stay."""
    path = root / "_config.yml"
    text = path.read_text()
    line = f"  baseurl: {setting.pages_url}   # the published site (tools/course_setting.py)"
    html = re.search(r"^html:[ \t]*\n((?:[ \t]+[^\n]*\n|\n)*)", text, re.M)
    if html is None:
        new = text.rstrip("\n") + f"\n\nhtml:\n{line}\n"
    elif re.search(r"^[ \t]+baseurl:.*$", html[1], re.M):
        body = re.sub(r"^[ \t]+baseurl:.*$", line, html[1], count=1, flags=re.M)
        new = text[:html.start(1)] + body + text[html.end(1):]
    else:
        new = text[:html.start(1)] + line + "\n" + text[html.start(1):]
    if new != text:
        path.write_text(new)
    return new != text


CITATION = "CITATION.cff"


def _citation_lines(setting: Setting) -> dict[str, str]:
    return {"repository-code": setting.url, "url": setting.pages_url}


def check_citation(setting: Setting, root: Path = ROOT) -> list[str]:
    path = root / CITATION
    if not path.exists():
        return []
    cff = yaml.safe_load(path.read_text()) or {}
    return [f"{CITATION}: {key} is {cff.get(key)!r}, but the setting gives {value!r}"
            for key, value in _citation_lines(setting).items() if cff.get(key) != value]


def write_citation(setting: Setting, root: Path = ROOT) -> bool:
    """Rewrite the two top-level lines, so the file's comments and layout stay."""
    path = root / CITATION
    if not path.exists():
        return False
    text = path.read_text()
    new = text
    for key, value in _citation_lines(setting).items():
        new = re.sub(rf"^{re.escape(key)}:.*$", f"{key}: {value}", new, count=1, flags=re.M)
    if new != text:
        path.write_text(new)
    return new != text


# --- the whole --------------------------------------------------------------------------------

PUBLISH = ".github/workflows/publish.yml"
PUBLISH_BRANCHES = re.compile(r"^(?P<indent>[ \t]+)branches:[ \t]*\[(?P<names>[^\]\n]*)\]", re.M)


def _publish_trigger(text: str):
    """The ``branches: [...]`` line of the publish workflow's push trigger (the first one)."""
    push = re.search(r"^on:[ \t]*\n(?:[ \t]+[^\n]*\n|\n)*", text, re.M)
    return PUBLISH_BRANCHES.search(push[0]) if push else None


def check_publish(setting: Setting, root: Path = ROOT) -> list[str]:
    path = root / PUBLISH
    if not path.exists():
        return [f"{PUBLISH}: missing (it publishes the site from the setting's branch)"]
    trigger = _publish_trigger(path.read_text())
    names = [n.strip().strip("'\"") for n in trigger["names"].split(",")] if trigger else []
    if names != [setting.branch]:
        return [f"{PUBLISH}: publishes on pushes to {names}, but the setting's branch is "
                f"{setting.branch!r}"]
    return []


def write_publish(setting: Setting, root: Path = ROOT) -> bool:
    path = root / PUBLISH
    if not path.exists():
        return False
    text = path.read_text()
    push = re.search(r"^on:[ \t]*\n(?:[ \t]+[^\n]*\n|\n)*", text, re.M)
    trigger = _publish_trigger(text)
    if trigger is None:
        return False
    at = push.start() + trigger.start("names")
    new = text[:at] + setting.branch + text[push.start() + trigger.end("names"):]
    if new != text:
        path.write_text(new)
    return new != text


def check(root: Path = ROOT, ref: str | None = None) -> list[str]:
    """Every disagreement with the setting, one message each (empty: all agree)."""
    setting = read_setting(root)
    problems = []
    for md in notebook_sources(root):
        problems += check_notebook(md, setting, ref, root)
    return problems + check_readme(setting, root) + check_pyproject(setting, root) \
        + check_config(setting, root) + check_publish(setting, root) \
        + check_citation(setting, root)


def write(root: Path = ROOT, ref: str | None = None) -> list[Path]:
    """Rewrite everything derived from the setting; the files that changed."""
    setting = read_setting(root)
    changed = [path for md in notebook_sources(root) for path in write_notebook(md, setting, ref)]
    for name, writer in (("README.md", write_readme), ("pyproject.toml", write_pyproject),
                         ("_config.yml", write_config), (PUBLISH, write_publish),
                         (CITATION, write_citation)):
        if writer(setting, root):
            changed.append(root / name)
    return changed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help="rewrite every derived URL")
    action.add_argument("--check", action="store_true",
                        help="report every file that disagrees with the setting (exit 1)")
    action.add_argument("--get", choices=("url", "branch", "pages_url"),
                        help="print one value of the setting (for the workflows)")
    parser.add_argument("--ref", help="the git ref the install cells pin (default: the setting's "
                                      "branch); the publish workflow passes the commit it builds")
    parser.add_argument("--root", type=Path, default=ROOT, help="the course checkout")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    try:
        if args.get:
            print(getattr(read_setting(root), args.get))
            return 0
        if args.write:
            for path in write(root, args.ref):
                print(f"wrote {path.relative_to(root)}")
            problems = check(root, args.ref)   # what the tool cannot fix (a cell it did not find)
        else:
            problems = check(root, args.ref)
    except SettingError as error:
        print(error, file=sys.stderr)
        return 2
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} disagreement(s) with _config.yml's repository setting; "
              f"'python tools/course_setting.py --write' (make sync) rewrites them", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
