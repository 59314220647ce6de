"""The block survives export and compilation: torch.export for every mode and dimension, ONNX
through onnxruntime, torch.compile. Each skips only for a missing toolchain, and says which."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from nlcourse import MODES, MNISTNet, NonLocalBlock
from nlcourse.bench import compiler_missing

SHAPES = {1: (2, 8, 10), 2: (2, 8, 6, 4), 3: (2, 8, 3, 4, 6)}
ONNX_MISSING = [name for name in ("onnx", "onnxscript", "onnxruntime")
                if importlib.util.find_spec(name) is None]


def _block(mode, dim, **options):
    torch.manual_seed(0)
    block = NonLocalBlock(8, mode=mode, dimension=dim, **options)
    with torch.no_grad():   # a non-zero W, or every export would return x and prove nothing
        for p in block.parameters():
            p.normal_(0, 0.5)
    return block.eval()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dim", [1, 2, 3])
def test_torch_export_equals_eager(mode, dim):
    block, x = _block(mode, dim), torch.randn(SHAPES[dim])
    program = torch.export.export(block, (x,))
    z = block(x)
    assert (z - x).abs().max() > 1e-2
    torch.testing.assert_close(program.module()(x), z, rtol=0, atol=0)


def test_torch_export_of_mnistnet():
    torch.manual_seed(0)
    net = MNISTNet("embedded_gaussian").eval()
    x = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(torch.export.export(net, (x,)).module()(x), net(x), rtol=0, atol=0)


def _onnx_run(module, x, path):
    import onnxruntime

    torch.onnx.export(module, (x,), dynamo=True, verbose=False).save(str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])


def _exportable(mode):
    """The concatenation's default (sorted) path uses searchsorted, which ONNX lacks; its dense
    path exports (book/implementation.md says so, and test_sorted_concatenation_... checks it)."""
    return {"concat_path": "dense"} if mode == "concatenation" else {}


@pytest.mark.skipif(bool(ONNX_MISSING), reason=f"ONNX export needs {', '.join(ONNX_MISSING)} "
                                               f"(pip install onnx onnxscript onnxruntime)")
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dim", [1, 2, 3])
def test_onnx_export_runs_in_onnxruntime(mode, dim, tmp_path):
    block, x = _block(mode, dim, **_exportable(mode)), torch.randn(SHAPES[dim])
    torch.testing.assert_close(_onnx_run(block, x, tmp_path / "block.onnx"), block(x).detach(),
                               rtol=0, atol=1e-5)


@pytest.mark.skipif(bool(ONNX_MISSING), reason=f"ONNX export needs {', '.join(ONNX_MISSING)}")
def test_onnx_export_of_mnistnet(tmp_path):
    torch.manual_seed(0)
    net = MNISTNet("embedded_gaussian").eval()
    x = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(_onnx_run(net, x, tmp_path / "net.onnx"), net(x).detach(),
                               rtol=0, atol=1e-5)


@pytest.mark.skipif(bool(ONNX_MISSING), reason=f"ONNX export needs {', '.join(ONNX_MISSING)}")
def test_sorted_concatenation_does_not_export_to_onnx_and_says_why(tmp_path):
    """What the implementation chapter tells the reader: the sorted path stops at searchsorted.
    If a later onnxscript learns it, this test fails and the chapter's sentence must change."""
    block, x = _block("concatenation", 2), torch.randn(SHAPES[2])
    with pytest.raises(Exception, match="searchsorted"):
        _onnx_run(block, x, tmp_path / "sorted.onnx")


@pytest.mark.slow
@pytest.mark.skipif(compiler_missing("cpu") is not None,
                    reason=f"torch.compile on the CPU: {compiler_missing('cpu')}")
@pytest.mark.parametrize("mode", MODES)
def test_torch_compile_equals_eager(mode):
    block, x = _block(mode, 2), torch.randn(SHAPES[2])
    torch.testing.assert_close(torch.compile(block)(x), block(x), rtol=1e-5, atol=1e-5)
