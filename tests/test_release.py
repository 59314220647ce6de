"""A citable, versioned course: CITATION.cff validates against the Citation File Format's schema
and agrees with pyproject.toml, CHANGELOG.md has a dated section for the version, and the release
workflow builds the site with every install cell naming the tag, then attaches the site, the
weights and the notebooks (tools/release.py says what must agree before a tag is released)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.test_workflows import (ROOT, _build_step, _check_jsonschema, _load, _runs,
                                  _course_setting, installed_refs, run_pin_step)

sys.path.insert(0, str(ROOT / "tools"))
import release  # noqa: E402

TAG = f"v{release.version()}"


def _cff_schema_check(path: Path) -> subprocess.CompletedProcess:
    exe = _check_jsonschema()
    if exe is None:
        pytest.skip("check-jsonschema is not installed (pip install check-jsonschema)")
    return subprocess.run([exe, "--builtin-schema", "vendor.citation-file-format", str(path)],
                          capture_output=True, text=True, timeout=120)


def test_the_citation_file_validates():
    run = _cff_schema_check(ROOT / "CITATION.cff")
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_schema_check_can_fail(tmp_path):
    broken = tmp_path / "CITATION.cff"
    broken.write_text((ROOT / "CITATION.cff").read_text().replace("cff-version:", "cff-versio:"))
    assert _cff_schema_check(broken).returncode != 0


def test_the_citation_names_this_course_and_the_paper():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    setting = _course_setting().read_setting(ROOT)
    assert cff["repository-code"] == setting.url and cff["url"] == setting.pages_url
    assert cff["license"] == "MIT" and "MIT" in (ROOT / "LICENSE").read_text()
    (paper,) = [r for r in cff["references"] if r["title"] == "Non-local Neural Networks"]
    assert [a["family-names"] for a in paper["authors"]] == ["Wang", "Girshick", "Gupta", "He"]
    readme = (ROOT / "README.md").read_text()
    assert "CITATION.cff" in readme and f"version = {{{release.version()}}}" in readme


def test_the_version_agrees_everywhere():
    assert release.check(TAG) == [], "tools/release.py check " + TAG
    assert release.sections()[release.version()][1], "the version's changelog section says what"


def test_the_release_check_names_each_disagreement(tmp_path):
    for name in ("pyproject.toml", "CITATION.cff", "CHANGELOG.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    assert any("the tag is 'v9.9.9'" in p for p in release.check("v9.9.9", tmp_path))
    version = release.version()
    changelog = tmp_path / "CHANGELOG.md"
    changelog.write_text(changelog.read_text().replace(f"## [{version}] - ", f"## [{version}]x "))
    assert any("CHANGELOG.md" in p for p in release.check(TAG, tmp_path))
    cff = tmp_path / "CITATION.cff"
    cff.write_text(cff.read_text().replace(f"version: {version}", "version: 0.0.0"))
    assert any("CITATION.cff: version" in p for p in release.check(TAG, tmp_path))


def test_release_runs_on_version_tags_and_may_write_releases():
    workflow = _load("release.yml")
    assert workflow["on"] == {"push": {"tags": ["v*"]}}
    assert workflow["permissions"] == {"contents": "write"}
    (job,) = workflow["jobs"].values()
    assert job["env"]["NLCOURSE_BUDGET"] == "quick"    # never the smoke budget


def _step(runs: list[str], needle: str) -> int:
    (i,) = [i for i, run in enumerate(runs) if needle in run]
    return i


def test_release_checks_pins_builds_then_attaches():
    (job,) = _load("release.yml")["jobs"].values()
    runs = _runs(job)
    check = _step(runs, 'tools/release.py check "${GITHUB_REF_NAME}"')
    pin = _step(runs, 'tools/course_setting.py --write --ref "${GITHUB_REF_NAME}"')
    assert 'tools/chapter_notebooks.py --write --ref "${GITHUB_REF_NAME}"' in runs[pin]
    pack = _step(runs, "tar -czf")
    create = _step(runs, "gh release create")
    assert check < pin < _build_step(job) < pack < create
    for attached in ("-C _build html", "nlcourse/weights", "notebooks/exercises/student/*.ipynb",
                     "book/colab/*.ipynb", "release.py notes"):
        assert attached in runs[pack], attached
    assert "release/*.tar.gz" in runs[create] and "--notes-file" in runs[create]


def test_a_tagged_build_installs_the_tag(tmp_path):
    """The release workflow's own pin step, run with its tag on a copy of the course: every
    notebook's install cell, the chapters' runnable notebooks included, names the tag."""
    (job,) = _load("release.yml")["jobs"].values()
    runs = _runs(job)
    command = runs[_step(runs, "tools/course_setting.py --write --ref")]
    root = run_pin_step(tmp_path, f"export GITHUB_REF_NAME={TAG}\n{command}")
    refs = installed_refs(root)
    assert len(refs) > 20 and {name: r for name, r in refs.items() if r != {TAG}} == {}
