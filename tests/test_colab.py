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


@pytest.mark.slow
def test_install_cell_in_a_colab_like_environment(tmp_path):
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"],
                      capture_output=True).returncode != 0:
        pytest.skip("not a git checkout: the install cell installs from a repository")
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    clone = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(ROOT), str(clone)], check=True)
    commit = subprocess.run(["git", "-C", str(clone), "rev-parse", "HEAD"], check=True,
                            capture_output=True, text=True).stdout.strip()
    env_dir = tmp_path / "colab"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    fresh_site = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True).stdout.strip())
    (fresh_site / "colab_image.pth").write_text(str(_colab_image(tmp_path)) + "\n")

    def probe(code: str) -> str:
        return subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                              cwd=tmp_path).stdout.strip()

    torch_before = probe("import torch; print(torch.__version__, torch.__file__)")
    assert torch_before, "the Colab-like environment cannot import torch"
    assert probe("import importlib.util as u; print(u.find_spec('nlcourse'))") == "None"

    nb = nbformat.read(NOTEBOOK, as_version=4)
    k = _install_cell(nb)
    source = nb.cells[k].source
    assert re.search(r"git\+https://\S+?@[\w./-]+[\"']", source), \
        f"the install cell must pin a ref (git+URL@REF):\n{source}"
    # 'localhost': the pip of a fresh Python 3.11 venv rejects a file URL with an empty host
    nb.cells[k].source = re.sub(r"git\+https://[^\"'@]+@[^\"']+",
                                f"git+file://localhost{clone}@{commit}", source)
    # Prove afterwards where nlcourse came from and that torch did not move.
    nb.cells.append(nbformat.v4.new_code_cell(
        "import json, nlcourse, torch\n"
        "print('PROBE', json.dumps({'nlcourse': nlcourse.__file__, "
        "'torch': f'{torch.__version__} {torch.__file__}'}))"))

    env = {**os.environ, "NLCOURSE_BUDGET": "smoke", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
           "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)
    spec = tmp_path / "kernels" / "colab"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Colab-like", "language": "python"}))
    km = KernelManager(kernel_name="colab",
                       kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec.parent)]))
    client = nbclient.NotebookClient(nb, km=km, timeout=900, resources={"metadata": {"path": str(tmp_path)}})
    km.start_kernel(env=env, cwd=str(tmp_path))
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
