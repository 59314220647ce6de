"""Notebooks run where Colab would run them: outside the repository, in a fresh environment that
already has what Colab's image has (PyTorch, torchvision, NumPy, SciPy, pandas, matplotlib,
plotly, tqdm, scikit-learn, ipykernel and ipywidgets 7.7.1; here every package of this test's
own environment except nlcourse, made visible through a .pth file, metadata included, as an
image's preinstalled packages are, with ipywidgets swapped for Colab's 7.7.1).

- The install cell installs nlcourse from the repository (a local clone of the committed tree
  stands in for GitHub) and changes none of those packages.
- The labs then see the course's committed results, which come with the package: lab 2 and a
  sweep lab (lab 4) run at the smoke budget in CI, and the sweep lab reads its committed sweep
  back instead of training it.
- A chapter's Colab notebook installs the package the same way and runs.
- ``make colab`` (``NLCOURSE_COLAB_QUICK=1``) runs labs 2 to 8 at the quick budget, each within 5
  minutes besides the one model it trains.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
import time
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAB = ROOT / "notebooks"
# What Colab's image brings, of what the course uses (the packages the install cell must keep).
COLAB_PACKAGES = ("torch", "torchvision", "numpy", "scipy", "pandas", "matplotlib", "plotly",
                  "tqdm", "scikit-learn", "ipykernel", "ipywidgets")
# ipywidgets as Colab has shipped it, with what it needs at those versions.
COLAB_WIDGETS = ("ipywidgets==7.7.1", "widgetsnbextension==3.6.6", "jupyterlab-widgets==1.1.7",
                 "ipython-genutils==0.2.0")
_WIDGET_DISTS = ("ipywidgets", "widgetsnbextension", "jupyterlab_widgets")

pytestmark = pytest.mark.slow


def _colab_image(tmp: Path) -> Path:
    """A folder of links to this environment's packages (nlcourse and ipywidgets left out), and
    Colab's ipywidgets 7.7.1 beside them."""
    site = Path(sysconfig.get_paths()["purelib"])
    image = tmp / "colab_image"
    image.mkdir()
    for entry in site.iterdir():
        name = entry.name.lower()
        if ("nlcourse" in name or name.endswith(".pth") or name == "__pycache__"
                or name.startswith(_WIDGET_DISTS)):
            continue
        (image / entry.name).symlink_to(entry)
    got = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                          "--target", str(image), *COLAB_WIDGETS], capture_output=True, text=True)
    if got.returncode != 0:
        pytest.skip(f"the package index does not serve Colab's ipywidgets: {got.stderr[-300:]}")
    return image


def _install_cell(nb) -> int:
    for k, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and "pip" in cell.source and "nlcourse" in cell.source:
            return k
    raise AssertionError("the notebook has no install cell")


def _git_clone(tmp_path: Path) -> tuple[Path, str]:
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"],
                      capture_output=True).returncode != 0:
        pytest.skip("not a git checkout: the install cell installs from a repository")
    clone = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(ROOT), str(clone)], check=True)
    commit = subprocess.run(["git", "-C", str(clone), "rev-parse", "HEAD"], check=True,
                            capture_output=True, text=True).stdout.strip()
    return clone, commit


def _point_at_clone(nb, clone: Path, commit: str) -> None:
    """The install cell, pointed at the local clone (pip on Python 3.11 rejects a file URL with an
    empty host: 'localhost')."""
    k = _install_cell(nb)
    source = nb.cells[k].source
    assert re.search(r"git\+https://\S+?@[\w./-]+[\"']", source), \
        f"the install cell must pin a ref (git+URL@REF):\n{source}"
    nb.cells[k].source = re.sub(r"git\+https://[^\"'@]+@[^\"']+",
                                f"git+file://localhost{clone}@{commit}", source)


class ColabLike:
    """A fresh venv that sees the Colab image, a /content folder outside the repository, and a
    kernel of that venv."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        env_dir = tmp / "colab"
        venv.EnvBuilder(with_pip=True).create(env_dir)
        self.python = env_dir / "bin" / "python"
        self.site = Path(self._run(
            "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp))
        (self.site / "colab_image.pth").write_text(str(_colab_image(tmp)) + "\n")
        self.content = tmp / "content"
        self.content.mkdir()

    def _run(self, code: str, cwd: Path | None = None) -> str:
        return subprocess.run([str(self.python), "-c", code], capture_output=True, text=True,
                              cwd=cwd or self.content).stdout.strip()

    def packages(self) -> dict:
        """Version and location of each Colab package, as the environment sees it."""
        code = ("import json, importlib.metadata as m\n"
                f"names = {list(COLAB_PACKAGES)!r}\n"
                "found = {}\n"
                "for n in names:\n"
                "    try:\n"
                "        d = m.distribution(n)\n"
                "        found[n] = [d.version, str(d.locate_file(''))]\n"
                "    except m.PackageNotFoundError:\n"
                "        found[n] = None\n"
                "print(json.dumps(found))")
        return json.loads(self._run(code))

    def execute(self, nb, budget: str, timeout: int = 900) -> None:
        nbclient = pytest.importorskip("nbclient")
        from jupyter_client.kernelspec import KernelSpecManager
        from jupyter_client.manager import KernelManager

        env = {**os.environ, "NLCOURSE_BUDGET": budget, "PIP_DISABLE_PIP_VERSION_CHECK": "1",
               "OMP_NUM_THREADS": "2"}
        for name in ("PYTHONPATH", "NLCOURSE_RESULTS", "NLCOURSE_SOURCE"):
            env.pop(name, None)
        spec = self.tmp / "kernels" / "colab"
        spec.mkdir(parents=True, exist_ok=True)
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [str(self.python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Colab-like", "language": "python"}))
        km = KernelManager(kernel_name="colab",
                           kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec.parent)]))
        client = nbclient.NotebookClient(nb, km=km, timeout=timeout,
                                         resources={"metadata": {"path": str(self.content)}})
        km.start_kernel(env=env, cwd=str(self.content))
        try:
            client.execute(km=km)
        finally:
            if km.is_alive():
                km.shutdown_kernel(now=True)


PROBE = """\
import json, nlcourse, torch
from nlcourse.provenance import results_home
g = globals()
trained = 0.0
if isinstance(g.get("history"), list):
    trained += sum(h.get("seconds", 0) for h in g["history"])
for name in ("metrics", "mine"):
    record = g.get(name)
    if name == "metrics" and g.get("WEIGHTS") == "shipped":
        continue        # lab 3's shipped network: trained for the package, not in this run
    if isinstance(record, dict) and not record.get("from_committed"):
        trained += record.get("train_seconds", 0)
for record in (g.get("records") or {}).values():
    if not record.get("from_committed"):
        trained += record.get("train_seconds", 0)
print("PROBE", json.dumps({"nlcourse": nlcourse.__file__, "results": str(results_home()),
                           "torch": f"{torch.__version__} {torch.__file__}", "trained": trained}))
"""


def _probe(nb) -> dict:
    printed = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    return json.loads(printed.split("PROBE", 1)[1])


def _printed(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.get("outputs", []))


def _run_lab(colab: ColabLike, clone: Path, commit: str, stem: str, budget: str) -> tuple:
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(LAB / f"{stem}.ipynb", as_version=4)
    _point_at_clone(nb, clone, commit)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    start = time.perf_counter()
    colab.execute(nb, budget)
    return nb, _probe(nb), time.perf_counter() - start


@pytest.fixture(scope="module")
def colab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("colab-like")
    clone, commit = _git_clone(tmp)
    return ColabLike(tmp), clone, commit


def test_the_install_cell_keeps_what_colab_has_and_lab_2_runs(colab):
    env, clone, commit = colab
    before = env.packages()
    assert before["torch"] and before["ipywidgets"][0] == "7.7.1", before
    assert env._run("import importlib.util as u; print(u.find_spec('nlcourse'))") == "None"
    nb, found, _ = _run_lab(env, clone, commit, "02_train_mnist", "smoke")
    assert found["nlcourse"].startswith(str(env.site)), found       # installed by the cell
    assert env.packages() == before, "the install cell changed a package Colab already has"
    # the committed results came with the package, outside any checkout
    assert found["results"] == str(Path(found["nlcourse"]).parent / "results"), found
    assert "epoch 1/1: train loss" in _printed(nb)                 # the notebook's own loop ran


def test_a_sweep_lab_reads_its_committed_sweep_outside_the_repository(colab):
    env, clone, commit = colab
    nb, found, _ = _run_lab(env, clone, commit, "04_compare_modes", "smoke")
    printed = _printed(nb)
    assert re.search(r"the committed quick runs: 15 \(models x seeds\), read back", printed), printed
    assert "runs to do" not in printed                                # nothing swept


def test_chapter_notebook_in_a_colab_like_environment(colab):
    """A chapter that reads committed results and shipped weights (the comparison), from its
    generated notebook: the first cell installs the package, results included; no clone."""
    nbformat = pytest.importorskip("nbformat")
    env, clone, commit = colab
    nb = nbformat.read(ROOT / "book" / "colab" / "comparing.ipynb", as_version=4)
    _point_at_clone(nb, clone, commit)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    env.execute(nb, "smoke")
    found = _probe(nb)
    assert found["results"] == str(Path(found["nlcourse"]).parent / "results"), found


QUICK = [f"{n:02d}_{name}" for n, name in ((2, "train_mnist"), (3, "attention_maps"),
                                           (4, "compare_modes"), (5, "long_range"),
                                           (6, "spacetime"), (7, "resnet_nonlocal"),
                                           (8, "partners"))]


@pytest.mark.skipif(os.environ.get("NLCOURSE_COLAB_QUICK") != "1",
                    reason="make colab runs the labs at the quick budget (minutes each)")
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("stem", QUICK)
def test_every_lab_at_quick_besides_its_one_model_in_5_minutes(colab, stem):
    env, clone, commit = colab
    nb, found, seconds = _run_lab(env, clone, commit, stem, "quick")
    besides = seconds - found["trained"]
    print(f"{stem}: {seconds:.0f} s in all, {found['trained']:.0f} s of it training, "
          f"{besides:.0f} s besides")
    with open(ROOT / "_build" / "colab-times.txt", "a") as times:
        times.write(f"{stem} {seconds:.0f} {found['trained']:.0f} {besides:.0f}\n")
    assert besides < 300, (stem, seconds, found["trained"])
