"""The house rules of the code, read from the sources: data flows one way (no core module
imports a lab), and an import sits inside a function only to keep ``import nlcourse`` light, with
its reason beside it."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nlcourse"
CORE = sorted(p for p in PACKAGE.rglob("*.py")
              if "labs" not in p.relative_to(PACKAGE).parts and p.name != "__main__.py")
HEAVY = ("torchvision", "matplotlib", "matplotlib_inline", "plotly", "mlxtend", "ipywidgets", "IPython", "jupytext",
         "PIL", "torch._dynamo", "torch._inductor")   # the last two: torch.compile's stack, 1-1.5 s


def _heavy(name: str) -> bool:
    return any(name == h or name.startswith(h + ".") for h in HEAVY)


def _imports(path: Path):
    """(module imported, node, inside a function) for every import of a file."""
    tree = ast.parse(path.read_text())
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    inner = {id(n) for f in functions for n in ast.walk(f) if n is not f}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names = [module] + [f"{module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            yield name, node, id(node) in inner


def test_the_rule_is_read_from_real_imports():
    imported = {name for path in CORE for name, _, _ in _imports(path)}
    assert "nlcourse.blocks" in imported and "nlcourse.reference" in imported
    labs = {name for path in (PACKAGE / "labs").glob("*.py") for name, _, _ in _imports(path)}
    assert "nlcourse.models.MNISTNet" in labs   # a lab imports the core: the checker sees it


@pytest.mark.parametrize("path", CORE, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_core_module_imports_a_lab(path):
    wrong = [name for name, _, _ in _imports(path) if name.startswith("nlcourse.labs")]
    assert not wrong, f"{path.name} imports {wrong}: the core must not depend on a lab"


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")),
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_inside_functions_are_heavy_and_say_why(path):
    lines = path.read_text().splitlines()
    for name, node, inside in _imports(path):
        if not inside:
            continue
        where = f"{path.name}:{node.lineno} imports {name} inside a function"
        assert _heavy(name), f"{where}: move it to the top of the file"
        said = lines[node.lineno - 1] + (lines[node.lineno - 2] if node.lineno > 1 else "")
        assert "#" in said, f"{where} without a comment saying why"


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


@functools.cache
def _private_defs(path: Path) -> frozenset[str]:
    return frozenset(n.name for n in ast.walk(ast.parse(path.read_text()))
                     if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                     and _private(n.name))


def test_the_private_check_sees_a_private_call():
    tree = ast.parse("from .train import _optimizer\nblock._check_input(x)\n")
    assert _private_uses(tree, {"_check_input"}) == ["_optimizer", "_check_input"]


def _private_uses(tree, defined_elsewhere: set[str]) -> list[str]:
    """Private names a module imports from the package, or calls on another module's objects."""
    used = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level or (node.module or "").startswith("nlcourse"):
                used += [a.name for a in node.names if _private(a.name)]
        elif isinstance(node, ast.Attribute) and node.attr in defined_elsewhere:
            on_self = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
            if _private(node.attr) and not on_self:
                used.append(node.attr)
    return used


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")),
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_uses_a_private_name_of_another(path):
    """A private module (``_modes``) is the package's own; a private name inside any module is
    that module's alone: what another module needs is made public."""
    own = _private_defs(path)
    elsewhere = {name for other in PACKAGE.rglob("*.py") if other != path
                 for name in _private_defs(other)} - own
    wrong = _private_uses(ast.parse(path.read_text()), elsewhere)
    assert not wrong, f"{path.relative_to(PACKAGE)} uses {wrong}, private to another module"


def test_no_undefined_or_unused_names():
    """pyflakes over the package and the tests: an undefined name fails only when its line runs
    (a name lost in a move, say), so read them all here."""
    import subprocess
    import sys

    root = PACKAGE.parent
    run = subprocess.run([sys.executable, "-m", "pyflakes", "nlcourse", "tests"], cwd=root,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_every_module_says_what_its_forward_computes():
    """The API page shows each network's forward(); without a docstring of its own it would show
    PyTorch's inherited "Should be overridden by all subclasses"."""
    import importlib
    import inspect

    from torch import nn

    names = [".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts) for p in CORE]
    modules = [importlib.import_module(n.removesuffix(".__init__")) for n in names]
    classes = {c for m in modules for _, c in inspect.getmembers(m, inspect.isclass)
               if issubclass(c, nn.Module) and c.__module__.startswith("nlcourse")}
    assert len(classes) >= 8
    for cls in classes:
        doc = cls.forward.__doc__ or ""
        assert doc and doc != nn.Module.forward.__doc__, f"{cls.__name__}.forward has no docstring"
