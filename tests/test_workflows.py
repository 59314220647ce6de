"""The GitHub workflows: each one validates against GitHub's workflow schema (offline, with
check-jsonschema's vendored copy), and does what the course needs: ci.yml runs .ci/run on pushes
and pull requests with its caches; publish.yml pins the notebooks' install cells to the commit
it publishes before it builds, with the committed results and the quick budget (never smoke),
and deploys to GitHub Pages; release.yml does the same on a version tag (tests/test_release.py);
linkcheck.yml checks the links every week; drift.yml runs the
course every week on the newest releases and on the oldest that requirements.txt allows."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
FILES = sorted(WORKFLOWS.glob("*.yml"))
# The major versions in use (actions/* publishes moving major tags).
ACTIONS = {"actions/checkout": "v4", "actions/setup-python": "v5", "actions/cache": "v4",
           "actions/configure-pages": "v5", "actions/upload-pages-artifact": "v3",
           "actions/deploy-pages": "v4"}
SHA = "0123456789abcdef0123456789abcdef01234567"


def _check_jsonschema():
    """check-jsonschema of this environment (requirements.txt), else one on PATH."""
    here = Path(sys.executable).parent / "check-jsonschema"
    return str(here) if here.exists() else shutil.which("check-jsonschema")


def _validate(path: Path):
    exe = _check_jsonschema()
    if exe is None:
        pytest.skip("check-jsonschema is not installed (pip install check-jsonschema)")
    # --builtin-schema uses the schema vendored in the package: no network (checked with the
    # network namespace removed: `unshare -rn`).
    return subprocess.run([exe, "--builtin-schema", "vendor.github-workflows", str(path)],
                          capture_output=True, text=True, timeout=120)


def _load(name: str) -> dict:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    data["on"] = data.pop(True, data.get("on"))   # YAML 1.1 reads the key `on` as True
    return data


def _steps(job: dict) -> list[dict]:
    return job.get("steps", [])


def _runs(job: dict) -> list[str]:
    return [s.get("run", "") for s in _steps(job)]


def _uses(job: dict, action: str) -> list[dict]:
    return [s for s in _steps(job) if s.get("uses", "").split("@")[0] == action]


def test_the_workflows_exist():
    assert [p.name for p in FILES] == ["ci.yml", "drift.yml", "linkcheck.yml", "publish.yml",
                                       "release.yml"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_workflow_validates_against_githubs_schema(path):
    run = _validate(path)
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_schema_check_can_fail(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text((WORKFLOWS / "ci.yml").read_text().replace("runs-on:", "runs-onn:"))
    run = _validate(broken)
    assert run.returncode != 0 and "runs-on" in run.stdout + run.stderr


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_actions_are_pinned_to_their_major_version(path):
    uses = re.findall(r"uses:\s*([\w./-]+)@(\S+)", path.read_text())
    assert uses
    for action, version in uses:
        assert action in ACTIONS, f"{path.name}: {action} is not one of the actions in use"
        assert version == ACTIONS[action], f"{path.name}: {action}@{version}, expected {ACTIONS[action]}"


def _assert_caches(job: dict, name: str):
    caches = {s["with"]["path"].strip(): s["with"] for s in _uses(job, "actions/cache")}
    venv = caches.get(".venv")
    assert venv and "hashFiles('requirements-lock.txt', 'pyproject.toml')" in venv["key"], \
        f"{name}: the virtual environment is cached, keyed on the lock and pyproject.toml"
    assert "python-version" in venv["key"], f"{name}: a venv links to its exact Python"
    assert any("_build/.jupyter_cache" in path for path in caches), \
        f"{name}: Jupyter Book's execution cache is cached"
    python = _uses(job, "actions/setup-python")
    assert python and str(python[0]["with"]["python-version"]) == "3.11"
    assert job["runs-on"] == "ubuntu-latest"


def test_ci_runs_the_suite_on_pushes_and_pull_requests():
    ci = _load("ci.yml")
    assert "push" in ci["on"] and "pull_request" in ci["on"]
    (job,) = ci["jobs"].values()
    assert ".ci/run" in _runs(job)
    _assert_caches(job, "ci.yml")


def test_publish_deploys_to_pages_from_the_settings_branch():
    branch = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["branch"]
    publish = _load("publish.yml")
    assert publish["on"]["push"]["branches"] == [branch]
    assert publish["permissions"]["pages"] == "write"
    assert publish["permissions"]["id-token"] == "write"
    assert publish["concurrency"]["group"]
    build, deploy = publish["jobs"]["build"], publish["jobs"]["deploy"]
    _assert_caches(build, "publish.yml")
    assert _uses(build, "actions/configure-pages")
    (upload,) = _uses(build, "actions/upload-pages-artifact")
    assert upload["with"]["path"] == "_build/html"
    assert deploy["needs"] == "build" and _uses(deploy, "actions/deploy-pages")
    assert deploy["environment"]["name"] == "github-pages"


def test_publish_never_publishes_the_smoke_budget():
    text = (WORKFLOWS / "publish.yml").read_text()
    build = _load("publish.yml")["jobs"]["build"]
    assert build["env"]["NLCOURSE_BUDGET"] == "quick"
    assert "NLCOURSE_BUDGET" not in "".join(_runs(build)), "the budget is set once, for the job"
    assert "smoke budget is never published" in text   # the choice is said where it is made


def _build_step(job: dict) -> int:
    builds = [i for i, run in enumerate(_runs(job))
              if re.search(r"(^|\s)make book\b|jupyter-book build", run)]
    assert len(builds) == 1, "one step builds the site"
    return builds[0]


def _pin_step(job: dict) -> int:
    pins = [i for i, run in enumerate(_runs(job))
            if "tools/course_setting.py --write" in run and '--ref "${{ github.sha }}"' in run]
    assert len(pins) == 1, "one step pins the install cells to the commit being published"
    return pins[0]


def test_publish_pins_the_install_cells_before_it_builds():
    build = _load("publish.yml")["jobs"]["build"]
    assert _pin_step(build) < _build_step(build)


def _course_setting():
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import course_setting as cs
    finally:
        sys.path.pop(0)
    return cs


def installed_refs(root: Path) -> dict[str, set[str]]:
    """Every notebook of a tree (labs, exercises, student versions, the chapters' runnable
    notebooks) and the refs its install cell names."""
    cs = _course_setting()
    url = re.escape(cs.read_setting(root).url)
    paths = [p for md in cs.notebook_sources(root) for p in (md, md.with_suffix(".ipynb"))
             if p.exists()] + sorted((root / "book" / "colab").glob("*.ipynb"))
    return {p.relative_to(root).as_posix(): set(re.findall(rf"git\+{url}@([^\s\"'\\]+)",
                                                             p.read_text()))
            for p in paths}


def run_pin_step(tmp_path: Path, command: str) -> Path:
    """Run a workflow's pin command on a copy of the course (what it reads and writes)."""
    cs = _course_setting()
    for name in ("_config.yml", "_toc.yml", "README.md", "pyproject.toml", cs.PUBLISH,
                 "tools/course_setting.py", "tools/chapter_notebooks.py",
                 *(p.relative_to(ROOT).as_posix() for p in ROOT.glob("book/*.md")),
                 *(p.relative_to(ROOT).as_posix() for p in ROOT.glob("book/colab/*.ipynb"))):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    for md in cs.notebook_sources(ROOT):
        for path in (p for p in (md, md.with_suffix(".ipynb")) if p.exists()):
            target = tmp_path / path.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
    command = command.replace(".venv/bin/python", sys.executable)
    subprocess.run(["bash", "-c", command], cwd=tmp_path, check=True, capture_output=True)
    return tmp_path


def test_the_pin_step_really_pins(tmp_path):
    """Run the publish workflow's own pin command, with a commit for ${{ github.sha }}, on a copy
    of the course: every notebook's install cell, the chapters' too, then installs that commit."""
    build = _load("publish.yml")["jobs"]["build"]
    command = _runs(build)[_pin_step(build)].replace("${{ github.sha }}", SHA)
    root = run_pin_step(tmp_path, command)
    assert _course_setting().check(root, ref=SHA) == []
    refs = installed_refs(root)
    assert any(name.startswith("book/colab/") for name in refs)
    assert {name: r for name, r in refs.items() if r != {SHA}} == {}
    # and the committed tree names the branch, so the check above could fail
    assert all(r == {_course_setting().read_setting(ROOT).branch}
               for r in installed_refs(ROOT).values())


def test_linkcheck_runs_weekly():
    linkcheck = _load("linkcheck.yml")
    _weekly(linkcheck)
    (job,) = linkcheck["jobs"].values()
    assert any(re.search(r"jupyter-book build \. --builder linkcheck", run) for run in _runs(job))


def _weekly(workflow: dict) -> None:
    (cron,) = workflow["on"]["schedule"]
    minute, hour, day, month, weekday = cron["cron"].split()
    assert day == month == "*" and weekday not in ("*",), "once a week"
    assert "workflow_dispatch" in workflow["on"]


def test_drift_runs_the_course_weekly_on_the_newest_and_the_oldest_releases():
    drift = _load("drift.yml")
    _weekly(drift)
    newest, lower = drift["jobs"]["newest"], drift["jobs"]["lower-bounds"]
    assert newest["env"]["REQUIREMENTS"] == "requirements.txt"     # no lock
    assert not _uses(newest, "actions/cache") or all(
        s["with"]["path"] == ".data" for s in _uses(newest, "actions/cache")), "no venv cache"
    assert lower["env"]["REQUIREMENTS"] == "lower-bounds.txt"
    assert any("tools/lower_bounds.py requirements.txt > lower-bounds.txt" in run
               for run in _runs(lower))
    for job in (newest, lower):
        assert ".ci/run" in _runs(job)
    assert "make colab" in _runs(drift["jobs"]["colab"])     # the labs as in Colab, weekly


def test_ci_and_publish_install_the_lock():
    """make venv installs the lock unless told otherwise; the jobs that use the lock do not set
    REQUIREMENTS, and the Makefile's default is the lock."""
    assert re.search(r"^REQUIREMENTS \?= requirements-lock\.txt$",
                     (ROOT / "Makefile").read_text(), re.M)
    for name in ("ci.yml", "publish.yml", "linkcheck.yml"):
        text = (WORKFLOWS / name).read_text()
        assert "REQUIREMENTS" not in text, name
        assert "grep -E '^torch(vision)?==' requirements-lock.txt" in text, name
