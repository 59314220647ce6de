"""Every mistake a user can make on the command line ends in one line that names the argument:
at least 15 bad argument sets per subcommand, run in process through ``main(argv)`` (seconds, not
a Python start per case). Each exits non-zero, prints no traceback, and writes exactly one error
line (argparse's usage lines may come before it). None of them trains, measures or writes."""

from __future__ import annotations

import pytest

from nlcourse.__main__ import main
from nlcourse.models import LongRangeNet
from nlcourse.train import save_checkpoint

from .conftest import bad_checkpoints


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The bad inputs: files that are not what their argument expects."""
    root = tmp_path_factory.mktemp("bad-inputs")
    bad = bad_checkpoints(root)
    other = save_checkpoint(root / "other.pt", LongRangeNet("gaussian"), lab="long_range",
                            model="gaussian")
    text = root / "notes.txt"
    text.write_text("not an image, not a checkpoint")
    from PIL import Image  # the maps command's own dependency (matplotlib brings Pillow)

    tiny = root / "tiny.png"
    Image.new("L", (10, 10)).save(tiny)
    digit = root / "digit.png"
    Image.new("L", (28, 28)).save(digit)
    return {**bad, "other": other, "text": text, "tiny": tiny, "digit": digit,
            "out": root / "out", "unwritable": text / "sub", "missing": root / "missing.pt"}


def _cases(f):
    """(argv, what the error line must name) per subcommand."""
    text, unwritable = str(f["text"]), str(f["unwritable"])
    out = str(f["out"])
    maps = ["--query", "1,1", "--out", out]
    return {
        "train": [
            (["train"], "LAB"),
            (["train", "imagenet"], "LAB"),
            (["train", "mnist", "--model", "softmax"], "--model"),
            (["train", "mnist", "--seed", "abc"], "--seed"),
            (["train", "mnist", "--seed", "-1"], "--seed"),
            (["train", "mnist", "--seed", "4294967296"], "--seed"),
            (["train", "mnist", "--seed", "1.5"], "--seed"),
            (["train", "mnist", "--seed"], "--seed"),
            (["train", "mnist", "--budget", "huge"], "--budget"),
            (["train", "mnist", "--precision", "fp8"], "--precision"),
            (["train", "mnist", "--compile", "fastest"], "--compile"),
            (["train", "mnist", "--device", "quantum"], "--device"),
            (["train", "mnist", "--device", ""], "--device"),
            (["train", "mnist", "--device", "cuda:99"], "--device"),
            (["train", "mnist", "--out", text], "--out"),
            (["train", "mnist", "--out", unwritable], "--out"),
            (["train", "mnist", "--epochs", "3"], "--epochs"),
            (["train", "resnet", "--model", "res9"], "--model"),
        ],
        "sweep": [
            (["sweep"], "LAB"),
            (["sweep", "cifar"], "LAB"),
            (["sweep", "mnist", "--models", "softmax"], "--models"),
            (["sweep", "mnist", "--models"], "--models"),
            (["sweep", "resnet", "--models", "res9"], "--models"),
            (["sweep", "mnist", "--seeds", "-1"], "--seeds"),
            (["sweep", "mnist", "--seeds", "0", "x"], "--seeds"),
            (["sweep", "mnist", "--seeds", "99999999999"], "--seeds"),
            (["sweep", "mnist", "--seeds"], "--seeds"),
            (["sweep", "mnist", "--budget", "medium"], "--budget"),
            (["sweep", "mnist", "--device", "tpu"], "--device"),
            (["sweep", "mnist", "--device", "cuda:99"], "--device"),
            (["sweep", "mnist", "--out", text], "--out"),
            (["sweep", "mnist", "--out", unwritable], "--out"),
            (["sweep", "mnist", "--precision", "bf16"], "--precision"),
            (["sweep", "mnist", "--no-progress", "yes"], "yes"),
        ],
        "bench": [
            (["bench"], "what"),
            (["bench", "speed"], "what"),
            (["bench", "paths", "--sizes", "1x64"], "--sizes"),
            (["bench", "paths", "--sizes", "axbxcxd"], "--sizes"),
            (["bench", "paths", "--sizes", "1x64x0x16"], "--sizes"),
            (["bench", "paths", "--modes", "softmax"], "--modes"),
            (["bench", "paths", "--repeats", "0"], "--repeats"),
            (["bench", "paths", "--repeats", "many"], "--repeats"),
            (["bench", "step", "--batch-sizes", "-2"], "--batch-sizes"),
            (["bench", "paths", "--max-reference-gib", "-1"], "--max-reference-gib"),
            (["bench", "paths", "--max-reference-gib", "nan"], "--max-reference-gib"),
            (["bench", "paths", "--dtype", "float64"], "--dtype"),
            (["bench", "paths", "--device", "quantum"], "--device"),
            (["bench", "step", "--device", "cuda:99"], "--device"),
            (["bench", "paths", "--out", text], "--out"),
            (["bench", "variants", "--out", unwritable], "--out"),
            (["bench", "peers", "--sizes", "1x64x8x32x32"], "--sizes"),
            (["bench", "peers", "--sizes", "1x64x16x16", "1x64x64"], "--sizes"),
            (["bench", "peers", "--modes", "none"], "--modes"),
            (["bench", "peers", "--repeats", "-3"], "--repeats"),
            (["bench", "peers", "--threads", "0"], "--threads"),
            (["bench", "paths", "--threads", "two"], "--threads"),
            (["bench", "peers", "--threads"], "--threads"),
            (["bench", "peers", "--max-reference-gib", "0"], "--max-reference-gib"),
            (["bench", "peers", "--out", text], "--out"),
        ],
        "maps": [
            (["maps"], "--query"),
            (["maps", "--query", "1,1"], "--out"),
            (["maps", "--query", "99,1", "--out", out], "--query"),
            (["maps", "--query", "a,b", "--out", out], "--query"),
            (["maps", "--query", "1,1,1", "--out", out], "--query"),
            (["maps", "--mode", "none", *maps], "--mode"),
            (["maps", "--checkpoint", str(f["missing"]), *maps], "--checkpoint"),
            (["maps", "--checkpoint", str(f["truncated"]), *maps], "--checkpoint"),
            (["maps", "--checkpoint", str(f["other"]), *maps], "--checkpoint"),
            (["maps", "--checkpoint", str(f["malicious"]), *maps], "--checkpoint"),
            (["maps", "--checkpoint", str(f["root"]), *maps], "--checkpoint"),
            (["maps", "--image", text, *maps], "--image"),
            (["maps", "--image", str(f["root"] / "gone.png"), *maps], "--image"),
            (["maps", "--image", str(f["tiny"]), *maps], "--image"),
            (["maps", "--image", str(f["digit"]), "--index", "3", *maps], "--index"),
            (["maps", "--index", "x", *maps], "--index"),
            (["maps", "--index", "-1", *maps], "--index"),
            (["maps", "--query", "1,1", "--out", unwritable], "--out"),
        ],
    }


def _run(argv, capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


def _error_lines(err: str) -> list[str]:
    """The lines that are neither argparse's usage (``usage:`` and its indented continuation)
    nor a warning."""
    return [line for line in err.splitlines() if line.strip() and not line.startswith(" ")
            and not line.startswith("usage:") and ": warning: " not in line]


@pytest.mark.parametrize("command", ["train", "sweep", "bench", "maps"])
def test_every_bad_argument_set_ends_in_one_line_naming_it(command, files, capsys):
    cases = _cases(files)[command]
    assert len(cases) >= 15
    for argv, named in cases:
        code, err = _run(argv, capsys)
        assert code not in (0, None), argv
        assert "Traceback" not in err and "weights_only" not in err, (argv, err)
        lines = _error_lines(err)
        assert len(lines) == 1, (argv, err)
        assert named in lines[0] and "error" in lines[0], (argv, lines[0])
    assert not files["marker"].exists(), "the malicious checkpoint ran its code"
    assert not files["out"].exists() or not any(files["out"].iterdir()), "a bad run wrote"


def test_an_unexpected_failure_is_one_line_too(monkeypatch, capsys, tmp_path):
    """A bug (not the user's mistake) is said to be one, still in one line, with the way to the
    traceback."""
    from nlcourse import maps

    def broken(*args, **kwargs):
        raise IndexError("list index out of range")

    monkeypatch.setattr(maps, "parse_query", broken)
    code, err = _run(["maps", "--query", "1,1", "--out", str(tmp_path)], capsys)
    assert code == 2 and len(_error_lines(err)) == 1
    assert "internal error (IndexError" in err and "NLCOURSE_DEBUG=1" in err
    monkeypatch.setenv("NLCOURSE_DEBUG", "1")
    with pytest.raises(IndexError):
        main(["maps", "--query", "1,1", "--out", str(tmp_path)])


def test_bench_peers_without_mmcv_says_so_in_one_line(monkeypatch, capsys, tmp_path):
    """mmcv is a test dependency: where it cannot be imported, ``bench peers`` says so and how to
    install it, in one line, before it measures or writes anything."""
    import sys

    monkeypatch.setitem(sys.modules, "mmcv", None)   # what a missing package looks like to import
    code, err = _run(["bench", "peers", "--out", str(tmp_path / "out")], capsys)
    lines = _error_lines(err)
    assert code == 2 and len(lines) == 1, err
    assert "mmcv" in lines[0] and "pip install mmcv-lite" in lines[0] and "error" in lines[0]
    assert not (tmp_path / "out" / "peers.json").exists()
