"""Where the course lives is said once, in _config.yml's `repository` section, and every address
derived from it agrees: each notebook's install cell (and its paired .ipynb), the README's links,
`[project.urls]` of pyproject.toml, the site's address and launch settings in _config.yml, and
the branch the publish workflow publishes. The maintainer tool is tools/course_setting.py
(`--write`, which `make sync` runs, and `--check`); these tests read the checkout with it, and
plant disagreements in a copy to show that the check can fail."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import jupytext
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "course_setting.py"
_spec = importlib.util.spec_from_file_location("course_setting", TOOL)
cs = importlib.util.module_from_spec(_spec)
sys.modules["course_setting"] = cs   # dataclasses look their module up by name
_spec.loader.exec_module(cs)

SETTING = cs.read_setting(ROOT)
NOTEBOOKS = cs.notebook_sources(ROOT)
SHA = "0123456789abcdef0123456789abcdef01234567"


def _fix(problems):
    return "\n".join(problems) + "\nrun 'make sync' (python tools/course_setting.py --write)"


def test_the_setting_is_one_github_repository_and_branch():
    repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    assert repo["url"] == SETTING.url and repo["branch"] == SETTING.branch
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", SETTING.url)
    assert len(NOTEBOOKS) >= 7 + 6, "the labs and the exercises are all read"


@pytest.mark.parametrize("md", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT / "notebooks")))
def test_install_cell_follows_the_setting(md):
    problems = cs.check_notebook(md, SETTING, root=ROOT)
    assert not problems, _fix(problems)


@pytest.mark.parametrize("part", ["README.md", "pyproject.toml", "_config.yml", "publish.yml"])
def test_links_follow_the_setting(part):
    check = {"README.md": cs.check_readme, "pyproject.toml": cs.check_pyproject,
             "_config.yml": cs.check_config, "publish.yml": cs.check_publish}[part]
    problems = check(SETTING, ROOT)
    assert not problems, _fix(problems)


def test_the_tool_finds_no_disagreement():
    """The command maintainers run: every file that disagrees with the setting, in one list."""
    run = subprocess.run([sys.executable, str(TOOL), "--check"], capture_output=True, text=True)
    disagreeing = sorted({line.split(":")[0] for line in run.stderr.splitlines()
                          if not line.endswith("rewrites them")})
    assert run.returncode == 0, (f"{len(disagreeing)} file(s) disagree with _config.yml's "
                                 f"repository setting:\n  " + "\n  ".join(disagreeing)
                                 + f"\n\n{run.stderr}")


def test_jupyter_book_derives_the_launch_buttons_from_the_setting():
    """The launch and repository buttons are Jupyter Book's, built from the same section: read
    the Sphinx configuration it makes of _config.yml (validated against its schema)."""
    from jupyter_book.config import get_final_config

    config, _ = get_final_config(user_yaml=ROOT / "_config.yml", sourcedir=ROOT,
                                 cli_config={"latex_individualpages": False},
                                 validate=True, raise_on_invalid=True)
    theme = config["html_theme_options"]
    assert theme["repository_url"] == SETTING.url
    assert theme["repository_branch"] == SETTING.branch
    assert theme.get("path_to_docs", "") in ("", ".")
    assert theme["launch_buttons"]["colab_url"] == cs.COLAB
    assert config["html_baseurl"] == SETTING.pages_url


def test_install_cell_keeps_colabs_torch():
    """The cell installs only when nlcourse is missing, never upgrades or reinstalls, and the
    package asks for torch and torchvision with lower bounds only: pip's default strategy
    (only-if-needed) then keeps Colab's own builds. Checked with pip itself: a dry run of this
    cell's requirement in an environment that has torch 2.5.1 and torchvision 0.20.1 installs
    neither (and no nvidia-* or triton)."""
    cell = SETTING.install_cell()
    assert 'if importlib.util.find_spec("nlcourse") is None:' in cell
    assert f'"nlcourse[labs] @ git+{SETTING.url}@{SETTING.branch}"' in cell
    pip_line = cell[cell.index("subprocess.run"):cell.index("check=True")]
    assert not re.search(r"-U\b|--upgrade|--force-reinstall|--ignore-installed|torch", pip_line)
    assert "torch" not in cell.split("nlcourse[labs]")[0]   # as tests/test_notebooks.py checks
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["labs"]
    for name in ("torch", "torchvision"):
        spec = next(r for r in wanted if re.match(rf"{name}\b(?!vision)", r))
        assert re.fullmatch(rf"{name}>=[\d.]+", spec.replace(" ", "")), \
            f"{spec}: a pin or an upper bound would make pip replace Colab's {name}"


def test_site_addresses():
    assert cs.Setting("https://github.com/nlcourse/nlcourse", "main").pages_url == \
        "https://nlcourse.github.io/nlcourse/"
    assert cs.Setting("https://github.com/Alice/alice.github.io", "main").pages_url == \
        "https://alice.github.io/"
    assert SETTING.project_urls()["Repository"] == SETTING.url


@pytest.mark.parametrize("url", ["https://gitlab.com/a/b", "git@github.com:a/b.git",
                                 "https://github.com/only-owner", ""])
def test_a_setting_colab_cannot_open_is_refused(tmp_path, url):
    (tmp_path / "_config.yml").write_text(f"repository:\n  url: {url}\n  branch: main\n")
    with pytest.raises(cs.SettingError, match="repository.url"):
        cs.read_setting(tmp_path)


# --- a copy of the checkout, to plant disagreements in --------------------------------------------

@pytest.fixture
def course(tmp_path):
    """The files the setting drives, copied, then written from the setting (so the copy starts in
    agreement whatever the state of the checkout's notebooks)."""
    for name in ("_config.yml", "README.md", "pyproject.toml", cs.PUBLISH, cs.CITATION,
                 "tools/course_setting.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    for md in NOTEBOOKS:
        for path in (md, md.with_suffix(".ipynb")):
            if path.exists():
                (tmp_path / path.relative_to(ROOT)).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, tmp_path / path.relative_to(ROOT))
    cs.write(tmp_path)
    assert cs.check(tmp_path) == []
    return tmp_path


def _files(problems):
    return {p.split(":")[0] for p in problems}


def test_a_planted_disagreement_fails(course):
    lab = course / "notebooks" / "01_block_anatomy.md"
    ex = course / "notebooks" / "exercises" / "ex01_embedded_gaussian.ipynb"
    lab.write_text(lab.read_text().replace(f"git+{SETTING.url}@", "git+https://github.com/x/y@"))
    ex.write_text(ex.read_text().replace(f"{SETTING.url}@{SETTING.branch}", f"{SETTING.url}@v0.0"))
    readme = course / "README.md"
    readme.write_text(readme.read_text() + f"\nOld home: https://github.com/nlcourse/{SETTING.name}-old\n")
    pyproject = course / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(f'Repository = "{SETTING.url}"',
                                                       'Repository = "https://github.com/x/y"'))
    config = course / "_config.yml"
    config.write_text(config.read_text().replace("colab_url: https://colab.research.google.com",
                                                 "colab_url: https://example.org"))
    problems = cs.check(course)
    assert _files(problems) == {"notebooks/01_block_anatomy.md",
                                "notebooks/exercises/ex01_embedded_gaussian.ipynb",
                                "README.md", "pyproject.toml", "_config.yml"}, "\n".join(problems)
    run = subprocess.run([sys.executable, str(TOOL), "--check", "--root", str(course)],
                         capture_output=True, text=True)
    assert run.returncode == 1 and "notebooks/01_block_anatomy.md" in run.stderr
    # --write rewrites what it derives; a stray link in the prose and the launch settings are
    # not derived, so they stay reported until a person fixes them
    cs.write(course)
    assert _files(cs.check(course)) == {"README.md", "_config.yml"}


def test_a_fork_changes_one_line(course):
    """Only the setting changes: everything derived then disagrees, until --write."""
    config = course / "_config.yml"
    config.write_text(config.read_text().replace(f"url: {SETTING.url}",
                                                 "url: https://github.com/alice/nl-course")
                      .replace(f"branch: {SETTING.branch}", "branch: trunk"))
    stale = _files(cs.check(course))
    assert {"README.md", "pyproject.toml", "_config.yml", cs.PUBLISH, cs.CITATION} <= stale
    assert {str(p.relative_to(course)) for md in cs.notebook_sources(course)
            for p in (md, md.with_suffix(".ipynb")) if p.exists()} <= stale
    run = subprocess.run([sys.executable, str(course / "tools/course_setting.py"), "--write"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert cs.check(course) == []
    text = "".join(p.read_text() for p in course.rglob("*") if p.is_file() and p.suffix != ".py")
    assert "git+https://github.com/alice/nl-course@trunk" in text
    assert "https://alice.github.io/nl-course/" in (course / "pyproject.toml").read_text()
    assert "branches: [trunk]" in (course / cs.PUBLISH).read_text()
    assert "repository-code: https://github.com/alice/nl-course" in (course / cs.CITATION).read_text()
    assert "nlcourse/nlcourse" not in text


def test_ref_pins_only_the_install_cells(course):
    readme = (course / "README.md").read_text()
    cs.write(course, ref=SHA)
    assert cs.check(course, ref=SHA) == []
    pinned = _files(cs.check(course))
    assert pinned and all(p.startswith("notebooks/") for p in pinned)
    assert (course / "README.md").read_text() == readme
    nb = json.loads((course / "notebooks" / "02_train_mnist.ipynb").read_text())
    first = next(c for c in nb["cells"] if c["cell_type"] == "code")
    assert f"git+{SETTING.url}@{SHA}" in "".join(first["source"])


def test_writing_changes_only_the_install_cell(course):
    """Every other cell and byte stays; the .md and .ipynb of a pair stay in sync (jupytext)."""
    before = {p: p.read_text() for p in course.rglob("notebooks/**/*") if p.is_file()}
    cs.write(course, ref=SHA)
    for path, old in before.items():
        new = path.read_text()
        if path.suffix == ".md":
            cut = re.compile(r"```\{code-cell\}.*?\n```", re.S)
            assert cut.sub("", old, count=1) == cut.sub("", new, count=1), path
        else:
            cells = lambda text: json.loads(text)["cells"]   # noqa: E731
            changed = [i for i, (a, b) in enumerate(zip(cells(old), cells(new))) if a != b]
            assert len(cells(old)) == len(cells(new)) and len(changed) == 1, path
            assert json.loads(old)["metadata"] == json.loads(new)["metadata"]
    for md in (md for md in cs.notebook_sources(course) if md.with_suffix(".ipynb").exists()):
        a, b = jupytext.read(md), jupytext.read(md.with_suffix(".ipynb"))
        assert [(c.cell_type, c.source.strip(), c.metadata.get("tags")) for c in a.cells] == \
            [(c.cell_type, c.source.strip(), c.metadata.get("tags")) for c in b.cells], md
    written = {p: p.read_text() for p in before}
    assert cs.write(course, ref=SHA) == []   # a second write changes nothing
    assert all(p.read_text() == text for p, text in written.items())


def test_a_notebook_without_an_install_cell_is_reported(course):
    md = course / "notebooks" / "03_attention_maps.md"
    md.write_text(md.read_text().replace(":tags: [remove-cell]\n", "", 1))
    assert any("not tagged remove-cell" in p for p in cs.check(course))
