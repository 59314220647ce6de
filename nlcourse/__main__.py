"""Command line: ``python -m nlcourse train --mode embedded_gaussian --budget quick --out runs/eg``."""

from __future__ import annotations

import argparse
import os
import sys

from ._modes import MODES
from .budget import BUDGETS


def _train(args) -> int:
    from . import distributed
    from .train import train_mnist

    # Under torchrun (WORLD_SIZE > 1): join the process group; otherwise one plain process.
    ctx, device = distributed.init_from_env(args.device)
    launcher = "torchrun --nproc_per_node=N -m nlcourse" if ctx.distributed else "python -m nlcourse"
    try:
        metrics = train_mnist(mode=None if args.mode == "none" else args.mode,
                              budget=args.budget, seed=args.seed, out=args.out, device=device,
                              progress=not args.no_progress, scale_batch=args.scale_batch,
                              command=" ".join([launcher.replace("N", str(ctx.world_size)),
                                                *args.argv]))
    finally:
        distributed.shutdown()
    if ctx.distributed:
        print(f"rank {ctx.rank} of {ctx.world_size} finished", flush=True)
    if ctx.is_main:
        print(f"test accuracy {metrics['test_accuracy']:.4f} after {metrics['epochs']} epoch(s), "
              f"{metrics['train_seconds']:.1f} s of training on {metrics['device']} "
              f"({metrics['data_description']}), {ctx.world_size} process(es)")
        if args.out:
            print(f"wrote {args.out}/model.pt and {args.out}/metrics.json")
    return 0


def _sweep(args) -> int:
    from .experiments import run_sweep, summarise

    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        raise SystemExit("sweep runs one process; start it with python -m nlcourse sweep, not "
                         "torchrun (use torchrun with 'train')")

    results = run_sweep(models=args.models, seeds=args.seeds, budget=args.budget,
                        out_dir=args.out, device=args.device, progress=not args.no_progress)
    for row in summarise(results):
        print(f"{row['model']:>17}: {row['accuracy_mean']:.4f} +/- {row['accuracy_std']:.4f} "
              f"over seeds {row['seeds']} ({', '.join(row['data_sources'])})")
    return 0


def _video_sweep(args) -> int:
    from .experiments import summarise
    from .spacetime import run_video_sweep

    results = run_video_sweep(models=args.models, seeds=args.seeds, budget=args.budget,
                              out_dir=args.out, device=args.device, progress=not args.no_progress)
    for row in summarise(results, key="model"):
        print(f"{row['model']:>9}: {row['accuracy_mean']:.4f} +/- {row['accuracy_std']:.4f} "
              f"over seeds {row['seeds']} ({', '.join(row['data_sources'])})")
    return 0


def _resnet_sweep(args) -> int:
    from .experiments import summarise
    from .resnets import run_resnet_sweep

    results = run_resnet_sweep(models=args.models, seeds=args.seeds, budget=args.budget,
                               out_dir=args.out, device=args.device, progress=not args.no_progress)
    for row in summarise(results, key="model"):
        print(f"{row['model']:>5}: {row['accuracy_mean']:.4f} +/- {row['accuracy_std']:.4f} "
              f"over seeds {row['seeds']} ({', '.join(row['data_sources'])})")
    return 0


def _efficient_sweep(args) -> int:
    from .experiments import run_efficient_sweep, summarise

    results = run_efficient_sweep(variants=args.models, seeds=args.seeds, budget=args.budget,
                                  out_dir=args.out, device=args.device,
                                  progress=not args.no_progress)
    for row in summarise(results, key="variant"):
        print(f"{row['model']:>11}: {row['accuracy_mean']:.4f} +/- {row['accuracy_std']:.4f} "
              f"over seeds {row['seeds']} ({', '.join(row['data_sources'])})")
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
    import json
    from pathlib import Path

    from .bench import DEFAULT_SHAPES, run_benchmark

    import torch

    result = run_benchmark(shapes=args.sizes or DEFAULT_SHAPES, modes=args.modes,
                           repeats=args.repeats, device=args.device,
                           max_reference_gib=args.max_reference_gib,
                           dtype=getattr(torch, args.dtype))
    result["command"] = " ".join(["python -m nlcourse", *args.argv])
    from .train import git_commit

    result["commit"] = git_commit()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
    from . import viz

    viz.use_style()
    rows = [r for r in result["rows"] if "reference_seconds" in r and len(r["shape"]) == 4]
    if rows:
        viz.scaling_plot(rows).savefig(out / "bench.png")
    print(f"wrote {out / 'bench.json'}" + (f" and {out / 'bench.png'}" if rows else ""))
    return 0


def _bench_variants(args) -> int:
    import json
    from pathlib import Path

    from .bench import DEFAULT_SHAPES, run_variant_benchmark
    from .train import git_commit

    result = run_variant_benchmark(shapes=args.sizes or DEFAULT_SHAPES, repeats=args.repeats,
                                   device=args.device)
    result["command"] = " ".join(["python -m nlcourse", *args.argv])
    result["commit"] = git_commit()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "variants.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out / 'variants.json'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nlcourse",
                                     description="Non-local Neural Networks course tools.")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train MNISTNet with or without non-local blocks")
    train.add_argument("--mode", default="embedded_gaussian", choices=[*MODES, "none"],
                       help="pairwise function of the blocks, or 'none' for the baseline")
    train.add_argument("--budget", default=None, choices=list(BUDGETS),
                       help="default: $NLCOURSE_BUDGET, else 'full' with CUDA and 'quick' without")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", default=None, help="folder for model.pt and metrics.json")
    train.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: auto)")
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    train.add_argument("--scale-batch", action="store_true",
                       help="under torchrun: keep the budget's batch per process (global batch and "
                            "learning rate x N) instead of splitting it over the N processes")
    train.set_defaults(run=_train)

    sweep = commands.add_parser(
        "sweep", help="train several models and seeds, one results file each (resumable)")
    sweep.add_argument("--models", nargs="+", default=["none", *MODES], choices=["none", *MODES])
    sweep.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    sweep.add_argument("--budget", default=None, choices=list(BUDGETS))
    sweep.add_argument("--out", required=True, help="folder for the <model>_seed<k>.json files")
    sweep.add_argument("--device", default=None)
    sweep.add_argument("--no-progress", action="store_true")
    sweep.set_defaults(run=_sweep)

    from .spacetime import VIDEO_MODELS

    video = commands.add_parser(
        "video-sweep", help="the space-time lab's sweep: the video network without a block and "
                            "with each block variant, one results file per (model, seed)")
    video.add_argument("--models", nargs="+", default=list(VIDEO_MODELS), choices=VIDEO_MODELS)
    video.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    video.add_argument("--budget", default=None, choices=list(BUDGETS))
    video.add_argument("--out", required=True, help="folder for the <model>_seed<k>.json files")
    video.add_argument("--device", default=None)
    video.add_argument("--no-progress", action="store_true")
    video.set_defaults(run=_video_sweep)

    from .experiments import EFFICIENT_MODELS
    from .resnets import RESNET_MODELS

    for name, models, default_seeds, run, helptext in (
            ("resnet-sweep", RESNET_MODELS, [0, 1, 2], _resnet_sweep,
             "the ResNet lab's sweep: a small ResNet on Fashion-MNIST without a block and with one "
             "block in each stage"),
            ("efficient-sweep", EFFICIENT_MODELS, [0, 1], _efficient_sweep,
             "the cheaper blocks (chunked, top-k, low-rank, progressive) trained in MNISTNet")):
        sub = commands.add_parser(name, help=helptext)
        sub.add_argument("--models", nargs="+", default=list(models), choices=models)
        sub.add_argument("--seeds", nargs="+", type=int, default=default_seeds)
        sub.add_argument("--budget", default=None, choices=list(BUDGETS))
        sub.add_argument("--out", required=True, help="folder for the <model>_seed<k>.json files")
        sub.add_argument("--device", default=None)
        sub.add_argument("--no-progress", action="store_true")
        sub.set_defaults(run=run)

    bench = commands.add_parser(
        "bench", help="time the literal reference against the fast path, forward+backward")
    bench.add_argument("--sizes", nargs="+", type=_shape, default=None,
                       help="input shapes such as 1x64x64x64 (default: the issue's four)")
    bench.add_argument("--modes", nargs="+", choices=list(MODES), default=None)
    bench.add_argument("--repeats", type=int, default=5, help="timed runs (median) after warm-up")
    bench.add_argument("--device", default=None)
    bench.add_argument("--max-reference-gib", type=float, default=16.0,
                       help="skip the literal reference where it would need more memory")
    bench.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                       help="precision of block and input (bfloat16/float16: mixed precision on GPU)")
    bench.add_argument("--out", default="bench", help="folder for bench.json and bench.png")
    bench.set_defaults(run=_bench)

    variants = commands.add_parser(
        "bench-variants", help="time and memory of the cheaper blocks (chunked, top-k, low-rank) "
                               "against the full block, forward+backward")
    variants.add_argument("--sizes", nargs="+", type=_shape, default=None,
                          help="input shapes such as 1x64x64x64 (default: the benchmark's four)")
    variants.add_argument("--repeats", type=int, default=3, help="timed runs (median)")
    variants.add_argument("--device", default=None)
    variants.add_argument("--out", default="bench", help="folder for variants.json")
    variants.set_defaults(run=_bench_variants)

    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    args.argv = argv
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
