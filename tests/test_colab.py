"""A notebook's install cell, run where Colab would run it: a fresh environment that already has
PyTorch, torchvision, NumPy, matplotlib and ipywidgets (here: every package of this test's own
environment except nlcourse, made visible through a .pth file, metadata included, as an image's
preinstalled packages are). The cell must install nlcourse from the repository (a local clone of
the committed tree stands in for GitHub), leave torch as it was, and the notebook must then run
top to bottom at the smoke budget with the installed copy."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "01_block_anatomy.ipynb"


def _colab_image(tmp: Path) -> Path:
    """A folder of links to this environment's packages, nlcourse left out."""
    site = Path(sysconfig.get_paths()["purelib"])
    image = tmp / "colab_image"
    image.mkdir()
    for entry in site.iterdir():
        name = entry.name.lower()
        if "nlcourse" in name or name.endswith(".pth") or name == "__pycache__":
            continue
        (image / entry.name).symlink_to(entry)
    return image


def _install_cell(nb: dict) -> int:
    for k, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code" and "pip" in "".join(cell["source"]) and \
                "nlcourse" in "".join(cell["source"]):
            return k
    raise AssertionError(f"{NOTEBOOK.name} has no install cell")


def _git_clone(tmp_path: Path) -> tuple[Path, str]:
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"],
                      capture_output=True).returncode != 0:
        pytest.skip("not a git checkout: the install cell installs from a repository")
    clone = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(ROOT), str(clone)], check=True)
    commit = subprocess.run(["git", "-C", str(clone), "rev-parse", "HEAD"], check=True,
                            capture_output=True, text=True).stdout.strip()
    return clone, commit


def _run_colab_like(tmp_path: Path, nb) -> dict:
    """Run ``nb`` in a fresh Colab-like environment from an empty working folder (Colab's
    /content); return where nlcourse and torch were imported from, and torch's before."""
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    env_dir = tmp_path / "colab"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    fresh_site = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True).stdout.strip())
    (fresh_site / "colab_image.pth").write_text(str(_colab_image(tmp_path)) + "\n")
    content = tmp_path / "content"
    content.mkdir()

    def probe(code: str) -> str:
        return subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                              cwd=content).stdout.strip()

    torch_before = probe("import torch; print(torch.__version__, torch.__file__)")
    assert torch_before, "the Colab-like environment cannot import torch"
    assert probe("import importlib.util as u; print(u.find_spec('nlcourse'))") == "None"
    # Prove afterwards where nlcourse came from and that torch did not move.
    nb.cells.append(nbformat.v4.new_code_cell(
        "import json, nlcourse, torch\n"
        "print('PROBE', json.dumps({'nlcourse': nlcourse.__file__, "
        "'torch': f'{torch.__version__} {torch.__file__}'}))"))
    env = {**os.environ, "NLCOURSE_BUDGET": "smoke", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
           "OMP_NUM_THREADS": "1"}
    for name in ("PYTHONPATH", "NLCOURSE_RESULTS"):
        env.pop(name, None)
    spec = tmp_path / "kernels" / "colab"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Colab-like", "language": "python"}))
    km = KernelManager(kernel_name="colab",
                       kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec.parent)]))
    client = nbclient.NotebookClient(nb, km=km, timeout=900,
                                     resources={"metadata": {"path": str(content)}})
    km.start_kernel(env=env, cwd=str(content))
    try:
        client.execute(km=km)
    finally:
        if km.is_alive():
            km.shutdown_kernel(now=True)
    probe_out = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    found = json.loads(probe_out.split("PROBE", 1)[1])
    assert found["nlcourse"].startswith(str(fresh_site)), found   # installed by the cell
    assert found["torch"] == torch_before, (found["torch"], torch_before)   # torch untouched
    assert probe("import torch; print(torch.__version__, torch.__file__)") == torch_before
    return found


@pytest.mark.slow
def test_install_cell_in_a_colab_like_environment(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    clone, commit = _git_clone(tmp_path)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    k = _install_cell(nb)
    source = nb.cells[k].source
    assert re.search(r"git\+https://\S+?@[\w./-]+[\"']", source), \
        f"the install cell must pin a ref (git+URL@REF):\n{source}"
    # 'localhost': the pip of a fresh Python 3.11 venv rejects a file URL with an empty host
    nb.cells[k].source = re.sub(r"git\+https://[^\"'@]+@[^\"']+",
                                f"git+file://localhost{clone}@{commit}", source)
    _run_colab_like(tmp_path, nb)


@pytest.mark.slow
def test_chapter_notebook_in_a_colab_like_environment(tmp_path):
    """A chapter that reads committed results and shipped weights (the comparison), opened in
    Colab from its generated notebook: the first cell fetches the repository and the chapter
    runs from it."""
    nbformat = pytest.importorskip("nbformat")
    clone, commit = _git_clone(tmp_path)
    nb = nbformat.read(ROOT / "book" / "colab" / "comparing.ipynb", as_version=4)
    setup = next(k for k, c in enumerate(nb.cells) if c.cell_type == "code")
    source = nb.cells[setup].source
    url = re.search(r'"git", "clone", "-q", "([^"]+)"', source)
    ref = re.search(r'"checkout", "-q", "([^"]+)"', source)
    assert url and ref, f"the setup cell must clone the repository at a ref:\n{source}"
    nb.cells[setup].source = source.replace(f'"{url.group(1)}"', f'"{clone}"').replace(
        f'"{ref.group(1)}"', f'"{commit}"')
    nb.cells.append(nbformat.v4.new_code_cell(
        "import os; print('CWD', os.getcwd()); print('RESULTS', os.environ['NLCOURSE_RESULTS'])"))
    _run_colab_like(tmp_path, nb)
    printed = "".join(o.get("text", "") for o in nb.cells[-2].outputs)
    assert "/content/nlcourse-repo/book" in printed.replace(str(tmp_path), ""), printed
    assert "/content/nlcourse-repo/results" in printed.replace(str(tmp_path), ""), printed
