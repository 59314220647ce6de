"""`import nlcourse` stays light: no torchvision, matplotlib or mlxtend at import time."""

import subprocess
import sys


def test_import_is_light():
    code = ("import sys, nlcourse, nlcourse.train, nlcourse.data, nlcourse.reference; "
            "heavy = [m for m in ('torchvision', 'matplotlib', 'mlxtend') if m in sys.modules]; "
            "print(heavy); assert not heavy, heavy")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_public_names():
    import nlcourse

    for name in ("NonLocalBlock", "NonLocalBlock1d", "NonLocalBlock2d", "NonLocalBlock3d",
                 "MNISTNet", "MODES"):
        assert hasattr(nlcourse, name)
    assert nlcourse.MODES == ("gaussian", "embedded_gaussian", "dot_product", "concatenation")
