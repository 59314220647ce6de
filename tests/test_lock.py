"""The locked environment: requirements-lock.txt pins every requirement of requirements.txt (and
everything they need) to one version that its bounds allow, so that `make venv` installs the
same environment on any day; tools/lower_bounds.py turns the bounds into the oldest pins for the
weekly drift job."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
try:
    import lower_bounds
finally:
    sys.path.pop(0)


def _pins(path: Path) -> dict:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"{path.name}: {line!r} is not pinned with =="
            pins[canonicalize_name(name)] = version
    return pins


def test_the_lock_pins_every_requirement_within_its_bounds():
    pins = _pins(ROOT / "requirements-lock.txt")
    for req in lower_bounds.requirements(ROOT / "requirements.txt"):
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not in requirements-lock.txt: run 'make lock'"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"the lock pins {req.name}=={pins[name]}, outside {req}: run 'make lock'")


def test_the_lock_holds_torch_at_the_pair_of_tools_lock_torch():
    pins = _pins(ROOT / "requirements-lock.txt")
    for line in (ROOT / "tools" / "lock-torch.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            req = Requirement(line)
            assert req.specifier.contains(pins[canonicalize_name(req.name)]), line


def test_the_package_asks_only_for_lower_bounds():
    """Colab keeps its own torch: neither requirements.txt nor the package pins it."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    listed = project["dependencies"] + [d for extra in project["optional-dependencies"].values()
                                        for d in extra]
    for text in listed + [str(r) for r in lower_bounds.requirements(ROOT / "requirements.txt")]:
        req = Requirement(text)
        if canonicalize_name(req.name) in ("torch", "torchvision"):
            assert all(s.operator == ">=" for s in req.specifier), text


def test_lower_bounds_prints_the_bounds(tmp_path):
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("# a comment\ntorch>=2.5   # why\nnbgrader==0.9.6\njupyter-book>=1.0.4,<2\n"
                    "plain\n")
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "lower_bounds.py"), str(reqs),
                          "--offline"], capture_output=True, text=True, check=True)
    assert run.stdout.split() == ["torch==2.5", "nbgrader==0.9.6", "jupyter-book==1.0.4"]
    oldest = lower_bounds.oldest_allowed(Requirement("jupyter-book>=1.0.4,<2"),
                                         [lower_bounds.Version(v) for v in
                                          ("0.15", "1.0.3", "1.0.4.post1", "1.1", "2.0", "2.1a1")])
    assert str(oldest) == "1.0.4.post1"
